"""Deterministic key material: every key and serial is a pure function of (seed, label).

pki.seed turns (seed, label) into the 32-byte C2SP det-keygen seed of that one key; here it
becomes the key (pki/detkeygen.py; RSA ones through pki.keypool's cache), so the same label always
yields the same key and anyone holding the 32 bytes can check the key with another det-keygen
implementation.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki import detkeygen, keypool
from pki.keypool import rsa_request
from pki.model import KeyType
from pki.seed import Label, Seed, det_keygen_seed

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def pkcs8_der(key: PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 DER (what crosses a helper process's pipe)."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


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
