"""The helper process of pki.keypool and pki.headstart (`python -m pki.worker`).

Started with --preload (pki.sharedqueue.prespawn: ahead of need, its start-up overlapping its
parent's), it loads everything either job needs before it reads anything; otherwise only what its
job needs, once it knows which (the "keys" job starts ~70 ms sooner). Its first input line says
what it does; then it answers one line per request line, in order (in batches, see _Channel),
until its input ends. It writes only to its parent's pipe; an error ends it, and the parent does
whatever it did not deliver.

- "keys": requests "BITS SEED-HEX" (det-keygen seeds only); answers the PKCS#8 DER (hex) of
  det-keygen's RSA key.
- "issue CONTEXT" (JSON: the stack seed, the CA's definition and other RSA keys to derive; see
  pki.headstart.encode_context): answers first its CA certificate's SHA-256 fingerprint (hex),
  its CA's key and those keys (`first_answer`); requests are clients (JSON), answers
  "CERT-DER-HEX KEY-DER-HEX" (the key as PKCS#8; "-" for a certificate made from a CSR).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from queue import SimpleQueue
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import serialization

from pki import detkeygen, keypool
from pki.derive import pkcs8_der

if TYPE_CHECKING:
    from pki.authority import CertificateAuthority


class _Channel:
    """Request lines in (stdin), answer lines out (stdout). Answers leave in batches, once ~20 ms
    have passed since the last one (EC certificates ~15 at a time): its parent's reader thread then
    wakes once per batch, not for every answer. A job that takes longer (an RSA key) flushes what
    is pending first (`flush`), and so does waiting for input (its parent may be waiting for those
    answers to send more), so no answer waits behind another job. Input is read by a thread of its
    own, so the parent's requests never wait on this process's answers."""

    EVERY: Final = 0.02  # seconds since the last batch

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._flushed = time.monotonic()
        self._lines: SimpleQueue[str | None] = SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin.buffer:
            self._lines.put(line.decode().rstrip("\n"))
        self._lines.put(None)

    def requests(self) -> Iterator[str]:
        while True:
            if self._lines.empty():
                self.flush()  # about to wait
            line = self._lines.get()
            if line is None:
                self.flush()
                return
            yield line

    def answer(self, line: str) -> None:
        self._pending.append(line)
        if time.monotonic() - self._flushed >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            sys.stdout.buffer.write("".join(f"{line}\n" for line in self._pending).encode())
            sys.stdout.buffer.flush()
            self._pending.clear()
        self._flushed = time.monotonic()


def derive_keys(channel: _Channel, requests: Iterator[str]) -> None:
    for line in requests:
        bits, seed = line.split()
        channel.answer(pkcs8_der(detkeygen.rsa_key(bytes.fromhex(seed), int(bits))).hex())
        channel.flush()  # each key is tens of milliseconds of work: its parent may be waiting for it


def first_answer(authority: CertificateAuthority, context: str) -> str:
    """Before any client: its CA certificate's fingerprint, its CA's key, then the keys its job
    asks for, derived now (pki.headstart.Issuing.check_preamble reads it)."""
    from pki.headstart import decode_context

    offers = [(keypool.rsa_request(authority.seed, authority.label, authority.key_type.rsa_bits),
               authority.private_key)]
    offers += [((dk_seed, bits), detkeygen.rsa_key(dk_seed, bits)) for dk_seed, bits in decode_context(context)[2]]
    return " ".join([authority.issued.fingerprint,
                     *(f"{bits}:{dk_seed.hex()}:{pkcs8_der(key).hex()}" for (dk_seed, bits), key in offers)])


def issue_clients(context: str, channel: _Channel, requests: Iterator[str]) -> None:
    from pki.headstart import decode_client
    from pki.issuing import authority as issuing_authority  # at start-up under --preload

    authority = issuing_authority(context)
    channel.answer(first_answer(authority, context))
    channel.flush()
    for line in requests:
        client = decode_client(line)
        if client.key_type.is_rsa and client.csr_pem is None:
            channel.flush()  # an RSA key takes tens of milliseconds: what is done goes first
        issued = authority.issue_client(client)
        der = issued.certificate.public_bytes(serialization.Encoding.DER).hex()
        channel.answer(f"{der} {issued.plain_pkcs8_der().hex() if issued.private_key is not None else '-'}")


def main() -> None:
    if "--preload" in sys.argv[1:]:
        import pki.issuing  # noqa: F401  (everything the "issue" job needs, before it is asked)
    channel = _Channel()
    requests = channel.requests()
    mode, _, context = next(requests, "").partition(" ")
    if mode == "keys":
        derive_keys(channel, requests)
    elif mode == "issue":
        issue_clients(context, channel, requests)
    # anything else, or no line at all (started ahead of need, and not needed): nothing to do


if __name__ == "__main__":
    main()
