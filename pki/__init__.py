"""Reproducible key material for a CLB mutual-TLS listener.

Every key, certificate, serial and CRL is a pure function of a 32-byte seed and a plain description
(`PkiSpec`): the same inputs give byte-identical output on any machine. Nothing here reads the clock,
draws randomness (bundle passwords excepted: they are made for people, not plans) or knows Pulumi.

The names below load on first use (PEP 562): `import pki.sharedqueue` alone must stay light, so a
command can start its helper processes before it imports cryptography, pydantic and Pulumi.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pki.authority import MAX_SERVER_DAYS, CertificateAuthority
    from pki.bundle import Profile, pkcs12_bytes, write_client_bundle
    from pki.errors import PkiError
    from pki.headstart import start_deriving, stop_deriving
    from pki.issued import Issued, days_left, fingerprint
    from pki.material import PkiMaterial, build_material
    from pki.model import (
        REVOCATION_REASONS,
        ClientSpec,
        KeyType,
        OperatorCertificate,
        PkiSpec,
        Revocation,
        ServerSpec,
        Subject,
        Validity,
    )
    from pki.seed import Seed

_HOME = {
    "pki.authority": ("MAX_SERVER_DAYS", "CertificateAuthority"),
    "pki.bundle": ("Profile", "pkcs12_bytes", "write_client_bundle"),
    "pki.errors": ("PkiError",),
    "pki.headstart": ("start_deriving", "stop_deriving"),
    "pki.issued": ("Issued", "days_left", "fingerprint"),
    "pki.material": ("PkiMaterial", "build_material"),
    "pki.model": ("REVOCATION_REASONS", "ClientSpec", "KeyType", "OperatorCertificate", "PkiSpec", "Revocation",
                  "ServerSpec", "Subject", "Validity"),
    "pki.seed": ("Seed",),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
    "MAX_SERVER_DAYS",
    "REVOCATION_REASONS",
    "CertificateAuthority",
    "ClientSpec",
    "Issued",
    "KeyType",
    "OperatorCertificate",
    "PkiError",
    "PkiMaterial",
    "PkiSpec",
    "Profile",
    "Revocation",
    "Seed",
    "ServerSpec",
    "Subject",
    "Validity",
    "build_material",
    "days_left",
    "fingerprint",
    "pkcs12_bytes",
    "start_deriving",
    "stop_deriving",
    "write_client_bundle",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'pki' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
