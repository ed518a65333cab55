"""Before `pulumi up`: refuse a plan whose CA this stack already retired (revocation is forever).

The program cannot read the deployed stack's outputs while the engine runs it, so `make preview`,
`make up` and the deploy workflow run this first: the CA the stack's config derives now is compared
with `retiredCaFingerprints` of the deployed stack (`pulumi stack output --json`). Nothing deployed
yet, nothing to compare.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from slbmtls.offline import OfflineStack, UserError
from slbmtls.program import retired_fingerprints
from slbmtls.retired import retired_error
from slbmtls.stackfile import run_pulumi


def deployed_outputs(stack: OfflineStack) -> dict[str, Any]:
    """The deployed stack's public outputs; {} for a stack that has none yet."""
    if not shutil.which("pulumi"):
        raise UserError("the pulumi CLI is not installed: it is needed to read the deployed stack's outputs "
                        "(https://www.pulumi.com/docs/install/)")
    result = run_pulumi(stack.stack_file, "stack", "output", "--json")
    if result.returncode != 0:
        raise UserError(f"`pulumi stack output --json --stack {stack.name}` failed: "
                        f"{result.stderr.strip()[:300] or 'no message'}")
    try:
        outputs = json.loads(result.stdout or "{}")
    except ValueError:
        raise UserError(f"`pulumi stack output --json --stack {stack.name}` did not print JSON") from None
    return outputs if isinstance(outputs, dict) else {}


def guard(stack: OfflineStack) -> str:
    """What was checked, or UserError when the planned CA is one the deployed stack retired."""
    planned = stack.material.ca.issued.fingerprint
    deployed = deployed_outputs(stack)
    retired = retired_fingerprints(stack.config, stack.material)
    problem = retired_error(deployed, {"caFingerprint": planned, "retiredCaFingerprints": retired})
    if problem is not None:
        raise UserError(f"stack {stack.name}: refusing to deploy. {problem}")
    if not deployed:
        return f"stack {stack.name}: nothing deployed yet; CA {planned[:16]}... may be trusted"
    count = len(deployed.get("retiredCaFingerprints") or [])
    return (f"stack {stack.name}: CA {planned[:16]}... is not among the deployed stack's {count} retired CAs, "
            "and none of them is forgotten")
