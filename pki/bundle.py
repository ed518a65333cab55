"""What a client receives (the tutorial's steps 3.5 and 5): a password-protected PKCS#12 and PEMs.

Files are written by `pki.files`: 0600 from creation, never through a symlink, never over an
existing file, and the bundle is complete or absent (a refusal or failure leaves nothing behind).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from pki.errors import PkiError
from pki.files import write_private_files
from pki.issued import Issued, certificate_pem
from pki.p12crypto import MODERN_ITERATIONS, remac_pkcs12


class Profile(enum.Enum):
    """PKCS#12 encryption, named after cert-manager's profiles. LegacyDES is for Windows before
    10 1709 and older macOS/iOS keychains."""

    # PBES2: PBKDF2-HMAC-SHA256 (600,000) + AES-256-CBC; HMAC-SHA256 MAC, 600,000 iterations
    MODERN = "Modern2023"
    # PBES1: SHA-1 + 3-key 3DES, SHA-1 MAC, 2048 iterations (what those importers expect)
    LEGACY = "LegacyDES"

    @classmethod
    def parse(cls, text: str, *, setting: str = "profile") -> Profile:
        """cert-manager's names, any case, and this project's earlier `modern` / `legacy`."""
        aliases = {"modern2023": cls.MODERN, "modern": cls.MODERN, "legacydes": cls.LEGACY, "legacy": cls.LEGACY}
        try:
            return aliases[text.strip().lower()]
        except KeyError:
            raise PkiError(f"{setting}: unknown PKCS#12 profile {text!r}; allowed: Modern2023 (modern), "
                           "LegacyDES (legacy)") from None


# A password someone chose must not be the weak point even of the LegacyDES profile (2048
# SHA-1 iterations: ~2^11 hashes a guess): 20 characters with some variety, e.g. from
# `openssl rand -base64 15` (120 bits), puts guessing far beyond reach whatever the iterations.
MIN_PASSWORD_CHARS = 20
MIN_DISTINCT_CHARS = 10


def generate_password() -> str:
    """144 bits from the OS CSPRNG, URL-safe so it can be typed and pasted."""
    return secrets.token_urlsafe(18)


def check_password(password: str, *, setting: str = "PASSWORD_FILE") -> None:
    """Refuse short or repetitive passwords; the message never contains the password."""
    if len(password) < MIN_PASSWORD_CHARS or len(set(password)) < MIN_DISTINCT_CHARS:
        raise PkiError(
            f"{setting}: the bundle password needs at least {MIN_PASSWORD_CHARS} characters, "
            f"{MIN_DISTINCT_CHARS} of them different (got {len(password)}, {len(set(password))} different), "
            "so that guessing it is out of reach even for the LegacyDES profile; "
            "e.g. `openssl rand -base64 15`, or leave PASSWORD_FILE out to have one generated"
        )


def pkcs12_bytes(name: str, issued: Issued, ca_certificate: x509.Certificate, password: str,
                 profile: Profile = Profile.MODERN) -> bytes:
    key = issued.private_key
    if key is None:
        raise PkiError(f"client {name!r} was issued from a CSR: only the client holds its key, so no PKCS#12 is made")
    builder = PrivateFormat.PKCS12.encryption_builder()
    if profile is Profile.MODERN:
        builder = builder.kdf_rounds(MODERN_ITERATIONS).key_cert_algorithm(
            pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        builder = builder.kdf_rounds(2048).key_cert_algorithm(
            pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())  # noqa: S303 - legacy by request
    pfx = pkcs12.serialize_key_and_certificates(
        name.encode(), key, issued.certificate, [ca_certificate], builder.build(password.encode())
    )
    # cryptography always MACs with 2048 iterations: cheaper to test a guess against than the
    # 600,000 of the encryption, so the modern profile's MAC is redone at full strength.
    return remac_pkcs12(pfx, password) if profile is Profile.MODERN else pfx


@dataclass(frozen=True)
class BundleFiles:
    paths: list[Path]
    password_path: Path | None  # set when the password was generated


def write_client_bundle(out_dir: Path, name: str, issued: Issued, ca_certificate: x509.Certificate,
                        crl_pem: str, *, password: str | None = None,
                        profile: Profile = Profile.MODERN, plain_key: bool = False) -> BundleFiles:
    """Write <name>.p12, <name>.crt, <name>.key (encrypted), ca.crt, crl.pem [+ <name>.password]
    [+ <name>.plain.key, unencrypted PKCS#8, when `plain_key`: for wget, requests' cert=(crt, key)]."""
    generated = password is None
    secret = generate_password() if password is None else password
    check_password(secret)
    contents: dict[str, bytes] = {
        f"{name}.p12": pkcs12_bytes(name, issued, ca_certificate, secret, profile),
        f"{name}.crt": issued.certificate_pem.encode(),
        f"{name}.key": issued.encrypted_private_key_pem(secret.encode()).encode(),
        "ca.crt": certificate_pem(ca_certificate).encode(),
        "crl.pem": crl_pem.encode(),
    }
    if plain_key:
        contents[f"{name}.plain.key"] = issued.plain_pkcs8_pem().encode()
    if generated:
        contents[f"{name}.password"] = (secret + "\n").encode()
    paths = write_private_files(out_dir, contents)
    return BundleFiles(paths, out_dir / f"{name}.password" if generated else None)
