"""Helper process for pki.keypool: reads "BITS SEED_HEX" lines, writes one PKCS#8 DER (hex) line
per request as soon as it is derived, in order, until its input ends. It only ever sees det-keygen
seeds, and writes only to its parent's pipe."""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives import serialization

from pki import detkeygen


def main() -> None:
    for line in sys.stdin:
        bits, seed = line.split()
        key = detkeygen.rsa_key(bytes.fromhex(seed), int(bits))
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        sys.stdout.write(der.hex() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
