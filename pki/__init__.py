"""Reproducible key material for a CLB mutual-TLS listener.

Every key, certificate, serial and CRL is a pure function of a 32-byte seed and a plain description
(`PkiSpec`): the same inputs give byte-identical output on any machine. Nothing here reads the clock,
draws randomness (bundle passwords excepted: they are made for people, not plans) or knows Pulumi.
"""

from pki.authority import MAX_SERVER_DAYS, CertificateAuthority
from pki.bundle import Profile, pkcs12_bytes, write_client_bundle
from pki.derive import KeyType, Seed
from pki.errors import PkiError
from pki.issued import Issued, days_left, fingerprint
from pki.material import (
    OperatorCertificate,
    PkiMaterial,
    PkiSpec,
    ServerSpec,
    build_material,
    start_deriving,
    stop_deriving,
)
from pki.model import REVOCATION_REASONS, ClientSpec, Revocation, Subject, Validity

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
