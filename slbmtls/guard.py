"""Before `pulumi up`: refuse a plan whose CA this stack already retired (revocation is forever).

The program makes the same check under the Pulumi CLI (slbmtls.program.refuse_a_retired_ca);
`make preview`, `make up` and the deploy workflow run this one first, so a refusal comes before
the engine starts, with the stack file's name on it: the CA the stack's config derives now is
compared with `retiredCaFingerprints` of the deployed stack (`pulumi stack output --json`).
Nothing deployed yet, nothing to compare.
"""

from __future__ import annotations

from slbmtls.offline import OfflineStack, UserError
from slbmtls.program import retired_ca_problem
from slbmtls.stackfile import StackFileError, deployed_outputs


def guard(stack: OfflineStack) -> str:
    """What was checked, or UserError when the planned CA is one the deployed stack retired."""
    planned = stack.material.ca.issued.fingerprint
    try:
        deployed = deployed_outputs(stack.name, stack.stack_file.path.parent)
    except StackFileError as exc:
        raise UserError(str(exc)) from None
    problem = retired_ca_problem(stack.config, stack.material, deployed)
    if problem is not None:
        raise UserError(f"stack {stack.name}: refusing to deploy. {problem}")
    if not deployed:
        return f"stack {stack.name}: nothing deployed yet; CA {planned[:16]}... may be trusted"
    count = len(deployed.get("retiredCaFingerprints") or [])
    return (f"stack {stack.name}: CA {planned[:16]}... is not among the deployed stack's {count} retired CAs, "
            "and none of them is forgotten")
