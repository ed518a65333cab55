"""An issued certificate with its key, and the renderings CLB and clients need."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pki.derive import PrivateKey, pkcs8_der
from pki.p12crypto import MODERN_ITERATIONS, encrypted_pkcs8_der, pem


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER, lower-case hex: what `openssl x509 -fingerprint -sha256` shows."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def days_left(certificate: x509.Certificate, today: dt.date) -> int:
    return (certificate.not_valid_after_utc.date() - today).days


@dataclass(frozen=True, eq=False)
class Issued:
    """A certificate and, unless it was signed from a client's CSR, its private key: the key, or
    what loads it on first use (pki.issuing, for a helper's answer: a plan needs no client key)."""

    certificate: x509.Certificate
    key_source: PrivateKey | Callable[[], PrivateKey] | None
    chain: tuple[x509.Certificate, ...] = ()  # intermediates, leaf excluded
    # The certificate's DER where the caller has it: exactly the bytes `certificate` was parsed from
    # (a helper's answer). cryptography re-encodes a certificate for each public_bytes/fingerprint
    # call (~15 us each); it accepts only DER that re-encodes to the same bytes.
    certificate_der: bytes | None = None

    @cached_property
    def private_key(self) -> PrivateKey | None:
        # Two threads asking at once both load it (equal keys, either kept); a load that fails is
        # not kept, so every later use fails the same way.
        source = self.key_source
        return source() if callable(source) else source

    @property
    def has_private_key(self) -> bool:
        """Whether there is a key (no CSR), without loading it."""
        return self.key_source is not None

    @cached_property
    def der(self) -> bytes:
        given = self.certificate_der
        return self.certificate.public_bytes(serialization.Encoding.DER) if given is None else given

    @cached_property
    def fingerprint(self) -> str:
        """As `fingerprint(self.certificate)`, from the DER once."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @cached_property
    def certificate_pem(self) -> str:
        """As `certificate_pem(self.certificate)`, from the DER once."""
        return pem("CERTIFICATE", self.der)

    @cached_property
    def chain_pem(self) -> str:
        """Leaf first, then intermediates: the order CLB requires."""
        return "".join(certificate_pem(c) for c in (self.certificate, *self.chain))

    def private_key_pem(self) -> str:
        """PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA, as CLB requires; PKCS#8 for EC."""
        key = self._require_key()
        key_format = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if isinstance(key, rsa.RSAPrivateKey)
            else serialization.PrivateFormat.PKCS8
        )
        return key.private_bytes(
            serialization.Encoding.PEM, key_format, serialization.NoEncryption()
        ).decode()

    def encrypted_private_key_pem(self, password: bytes, iterations: int = MODERN_ITERATIONS) -> str:
        """PKCS#8 encrypted with the bundle password (PBES2, PBKDF2-HMAC-SHA256 `iterations`,
        AES-256-CBC), for handing to a client. cryptography's BestAvailableEncryption does not let
        us choose the iteration count, so the structure is built here."""
        return pem("ENCRYPTED PRIVATE KEY", encrypted_pkcs8_der(self.plain_pkcs8_der(), password, iterations))

    def plain_pkcs8_der(self) -> bytes:
        return pkcs8_der(self._require_key())

    def plain_pkcs8_pem(self) -> str:
        """Unencrypted PKCS#8, for tools that cannot decrypt a key (wget, requests)."""
        return pem("PRIVATE KEY", self.plain_pkcs8_der())

    def _require_key(self) -> PrivateKey:
        if self.private_key is None:
            subject = self.certificate.subject.rfc4514_string()
            raise ValueError(f"{subject} was issued from a CSR: its private key stays with the client")
        return self.private_key
