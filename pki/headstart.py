"""The head start: a plan's PKI handed to a helper process before this process loads cryptography.

The offline tools read a stack's config, turn it into a `PkiSpec` and call `start_deriving` with
only the standard library, pydantic and PyYAML loaded: the helper (pki.worker, started at once by
pki.sharedqueue.prespawn and loading cryptography meanwhile) begins issuing clients sooner
than if this process loaded cryptography first (~0.1 s here). This module does not import it, and
for a CA without history nor does `start_deriving` (a test holds it); a CA with history needs
x509 names for its retired CAs' keys, and loads it first.

Client certificates: each costs one RSA signature by the CA (~1 ms here; CLB takes only RSA CAs),
and an RSA client's det-keygen key ~30 times that; cryptography holds the GIL while signing, so
threads would not help. The helper builds the same CA and issues from the front of a shared queue
(pki.sharedqueue); pki.issuing takes its answers and issues from the back.

The helper needs the stack seed (client keys and serials are derived from it): it arrives on the
helper's stdin, never in its environment or command line, and the helper writes only to this
process's pipe. Its first answer is its CA certificate's fingerprint, its CA's key and the keys it
was asked for (`Issuing.check_preamble`): keys go to pki.keypool only for requests this process
named, and are trusted as the key helper's are (an RSA key of the size asked for).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from pki import keypool, sharedqueue
from pki.model import ClientSpec, KeyType, PkiSpec, Subject, Validity
from pki.seed import Seed
from pki.sharedqueue import SharedQueue

# Work is counted in EC clients (~1.3 ms each, the CA's signature): an RSA client's det-keygen key
# costs ~27 of them at 2048 bits, and ~2.3 and ~6 times that at 3072 and 4096 bits.
_RSA_CLIENT_COST: Final = {2048: 27, 3072: 62, 4096: 160}
MIN_PARALLEL: Final = 16  # the helper costs ~0.25 s of the other core to start
# Started by the program itself (no head start): only where the helper's start-up (~0.3 s, while
# this process derives the CA and server keys and issues alone) is soon repaid: ~6 RSA-2048 clients.
MIN_PARALLEL_LATE: Final = 160
# Up to 48 clients handed over, 24 at a time, answered in batches every ~20 ms and before each RSA
# key (pki.worker): the helper never waits for this process, whose reader thread wakes once per
# batch, not for every client. What the helper still holds at the end, this process issues from
# the back meanwhile.
_AHEAD: Final = 48
_BATCH: Final = 24


@dataclass(frozen=True)
class CaDefinition:
    """What builds a CA epoch (pki.revocation.certificate_authority's arguments)."""

    subject: Subject
    validity: Validity
    generation: int
    revoked: tuple[str, ...]
    key_type: KeyType


def cost(client: ClientSpec) -> int:
    """What issuing this client costs, in EC clients."""
    if client.csr_pem is not None or not client.key_type.is_rsa:
        return 1
    return _RSA_CLIENT_COST[client.key_type.rsa_bits]


_HEX: Final = frozenset("0123456789abcdef")
_RSA_BITS: Final = frozenset(str(k.rsa_bits) for k in KeyType if k.is_rsa)


def _offer(text: str) -> tuple[keypool.Request, bytes] | None:
    """BITS:DET-KEYGEN-SEED-HEX:PKCS8-DER-HEX, or None if it is not that."""
    bits, dk_seed, der_hex = text.split(":") if text.count(":") == 2 else ("", "", "")
    if (bits not in _RSA_BITS or len(dk_seed) != 64 or len(der_hex) % 2
            or not _HEX.issuperset(dk_seed + der_hex)):
        return None
    return (bytes.fromhex(dk_seed), int(bits)), bytes.fromhex(der_hex)


@dataclass(eq=False)
class Issuing:
    """Clients being issued by a helper: its CA's fingerprint and key once it said, the other keys
    it was asked for (`start`'s `keys`), its answers as they come."""

    asked: frozenset[keypool.Request] = frozenset()
    ca_fingerprint: str | None = None  # the helper's CA, once it said
    # private keys: never in a repr (an assertion's message, say)
    ca_key: tuple[keypool.Request, bytes] | None = field(default=None, repr=False)  # (its request, PKCS#8 DER)
    from_helper: dict[ClientSpec, tuple[bytes, bytes | None]] = field(default_factory=dict, repr=False)
    queue: SharedQueue[ClientSpec, tuple[bytes, bytes | None]] = field(init=False, repr=False)

    def check_preamble(self, line: str) -> bool:
        """The helper's CA certificate's fingerprint (SHA-256 hex), its CA's key, then each key it
        was asked for, each key as `_offer` reads it. The keys asked for are offered to pki.keypool
        at once; the CA's only once this process names the request it wants it for (`offer_ca_key`):
        a helper never places a key where nobody asked for one (a retired CA's, say)."""
        fingerprint, *keys = line.split(" ")
        if len(fingerprint) != 64 or not _HEX.issuperset(fingerprint) or not keys:
            return False
        offers = [_offer(key) for key in keys]
        if None in offers or {offer[0] for offer in offers[1:] if offer} != self.asked:
            return False
        self.ca_key = offers[0]
        for request, der in (offer for offer in offers[1:] if offer):
            keypool.offer(request, der)
        self.ca_fingerprint = fingerprint
        return True


# The helper's requests, as JSON: plain values only, nothing it would have to trust.
def _validity(v: Validity) -> dict[str, Any]:
    return {"issued": v.issued.isoformat(), "days": v.days}


def _validity_from(d: dict[str, Any]) -> Validity:
    return Validity(dt.date.fromisoformat(d["issued"]), int(d["days"]))


def encode_client(client: ClientSpec) -> str:
    return json.dumps({**asdict(client), "validity": _validity(client.validity), "key_type": client.key_type.value})


def decode_client(line: str) -> ClientSpec:
    d = json.loads(line)
    return ClientSpec(d["name"], _validity_from(d["validity"]), d["email"], KeyType(d["key_type"]),
                      int(d["generation"]), d["csr_pem"])


def encode_context(seed: Seed, ca: CaDefinition, keys: Sequence[keypool.Request] = ()) -> str:
    """The helper's job: the seed, the CA's definition (the helper derives the CA's key: it is
    started before this process has it) and other RSA keys to derive before the clients."""
    return json.dumps({"seed": seed.secret_hex(), "subject": asdict(ca.subject), "validity": _validity(ca.validity),
                       "generation": ca.generation, "revoked": list(ca.revoked), "key_type": ca.key_type.value,
                       "keys": [[bits, dk_seed.hex()] for dk_seed, bits in keys]})


def decode_context(context: str) -> tuple[Seed, CaDefinition, list[keypool.Request]]:
    """The seed, CA and other keys of a helper's job (`encode_context`)."""
    d = json.loads(context)
    ca = CaDefinition(Subject(**d["subject"]), _validity_from(d["validity"]), int(d["generation"]),
                      tuple(d["revoked"]), KeyType(d["key_type"]))
    return Seed(bytes.fromhex(d["seed"])), ca, [(bytes.fromhex(dk_seed), int(bits)) for bits, dk_seed in d["keys"]]


def answer_der(line: str, client: ClientSpec) -> tuple[bytes, bytes | None] | None:
    """The helper's answer, as DER; parsed and checked by pki.issuing in the plan's own thread (the
    reader thread would take the GIL from the plan while it imports Pulumi)."""
    cert_hex, key_hex = line.split()
    return bytes.fromhex(cert_hex), None if key_hex == "-" else bytes.fromhex(key_hex)


_started: Issuing | None = None


def start(seed: Seed, ca: CaDefinition, clients: list[ClientSpec], *, minimum: int = MIN_PARALLEL,
          keys: Sequence[keypool.Request] = ()) -> None:
    """Begin issuing these clients in the helper process, without waiting (see pki.issuing),
    if they cost at least `minimum` EC clients; a start already made stands. The helper first
    derives `keys` and offers them, with its CA's key, to pki.keypool."""
    global _started
    if _started is not None or sum(cost(c) for c in clients) < minimum:
        return
    state = Issuing(frozenset(keys))
    job = f"issue {encode_context(seed, ca, keys)}"
    queue = SharedQueue.start(clients, results=state.from_helper, encode=encode_client, decode=answer_der,
                              ahead=_AHEAD, batch=_BATCH, preamble=(job, state.check_preamble))
    if queue is not None:
        state.queue = queue
        _started = state


def started() -> bool:
    """Whether a helper is issuing clients (`start` found enough to share)."""
    return _started is not None


def offer_ca_key(request: keypool.Request) -> None:
    """The helper's CA key, to pki.keypool, if the helper derived it for `request` (the caller's
    own det-keygen request for the CA it is about to build)."""
    state = _started
    if state is not None and state.ca_key is not None and state.ca_key[0] == request:
        keypool.offer(*state.ca_key)


def take() -> Issuing | None:
    """The helper's work so far, for pki.issuing to finish; none is started any more."""
    global _started
    state, _started = _started, None
    return state


def cancel() -> None:
    """Stop a `start()` nobody will finish (e.g. the plan failed before it needed the clients)."""
    state = take()
    if state is not None:
        state.queue.close(kill=True)


def ca_definition(spec: PkiSpec) -> CaDefinition:
    """The current CA epoch's."""
    return CaDefinition(spec.subject, spec.ca_validity, spec.ca_generation, spec.revoked_names, spec.ca_key_type)


def start_deriving(seed: Seed, spec: PkiSpec) -> bool:
    """Begin deriving the spec's CA and server keys and issuing its clients on a second core, and
    return at once (whether a helper took work), for a caller with other start-up work to do first;
    pki.material.build_material finishes the job (`stop_deriving` drops it)."""
    requests: list[keypool.Request] | None = None  # the CA epochs' and the server's keys, once worked out
    if spec.revocations or spec.ca_generation > 1:
        # A CA history: the retired CAs' keys too, maybe enough to share (pki.keypool). Their
        # labels need x509 names, so cryptography; without a history there are two RSA keys
        # (the CA's and the server's), never enough, and nothing waits for cryptography.
        from pki.revocation import rsa_requests

        requests = rsa_requests(seed, spec)
        keypool.start(requests)
    # The issuing helper derives its CA's key anyway; it offers it, and derives the server's too
    # (~30 ms each) while this process loads Pulumi: the program derives neither if they are back
    # when it asks (else it derives them itself; nothing waits). Not when the key helper has them.
    server_keys = [] if keypool.started() else keypool.server_key_requests(seed, spec)
    start(seed, ca_definition(spec), spec.active_clients, keys=server_keys)
    if not started() and sharedqueue.has_spare():
        # Too few clients to share, but a helper is running already: it derives the CA's and the
        # server's keys instead (their labels need cryptography, which the program loads next).
        from pki.revocation import rsa_requests

        keypool.start(requests if requests is not None else rsa_requests(seed, spec), minimum=1)
    sharedqueue.release_spare()  # a helper started ahead of need that nobody took
    return keypool.started() or started()


def stop_deriving() -> None:
    keypool.cancel()
    cancel()
    keypool.drop_offers()  # the plan is made: no key DER left behind
