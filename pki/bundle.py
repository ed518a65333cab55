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

from pki import files
from pki.errors import PkiError
from pki.files import write_private_files
from pki.issued import Issued, certificate_pem


class Profile(enum.Enum):
    """PKCS#12 encryption. `legacy` is for Windows before 10 1709, and older macOS/iOS keychains."""

    MODERN = "modern"  # PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, SHA-256 MAC
    LEGACY = "legacy"  # PBES1: SHA-1 + 3-key 3DES, SHA-1 MAC


def generate_password() -> str:
    """144 bits from the OS CSPRNG, URL-safe so it can be typed and pasted."""
    return secrets.token_urlsafe(18)


def pkcs12_bytes(name: str, issued: Issued, ca_certificate: x509.Certificate, password: str,
                 profile: Profile = Profile.MODERN) -> bytes:
    key = issued.private_key
    if key is None:
        raise PkiError(f"client {name!r} was issued from a CSR: only the client holds its key, so no PKCS#12 is made")
    builder = PrivateFormat.PKCS12.encryption_builder()
    if profile is Profile.MODERN:
        builder = builder.kdf_rounds(600_000).key_cert_algorithm(
            pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        builder = builder.kdf_rounds(2048).key_cert_algorithm(
            pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())  # noqa: S303 - legacy by request
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, issued.certificate, [ca_certificate], builder.build(password.encode())
    )


@dataclass(frozen=True)
class BundleFiles:
    paths: list[Path]
    password_path: Path | None  # set when the password was generated


def write_client_bundle(out_dir: Path, name: str, issued: Issued, ca_certificate: x509.Certificate,
                        crl_pem: str, *, password: str | None = None,
                        profile: Profile = Profile.MODERN) -> BundleFiles:
    """Write <name>.p12, <name>.crt, <name>.key (encrypted), ca.crt, crl.pem [+ <name>.password]."""
    generated = password is None
    secret = generate_password() if password is None else password
    if len(secret) < 8:
        raise PkiError("bundle password (PASSWORD_FILE): at least 8 characters, please")
    contents: dict[str, bytes] = {
        f"{name}.p12": pkcs12_bytes(name, issued, ca_certificate, secret, profile),
        f"{name}.crt": issued.certificate_pem.encode(),
        f"{name}.key": issued.encrypted_private_key_pem(secret.encode()).encode(),
        "ca.crt": certificate_pem(ca_certificate).encode(),
        "crl.pem": crl_pem.encode(),
    }
    if generated:
        contents[f"{name}.password"] = (secret + "\n").encode()
    paths = write_private_files(out_dir, contents)
    return BundleFiles(paths, out_dir / f"{name}.password" if generated else None)


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` 0600, whole, failing if it exists in any form (a dangling symlink included)."""
    files.write_private_file(path, data)
