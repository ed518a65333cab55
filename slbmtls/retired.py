"""Revocation is forever: refuse to trust again a CA certificate this stack stopped trusting.

Plans output `caFingerprint` (hex SHA-256 of the CA certificate the listener trusts) and
`retiredCaFingerprints` (every CA certificate the stack trusted before and trusts no more).
`make plan-diff` checks AFTER against BEFORE; `make guard` and the program under the Pulumi CLI
(`pulumi preview` / `up`) check what the config derives now against the deployed stack's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _normal(fingerprint: object) -> str:
    return str(fingerprint).replace(":", "").strip().lower()


def _retired(outputs: Mapping[str, Any]) -> set[str]:
    found = outputs.get("retiredCaFingerprints") or []
    return {_normal(f) for f in found} if isinstance(found, Iterable) and not isinstance(found, str) else set()


def retired_error(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """Why AFTER must not be deployed over BEFORE (the outputs of two plans), or None.

    Two rules: AFTER's CA is not one BEFORE retired; and AFTER still lists every CA BEFORE retired.
    The second closes the two-step undo: an edit that changes the CA's definition (keyBits, caDays,
    issued, subject) derives a history without the old retired CAs, after which the un-revoked CA
    would pass the first rule. Such an edit carries them in slb-mtls:pki.retiredCaFingerprints."""
    current = after.get("caFingerprint")
    if current is not None and _normal(current) in _retired(before):
        return (f"RetiredCaCertificate: caFingerprint {_normal(current)} was retired by this stack (it is in "
                "BEFORE's retiredCaFingerprints): trusting it again would accept certificates that were revoked. "
                "Undo the edit that brought the old CA back (a removed revocation, a lowered "
                "slb-mtls:pki.caGeneration) and rotate forward instead")
    if "retiredCaFingerprints" not in after:  # only the CA is known (e.g. an older plan file)
        return None
    forgotten = sorted(_retired(before) - _retired(after))
    if forgotten:
        listed = ", ".join(f'"{f}"' for f in forgotten)
        return (f"RetiredCaForgotten: this change drops {len(forgotten)} CA certificate(s) from "
                "retiredCaFingerprints (a change of the CA's definition derives a new history), after which "
                "a later edit could trust them again. Carry them: add to slb-mtls:pki.retiredCaFingerprints "
                f"[{listed}]")
    return None
