"""The stack's one secret, and what is derived from it by label.

A label names what is derived (role, name, generation, ...); HKDF-SHA256 (RFC 5869) turns (seed,
label) into bytes no other label shares. Only the standard library here: the offline tools parse a
stack's config and hand its PKI to a helper process before they load cryptography (pki.headstart).
"""

from __future__ import annotations

import hmac
import string
from typing import Final

from pki.errors import PkiError
from pki.model import KeyType

SEED_BYTES: Final = 32
_DOMAIN: Final = b"slb-mtls/pki/v1"
_SHA256_BYTES: Final = 32

Label = tuple[str | int, ...]


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with HMAC-SHA256 (RFC 5869 2.3); `prk` is HKDF-Extract's output."""
    if not 0 < length <= 255 * _SHA256_BYTES:
        raise ValueError(f"HKDF-SHA256 gives 1 to {255 * _SHA256_BYTES} bytes, not {length}")
    okm, block = b"", b""
    for counter in range(1, -(-length // _SHA256_BYTES) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        okm += block
    return okm[:length]


def _encode_label(label: Label) -> bytes:
    """Length-prefixed parts, so ("ab", "c") and ("a", "bc") never collide."""
    out = bytearray(_DOMAIN)
    for part in label:
        raw = (f"i:{part}" if isinstance(part, int) else f"s:{part}").encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


class Seed:
    """The stack's 32-byte secret. Its repr never shows the value."""

    __slots__ = ("_prk", "_secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SEED_BYTES:
            raise PkiError(f"the pki seed must be {SEED_BYTES} bytes, got {len(secret)}")
        self._secret = secret
        self._prk = hmac.digest(_DOMAIN, secret, "sha256")  # HKDF-Extract, salt = _DOMAIN

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
        """The seed itself: only for a helper process's stdin pipe (pki.headstart.encode_context)."""
        return self._secret.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Seed) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.digest(("seed-identity",)))

    def digest(self, label: Label, length: int = 32) -> bytes:
        """A short derived value: HKDF-SHA256 (RFC 5869) of the seed, salt `_DOMAIN`, info the
        encoded label; e.g. det-keygen seeds and serial numbers."""
        return hkdf_expand(self._prk, _encode_label(label), length)


def det_keygen_seed(seed: Seed, key_type: KeyType, label: Label) -> bytes:
    """The C2SP det-keygen seed of one key: HKDF-SHA256 of the stack seed for the key's label.

    `python -m pki keygen --seed-hex <this> --type <key type>` (or any det-keygen implementation)
    re-derives the key from it. The key type is part of the label, so an RSA and an EC key never
    share a seed."""
    return seed.digest(("det-keygen", key_type.value, *label))


def server_key_label(generation: int) -> Label:
    """The label of the server certificate's key (pki.authority; derived ahead by pki.headstart)."""
    return ("server", generation)
