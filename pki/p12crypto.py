"""Password-based protection with iteration counts we choose (cryptography fixes some of them):
the PKCS#12 MAC (RFC 7292 appendix B.2 key derivation) and the encrypted PKCS#8 `.key`
(PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, RFC 8018), both at the modern profile's 600,000."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pki import der
from pki.errors import PkiError

MODERN_ITERATIONS = 600_000  # OWASP 2023 for PBKDF2-HMAC-SHA256; also the MAC's
SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA1_OID = "1.3.14.3.2.26"
PBES2_OID = "1.2.840.113549.1.5.13"
PBKDF2_OID = "1.2.840.113549.1.5.12"
HMAC_SHA256_OID = "1.2.840.113549.2.9"
AES256_CBC_OID = "2.16.840.1.101.3.4.1.42"
PBE_SHA1_3DES_OID = "1.2.840.113549.1.12.1.3"


def _repeat_to_blocks(data: bytes, block: int) -> bytes:
    if not data:
        return b""
    size = block * math.ceil(len(data) / block)
    return (data * math.ceil(size / len(data)))[:size]


def pkcs12_mac_key(password: str, salt: bytes, iterations: int) -> bytes:
    """RFC 7292 B.2 with SHA-256 (u = 32, v = 64), ID 3 (MAC key), 32 bytes: one block suffices.
    The password is a BMPString with its terminating NUL, as OpenSSL and NSS encode it."""
    v = 64
    bmp = password.encode("utf-16-be") + b"\0\0"
    block = bytes([3]) * v + _repeat_to_blocks(salt, v) + _repeat_to_blocks(bmp, v)
    digest = hashlib.sha256(block).digest()
    sha256 = hashlib.sha256
    for _ in range(iterations - 1):
        digest = sha256(digest).digest()
    return digest


def remac_pkcs12(pfx: bytes, password: str, iterations: int = MODERN_ITERATIONS) -> bytes:
    """Replace a PFX's MAC (cryptography's: 2048 iterations) by an HMAC-SHA256 one with
    `iterations`, so the MAC is no cheaper a password oracle than the encryption."""
    outer, rest = der.parse_one(pfx, "PKCS#12")
    if outer.tag != der.SEQUENCE or rest:
        raise PkiError("PKCS#12: not a single DER SEQUENCE")
    version, auth_safe, *_ = outer.children("PKCS#12")
    _content_type, explicit = auth_safe.children("PKCS#12 authSafe")
    (data,) = explicit.children("PKCS#12 authSafe")
    salt = secrets.token_bytes(16)
    mac = hmac.digest(pkcs12_mac_key(password, salt, iterations), data.value, "sha256")
    mac_data = der.seq(
        der.seq(der.seq(der.oid(SHA256_OID), der.null()), der.octets(mac)),
        der.octets(salt),
        der.integer(iterations),
    )
    return der.seq(version.raw, auth_safe.raw, mac_data)


def encrypted_pkcs8_der(pkcs8: bytes, password: bytes, iterations: int = MODERN_ITERATIONS) -> bytes:
    """EncryptedPrivateKeyInfo, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC (what OpenSSL 3
    writes by default, but with a stated iteration count)."""
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(pkcs8) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    algorithm = der.seq(
        der.oid(PBES2_OID),
        der.seq(
            der.seq(der.oid(PBKDF2_OID), der.seq(der.octets(salt), der.integer(iterations),
                                                 der.seq(der.oid(HMAC_SHA256_OID), der.null()))),
            der.seq(der.oid(AES256_CBC_OID), der.octets(iv)),
        ),
    )
    return der.seq(algorithm, der.octets(ciphertext))


def pem(label: str, data: bytes) -> str:
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
