"""The helper process of pki.keypool and pki.issuing (`python -m pki.worker`).

Started with --preload (pki.sharedqueue.prespawn: ahead of need, its start-up overlapping its
parent's), it loads everything either job needs before it reads anything; otherwise only what its
job needs, once it knows which (the "keys" job starts ~70 ms sooner). Its first input line
says what it does; then it answers one line per request line, in order, each as soon as it is
done, until its input ends. It writes only to its parent's pipe; an error ends it, and the parent
does whatever it did not deliver.

- "keys": requests "BITS SEED-HEX" (det-keygen seeds only); answers the PKCS#8 DER (hex) of
  det-keygen's RSA key.
- "issue CONTEXT" (JSON: the stack seed and the CA's definition, see pki.issuing): answers its CA
  certificate's SHA-256 fingerprint (hex) at once; requests are clients (JSON), answers
  "CERT-DER-HEX KEY-DER-HEX" (key "-" for a certificate made from a CSR).
"""

from __future__ import annotations

import importlib
import sys
from typing import TextIO

from cryptography.hazmat.primitives import serialization

from pki import detkeygen
from pki.derive import PrivateKey

_ISSUING_MODULES = ("pki.issuing", "pki.revocation")


def _pkcs8(key: PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).hex()


def _answer(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def derive_keys(requests: TextIO, out: TextIO) -> None:
    for line in requests:
        bits, seed = line.split()
        _answer(out, _pkcs8(detkeygen.rsa_key(bytes.fromhex(seed), int(bits))))


def issue_clients(context: str, requests: TextIO, out: TextIO) -> None:
    from pki.issuing import decode_client, decode_context  # see _ISSUING_MODULES
    from pki.revocation import certificate_authority

    seed, ca = decode_context(context)
    authority = certificate_authority(seed, ca.subject, ca.validity, ca.generation, ca.revoked, ca.key_type)
    _answer(out, authority.issued.fingerprint)
    for line in requests:
        issued = authority.issue_client(decode_client(line))
        der = issued.certificate.public_bytes(serialization.Encoding.DER).hex()
        _answer(out, f"{der} {_pkcs8(issued.private_key) if issued.private_key is not None else '-'}")


def main() -> None:
    if "--preload" in sys.argv[1:]:
        for module in _ISSUING_MODULES:
            importlib.import_module(module)
    mode, _, context = sys.stdin.readline().strip().partition(" ")
    if mode == "keys":
        derive_keys(sys.stdin, sys.stdout)
    elif mode == "issue":
        issue_clients(context, sys.stdin, sys.stdout)
    # anything else, or no line at all (started ahead of need, and not needed): nothing to do


if __name__ == "__main__":
    main()
