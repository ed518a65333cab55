"""Helper process for pki.keypool: reads "BITS SEED_HEX" lines, writes one PKCS#8 DER (hex) per
line, in order. It only ever sees det-keygen seeds, and writes only to its parent's pipe."""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives import serialization

from pki import detkeygen


def main() -> None:
    out = []
    for line in sys.stdin.read().splitlines():
        bits, seed = line.split()
        key = detkeygen.rsa_key(bytes.fromhex(seed), int(bits))
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        out.append(der.hex())
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
