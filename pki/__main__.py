"""`python -m pki keygen --seed-hex HEX --type rsa-2048|rsa-3072|rsa-4096|ec-p256`: the C2SP
det-keygen key for exactly that seed, as unencrypted PKCS#8 PEM on stdout.

With the seed of one of the stack's keys (pki.seed.det_keygen_seed) this re-derives that key, so
a reviewer can check a derived key against any other det-keygen implementation."""

from __future__ import annotations

import argparse
import string
import sys

from cryptography.hazmat.primitives import serialization

from pki import detkeygen
from pki.errors import PkiError
from pki.model import KeyType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pki", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="print the det-keygen key for a seed (PKCS#8 PEM)")
    keygen.add_argument("--seed-hex", required=True, help="the det-keygen seed, hex (at least 16 bytes)")
    keygen.add_argument("--type", required=True, choices=[k.value for k in KeyType])
    args = parser.parse_args(argv)
    try:
        text = args.seed_hex.strip()
        if len(text) % 2 or not all(c in string.hexdigits for c in text):
            raise PkiError("--seed-hex: expected an even number of hexadecimal characters")
        seed = bytes.fromhex(text)
        key_type = KeyType(args.type)
        key = (detkeygen.ec_p256_key(seed) if key_type is KeyType.EC_P256
               else detkeygen.rsa_key(seed, key_type.rsa_bits))
    except PkiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    sys.stdout.write(pem.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
