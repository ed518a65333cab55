"""Client certificates issued on two cores when a plan has enough of them.

Each client certificate costs one RSA signature by the CA (~1 ms here; CLB takes only RSA CAs),
and an RSA client's det-keygen key ~30 times that; cryptography holds the GIL while signing, so
threads would not help. A helper process (`python -m pki.worker`) builds the same CA and issues
from the front of a shared queue while this process issues from the back (pki.sharedqueue), keys
and certificates together, so no phase of a plan runs on one core only. Started early (the offline
tools start it while Pulumi imports), it has usually issued most of them before the program asks.

The helper needs the stack seed (client keys and serials are derived from it): it arrives on the
helper's stdin, never in its environment or command line, and the helper writes only to this
process's pipe. Its first answer is its CA certificate's fingerprint; its certificates are used
only when that fingerprint is the one of the CA this process built, and each with a key of the
kind asked for that matches it, so plans stay byte-identical whoever issued what.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from pki.authority import CertificateAuthority
from pki.derive import KeyType, PrivateKey, Seed
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import ClientSpec, Subject, Validity
from pki.revocation import certificate_authority
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


@dataclass(eq=False)
class _Issuing:
    ca_fingerprint: str | None = None  # the helper's CA, once it said
    from_helper: dict[ClientSpec, tuple[bytes, bytes | None]] = field(default_factory=dict)  # DER answers
    queue: SharedQueue[ClientSpec, tuple[bytes, bytes | None]] = field(init=False)

    def check_preamble(self, line: str) -> bool:
        """The helper's CA certificate's fingerprint (SHA-256 hex)."""
        if len(line) != 64 or line.strip("0123456789abcdef"):
            return False
        self.ca_fingerprint = line
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


def encode_context(seed: Seed, ca: CaDefinition) -> str:
    """The helper's job: the seed and the CA's definition (the helper derives the CA's key: it is
    started before this process has it)."""
    return json.dumps({"seed": seed.secret_hex(), "subject": asdict(ca.subject), "validity": _validity(ca.validity),
                       "generation": ca.generation, "revoked": list(ca.revoked), "key_type": ca.key_type.value})


def authority(context: str) -> CertificateAuthority:
    """The CA a helper issues with, from its job (`encode_context`)."""
    d = json.loads(context)
    seed = Seed(bytes.fromhex(d["seed"]))
    ca = CaDefinition(Subject(**d["subject"]), _validity_from(d["validity"]), int(d["generation"]),
                      tuple(d["revoked"]), KeyType(d["key_type"]))
    return certificate_authority(seed, ca.subject, ca.validity, ca.generation, ca.revoked, ca.key_type)


def _answer(line: str, client: ClientSpec) -> tuple[bytes, bytes | None] | None:
    """The helper's answer, as DER; parsed and checked by `_issued` in the plan's own thread (the
    reader thread would take the GIL from the plan while it imports Pulumi)."""
    cert_hex, key_hex = line.split()
    return bytes.fromhex(cert_hex), None if key_hex == "-" else bytes.fromhex(key_hex)


# A P-256 private key as cryptography writes it in PKCS#8: this header, the 32-byte scalar, then
# [1] { BIT STRING { no unused bits, the uncompressed public point 04 X Y } }
_P256_PKCS8_HEAD: Final = bytes.fromhex("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420")
_P256_PKCS8_POINT: Final = bytes.fromhex("a14403420004")
_P256_PKCS8_SIZE: Final = len(_P256_PKCS8_HEAD) + 32 + len(_P256_PKCS8_POINT) + 64


# A P-256 public key in a certificate: SubjectPublicKeyInfo { { ecPublicKey, prime256v1 }, BIT
# STRING { no unused bits, 04 X Y } }. In the DER of a certificate the first such header is its
# key's: only the serial (at most 20 bytes), names, dates and fixed algorithm IDs come before it.
_P256_SPKI_HEAD: Final = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def _p256_public_point(cert_der: bytes) -> bytes | None:
    at = cert_der.find(_P256_SPKI_HEAD)
    return None if at < 0 else cert_der[at + len(_P256_SPKI_HEAD):at + len(_P256_SPKI_HEAD) + 65]


def _matching_key(key_der: bytes, certificate: x509.Certificate, client: ClientSpec) -> PrivateKey | None:
    """The helper's key for this client, if it is of the kind asked for and the certificate's."""
    try:
        # Not OpenSSL's RSA key check: it re-tests both primes (ms per key), which det-keygen did.
        # (An EC key is checked on load: cryptography refuses one whose point is not its scalar's.)
        key = load_der_private_key(key_der, None, unsafe_skip_rsa_key_validation=True)
        if isinstance(key, rsa.RSAPrivateKey):
            wanted = client.key_type.is_rsa and key.key_size == client.key_type.rsa_bits
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            wanted = client.key_type is KeyType.EC_P256 and key.curve.name == "secp256r1"
        else:
            return None
        return key if wanted and key.public_key() == certificate.public_key() else None
    except (ValueError, TypeError, UnsupportedAlgorithm):  # not DER, or not a key this asks for
        return None


def _deferred_ec_key(key_der: bytes, cert_der: bytes, certificate: x509.Certificate,
                     client: ClientSpec) -> Issued | None:
    """An EC client whose key, as the helper wrote it, carries its certificate's public point, with
    the key itself loaded (and checked) on first use: a plan uses no client key, and loading and
    comparing one costs ~50 us, a third of a plan's own work per client; this check ~1 us. None
    when the key is not a P-256 PKCS#8 as cryptography writes it: then it is checked at once."""
    if (len(key_der) != _P256_PKCS8_SIZE or not key_der.startswith(_P256_PKCS8_HEAD)
            or key_der[-70:-64] != _P256_PKCS8_POINT or key_der[-65:] != _p256_public_point(cert_der)):
        return None

    def load() -> PrivateKey:
        key = _matching_key(key_der, certificate, client)
        if key is None:
            raise PkiError(f"the issuing helper's key for {certificate.subject.rfc4514_string()} does not match its "
                           "certificate; plan again with SLB_MTLS_PKI_WORKERS=1 and report this")
        return key

    return Issued(certificate, load, certificate_der=cert_der)


def _issued(answer: tuple[bytes, bytes | None], client: ClientSpec) -> Issued | None:
    """A certificate and key as the helper made them, or None if they are not what was asked."""
    cert_der, key_der = answer
    try:
        certificate = x509.load_der_x509_certificate(cert_der)
    except (ValueError, TypeError):  # not DER
        return None
    if client.csr_pem is not None or key_der is None:
        from_csr = client.csr_pem is not None and key_der is None
        return Issued(certificate, None, certificate_der=cert_der) if from_csr else None
    if client.key_type is KeyType.EC_P256 and (deferred := _deferred_ec_key(key_der, cert_der, certificate, client)):
        return deferred
    key = _matching_key(key_der, certificate, client)
    return None if key is None else Issued(certificate, key, certificate_der=cert_der)


_started: _Issuing | None = None


def start(seed: Seed, ca: CaDefinition, clients: list[ClientSpec], *, minimum: int = MIN_PARALLEL) -> None:
    """Begin issuing these clients in the helper process, without waiting (see `issue_clients`),
    if they cost at least `minimum` EC clients; a start already made stands."""
    global _started
    if _started is not None or sum(cost(c) for c in clients) < minimum:
        return
    state = _Issuing()
    job = f"issue {encode_context(seed, ca)}"
    queue = SharedQueue.start(clients, results=state.from_helper, encode=encode_client, decode=_answer,
                              ahead=_AHEAD, batch=_BATCH, preamble=(job, state.check_preamble))
    if queue is not None:
        state.queue = queue
        _started = state


def started() -> bool:
    """Whether a helper is issuing clients (`start` found enough to share)."""
    return _started is not None


def issue_clients(ca: CertificateAuthority, clients: list[ClientSpec]) -> dict[str, Issued]:
    """Every client's certificate from this CA, in order: the helper's where it issued them for
    this very CA, this process's for the rest."""
    global _started
    state, _started = _started, None
    mine: dict[ClientSpec, Issued] = {}
    if state is not None:
        queue = state.queue
        try:
            queue.add(clients)
            queue.retain(clients)  # not a client a head start queued that is not among these
            while (client := queue.take()) is not None:  # nobody started these: from the back
                mine[client] = ca.issue_client(client)
            # The helper has the rest, front first. Take its answers from the front as they come
            # and issue from the back here meanwhile: the two meet in the middle, and nothing
            # waits for the helper's last batch.
            left = deque(c for c in clients if c not in mine)
            trusted = True
            fingerprint = ca.issued.fingerprint
            while left:
                issued = None
                # the answer first: the helper's CA fingerprint is known before any answer is
                answer = state.from_helper.get(left[0]) if trusted else None
                if trusted and state.ca_fingerprint not in (None, fingerprint):
                    trusted = False  # another CA (the config changed since the head start)
                elif answer is not None:
                    issued = _issued(answer, left[0])
                    trusted = issued is not None  # a wrong answer: the helper is not trusted with the rest
                if not trusted:
                    queue.close(kill=True)  # nothing it makes will be used: stop it now (once)
                if issued is not None:
                    mine[left.popleft()] = issued
                else:
                    client = left.pop()
                    mine[client] = ca.issue_client(client)
        finally:
            queue.close(kill=True)  # done with it (its answers past the middle are not needed)
    return {c.name: mine.get(c) or ca.issue_client(c) for c in clients}


def cancel() -> None:
    """Stop a `start()` nobody will finish (e.g. the plan failed before it needed the clients)."""
    global _started
    state, _started = _started, None
    if state is not None:
        state.queue.close(kill=True)
