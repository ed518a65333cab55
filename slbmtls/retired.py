"""Revocation is forever: refuse to trust again a CA certificate this stack stopped trusting.

Plans output `caFingerprint` (hex SHA-256 of the CA certificate the listener trusts) and
`retiredCaFingerprints` (every CA certificate the stack trusted before and trusts no more).
`make plan-diff` checks AFTER against BEFORE; the program checks the CA it is about to upload
against the deployed stack's outputs with `check_not_retired`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class RetiredCaError(Exception):
    """The plan would trust a CA certificate the stack retired."""


def _normal(fingerprint: object) -> str:
    return str(fingerprint).replace(":", "").strip().lower()


def _retired(outputs: Mapping[str, Any]) -> set[str]:
    found = outputs.get("retiredCaFingerprints") or []
    return {_normal(f) for f in found} if isinstance(found, Iterable) and not isinstance(found, str) else set()


def retired_error(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """Why AFTER's CA must not be deployed over BEFORE (the outputs of two plans), or None."""
    current = after.get("caFingerprint")
    if current is None or _normal(current) not in _retired(before):
        return None
    return (f"RetiredCaCertificate: caFingerprint {_normal(current)} was retired by this stack (it is in "
            "BEFORE's retiredCaFingerprints): trusting it again would accept certificates that were revoked. "
            "Undo the edit that brought the old CA back (a removed revocation, a lowered "
            "slb-mtls:pki.caGeneration) and rotate forward instead")


def check_not_retired(ca_fingerprint: str, deployed_outputs: Mapping[str, Any]) -> None:
    """At `pulumi up`: raise RetiredCaError if the CA about to be trusted is one the deployed stack
    (its last outputs) lists as retired. Nothing deployed yet, nothing to compare: no error."""
    message = retired_error(deployed_outputs, {"caFingerprint": ca_fingerprint})
    if message is not None:
        raise RetiredCaError(message)
