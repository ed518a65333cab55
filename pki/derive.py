"""Deterministic key material: every key and serial is a pure function of (seed, label).

A label names what is derived (role, name, generation, ...). HKDF-SHA256 turns (seed, label) into
32 bytes that are the C2SP det-keygen seed of that one key (pki/detkeygen.py), so no two labels
share randomness, the same label always yields the same key, and anyone holding the 32 bytes can
check the key with another det-keygen implementation.
"""

from __future__ import annotations

import enum
import hmac
import string
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pki import detkeygen, keypool
from pki.errors import PkiError

SEED_BYTES: Final = 32
_DOMAIN: Final = b"slb-mtls/pki/v1"

Label = tuple[str | int, ...]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class KeyType(enum.Enum):
    """Key algorithms the pki issues. CLB takes RSA for its own certificates; clients may use EC."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"

    @classmethod
    def parse(cls, text: str, *, setting: str) -> KeyType:
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(k.value for k in cls)
            raise PkiError(f"{setting}: unknown key type {text!r}; allowed: {allowed}") from None

    @classmethod
    def rsa(cls, bits: int, *, setting: str) -> KeyType:
        return cls.parse(f"rsa-{bits}", setting=setting)

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")

    @property
    def rsa_bits(self) -> int:
        return int(self.value.removeprefix("rsa-"))


def pkcs8_der(key: PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 DER (what crosses a helper process's pipe)."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _encode_label(label: Label) -> bytes:
    """Length-prefixed parts, so ("ab", "c") and ("a", "bc") never collide."""
    out = bytearray(_DOMAIN)
    for part in label:
        raw = (f"i:{part}" if isinstance(part, int) else f"s:{part}").encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


class Seed:
    """The stack's 32-byte secret. Its repr never shows the value."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SEED_BYTES:
            raise PkiError(f"the pki seed must be {SEED_BYTES} bytes, got {len(secret)}")
        self._secret = secret

    # Shown whenever a seed is refused. Piped, so the seed never appears in the process list.
    MAKE_ONE: Final = "openssl rand -hex 32 | pulumi config set --secret pkiSeed"

    @classmethod
    def from_hex(cls, text: str, *, setting: str) -> Seed:
        """Parse 64 hex characters of real randomness; the error names the setting and never
        echoes the value (nor any part of it)."""
        cleaned = text.strip()
        is_hex = all(c in string.hexdigits for c in cleaned)
        if len(cleaned) != 2 * SEED_BYTES or not is_hex:
            problem = f"{len(cleaned)} characters" + ("" if is_hex else ", not all hexadecimal")
            raise PkiError(
                f"{setting}: expected {2 * SEED_BYTES} hexadecimal characters "
                f"(32 random bytes), got {problem}; make one with:  {cls.MAKE_ONE}"
            )
        secret = bytes.fromhex(cleaned)
        weakness = cls._weakness(secret)
        if weakness:
            raise PkiError(f"{setting}: not random enough ({weakness}); every key of the stack would be "
                           f"guessable. Make one with:  {cls.MAKE_ONE}")
        return cls(secret)

    @staticmethod
    def _weakness(secret: bytes) -> str | None:
        """Why `secret` cannot be 32 random bytes, or None. Each test wrongly refuses a truly random
        seed with probability below 1e-13 (32 draws from 256 values give ~30 distinct ones)."""
        if len(set(secret)) < 16:
            return f"only {len(set(secret))} distinct byte values: a constant or a repeated pattern"
        steps = {(secret[i + 1] - secret[i]) % 256 for i in range(len(secret) - 1)}
        if len(steps) < 16:
            return "its bytes follow a simple sequence"
        if all(0x20 <= b < 0x7F for b in secret):
            return "it is printable text written as hex, not random bytes"
        return None

    def __repr__(self) -> str:
        return "Seed(<secret>)"

    def secret_hex(self) -> str:
        """The seed itself: only for a helper process's stdin pipe (pki.issuing)."""
        return self._secret.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Seed) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.digest(("seed-identity",)))

    def digest(self, label: Label, length: int = 32) -> bytes:
        """A short derived value (HKDF-SHA256), e.g. for serial numbers."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_DOMAIN, info=_encode_label(label))
        return hkdf.derive(self._secret)


def det_keygen_seed(seed: Seed, key_type: KeyType, label: Label) -> bytes:
    """The C2SP det-keygen seed of one key: HKDF-SHA256 of the stack seed for the key's label.

    `python -m pki keygen --seed-hex <this> --type <key type>` (or any det-keygen implementation)
    re-derives the key from it. The key type is part of the label, so an RSA and an EC key never
    share a seed."""
    return seed.digest(("det-keygen", key_type.value, *label))


def rsa_request(seed: Seed, label: Label, bits: int) -> tuple[bytes, int]:
    """What pki.keypool needs to derive (or prefetch) one RSA key."""
    if bits not in (2048, 3072, 4096):
        raise PkiError(f"RSA key size {bits} is not supported; allowed: 2048, 3072, 4096")
    return det_keygen_seed(seed, KeyType.rsa(bits, setting="RSA key size"), label), bits


def derive_rsa_key(seed: Seed, label: Label, bits: int) -> rsa.RSAPrivateKey:
    """Cached (pki.keypool): a plan and the retired CAs derive the same keys again."""
    return keypool.rsa_key(*rsa_request(seed, label, bits))


def derive_ec_p256_key(seed: Seed, label: Label) -> ec.EllipticCurvePrivateKey:
    return detkeygen.ec_p256_key(det_keygen_seed(seed, KeyType.EC_P256, label))


def derive_key(seed: Seed, label: Label, key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.EC_P256:
        return derive_ec_p256_key(seed, label)
    return derive_rsa_key(seed, label, key_type.rsa_bits)


def derive_serial(seed: Seed, label: Label) -> int:
    """A positive 127-bit serial (RFC 5280 allows 20 octets; CA/B asks for 64+ random bits)."""
    value = int.from_bytes(seed.digest(("serial", *label), 16), "big") >> 1
    return value or 1
