"""pki.issuing: client certificates issued from both ends of one queue, by this process and a helper
process (`python -m pki.worker`). Whoever issues and whatever the helper does (dies, answers
garbage, builds another CA), the certificates are the ones this process would have made."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SEED, TODAY, client, record_helpers, replace_helper, spec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki import (
    KeyType,
    PkiError,
    PkiMaterial,
    PkiSpec,
    Revocation,
    build_material,
    headstart,
    issuing,
    sharedqueue,
    start_deriving,
    stop_deriving,
)
from pki.authority import CertificateAuthority
from pki.revocation import certificate_authority

pytestmark = pytest.mark.usefixtures("issuing_helper")


def _csr(name: str) -> str:
    key = ec.derive_private_key(1000 + len(name), ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# 20 EC clients, 2 from CSRs, 2 RSA, one revoked: a CA of epoch 1, not 0
SPEC: PkiSpec = spec(
    (Revocation("ec-03"),),
    clients=(*(client(f"ec-{i:02d}", key_type=KeyType.EC_P256) for i in range(20)),
             client("csr-a", csr_pem=_csr("csr-a")), client("csr-b", csr_pem=_csr("csr-b")),
             client("rsa-a"), client("rsa-b", email="b@example.com")),
)


def _rendered(material: PkiMaterial) -> list[str]:
    """Everything a plan shows of the material; each client's PEM and fingerprint also as
    cryptography renders them from the parsed certificate (a helper's come from its DER)."""
    for c in material.clients.values():
        assert c.certificate_pem == c.certificate.public_bytes(serialization.Encoding.PEM).decode()
        assert c.fingerprint == c.certificate.fingerprint(hashes.SHA256()).hex()
    return [material.ca.issued.certificate_pem, material.crl_pem,
            *(name + c.certificate_pem + c.fingerprint + (c.private_key_pem() if c.private_key else "")
              for name, c in material.clients.items())]


@pytest.fixture(scope="module")
def alone() -> list[str]:
    """Everything issued in this process only."""
    os.environ["SLB_MTLS_PKI_WORKERS"] = "1"
    try:
        return _rendered(build_material(SEED, SPEC, today=TODAY))
    finally:
        del os.environ["SLB_MTLS_PKI_WORKERS"]


@pytest.fixture(autouse=True)
def _two_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    yield
    headstart.cancel()
    sharedqueue.release_spare()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many certificates the helper's queue delivered, per plan."""
    delivered: list[int] = []
    real = issuing.issue_clients

    def spying(ca: Any, clients: Any) -> Any:
        state = headstart._started
        result = real(ca, clients)
        delivered.append(len(state.from_helper) if state else 0)
        return result

    monkeypatch.setattr(issuing, "issue_clients", spying)
    return delivered


def _import_pulumi_meanwhile(answers: int) -> None:
    """What the plan does between the head start and issuing (~0.35 s): here, wait until the
    helper has answered `answers` clients or ended."""
    state = headstart._started
    assert state is not None and state.queue is not None
    deadline = time.monotonic() + 30
    while (len(state.from_helper) < answers and state.queue._helper.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)


def test_the_helper_issues_and_the_certificates_are_the_same(monkeypatch: pytest.MonkeyPatch,
                                                            alone: list[str]) -> None:
    delivered = _spy(monkeypatch)
    assert start_deriving(SEED, SPEC), "a helper took the clients: the offline plan loads the SDK meanwhile"
    _import_pulumi_meanwhile(8)
    assert _rendered(build_material(SEED, SPEC, today=TODAY)) == alone
    assert delivered and delivered[0] >= 8, "the helper's certificates were not used"


# the real helper, answering one client every 20 ms: slower than the plan
_SLOW_WORKER = ("import sys, time\nfrom pki import worker\n"
                "real = worker._Channel.answer\n"
                "def slow(self, line):\n    time.sleep(0.02)\n    real(self, line)\n"
                "worker._Channel.answer = slow\nworker.main()")


def test_both_ends_meet_in_the_middle(monkeypatch: pytest.MonkeyPatch, alone: list[str]) -> None:
    """The plan issues from the back while the helper's answers arrive from the front: both
    contribute, nobody issues a client twice, the result is the same."""
    replace_helper(monkeypatch, _SLOW_WORKER)
    delivered = _spy(monkeypatch)
    here: list[str] = []
    real_issue = CertificateAuthority.issue_client

    def counting(self: CertificateAuthority, client: Any) -> Any:
        here.append(client.name)
        return real_issue(self, client)

    monkeypatch.setattr(CertificateAuthority, "issue_client", counting)
    start_deriving(SEED, SPEC)
    _import_pulumi_meanwhile(2)
    assert _rendered(build_material(SEED, SPEC, today=TODAY)) == alone
    active = [c.name for c in SPEC.active_clients]
    from_here = [n for n in here if n in active]
    assert delivered[0] >= 2 and from_here, "one side did everything"
    assert len(from_here) == len(set(from_here))
    # the helper's share is a prefix of the clients, the plan's the rest
    assert set(from_here) == set(active[len(active) - len(from_here):])


_WORKER = ("import itertools, json, sys\nfrom pki import worker\n"
           "channel = worker._Channel()\nrequests = channel.requests()\n"
           "mode, _, context = next(requests).partition(' ')\n")


# issues every client right, but answers another key of the same kind, or of another kind, for the
# clients WHOSE says (their certificates are delivered and not used)
_WRONG_RSA_KEYS = (_WORKER + "from cryptography.hazmat.primitives import serialization\n"
                   "from cryptography.hazmat.primitives.asymmetric import ec, rsa\n"
                   "from pki.headstart import decode_client\nfrom pki.issuing import authority\n"
                   "ca = authority(context)\nchannel.answer(worker.first_answer(ca, context))\n"
                   "other = OTHER\n"
                   "for line in requests:\n"
                   "    spec = decode_client(line)\n    issued = ca.issue_client(spec)\n"
                   "    key = other if WHOSE and spec.csr_pem is None else issued.private_key\n"
                   "    cert = issued.certificate.public_bytes(serialization.Encoding.DER).hex()\n"
                   "    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,\n"
                   "                            serialization.NoEncryption()).hex() if key else '-'\n"
                   "    channel.answer(f'{cert} {der}')\n"
                   "channel.flush()\n")


@pytest.mark.parametrize(("script", "delivered"), [
    # issues five, then exits
    (_WORKER + "worker.issue_clients(context, channel, itertools.islice(requests, 5))\nchannel.flush()", 5),
    # answers garbage after a good first answer
    (_WORKER + "worker.issue_clients(context, channel, iter(()))\nchannel.answer('zz zz')\nchannel.flush()", 0),
    # builds another CA (a different generation): what it issues is delivered, and not used
    (_WORKER + "d = json.loads(context)\nd['generation'] += 1\n"
     "worker.issue_clients(json.dumps(d), channel, requests)", None),
    # answers that are hex, but no certificate
    (_WORKER + "worker.issue_clients(context, channel, iter(()))\n"
     "for line in requests:\n    channel.answer('00 -')\nchannel.flush()", None),
    # another RSA key, or an EC key, with an RSA client's certificate
    (_WRONG_RSA_KEYS.replace("OTHER", "rsa.generate_private_key(65537, 2048)").replace("WHOSE", "spec.key_type.is_rsa"),
     None),
    (_WRONG_RSA_KEYS.replace("OTHER", "ec.generate_private_key(ec.SECP256R1())").replace("WHOSE", "spec.key_type.is_rsa"),
     None),
    # another EC key with an EC client's certificate
    (_WRONG_RSA_KEYS.replace("OTHER", "ec.generate_private_key(ec.SECP256R1())")
     .replace("WHOSE", "not spec.key_type.is_rsa"), None),
    # an EC certificate and key, matching each other, for an RSA client
    (_WORKER + "import dataclasses\nfrom pki import KeyType, headstart\nreal = headstart.decode_client\n"
     "def as_ec(line):\n    c = real(line)\n"
     "    return dataclasses.replace(c, key_type=KeyType.EC_P256) if c.key_type.is_rsa and not c.csr_pem else c\n"
     "headstart.decode_client = as_ec\nworker.issue_clients(context, channel, requests)\nchannel.flush()", None),
    # dies at once
    ("raise SystemExit(3)", 0),
], ids=["exits-after-five", "garbage", "another-ca", "not-der", "wrong-rsa-key", "ec-key-for-rsa",
     "wrong-ec-key", "ec-certificate-for-rsa", "dies"])
def test_a_failing_helper_costs_time_never_certificates(monkeypatch: pytest.MonkeyPatch, script: str,
                                                       delivered: int | None, alone: list[str]) -> None:
    replace_helper(monkeypatch, script)
    counts = _spy(monkeypatch)
    start_deriving(SEED, SPEC)
    _import_pulumi_meanwhile(len(SPEC.clients))
    assert _rendered(build_material(SEED, SPEC, today=TODAY)) == alone
    assert counts[0] == delivered if delivered is not None else counts[0] > 0


def test_a_head_start_for_another_ca_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The program's CA differs from the head start's (e.g. the config changed in between): the
    helper's certificates, all issued by the head start's CA, are not used."""
    delivered = _spy(monkeypatch)
    start_deriving(SEED, SPEC)
    _import_pulumi_meanwhile(len(SPEC.clients))
    other = dataclasses.replace(SPEC, ca_generation=2)
    material = build_material(SEED, other, today=TODAY)
    assert delivered[0] > 0, "the helper answered nothing: the test tests nothing"
    for issued in material.clients.values():  # a certificate from the helper would fail here
        issued.certificate.verify_directly_issued_by(material.ca.certificate)


def test_the_helper_gets_the_seed_on_its_stdin_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_helpers(monkeypatch)
    monkeypatch.setenv("PKI_SEED", SEED.secret_hex())
    start_deriving(SEED, SPEC)
    build_material(SEED, SPEC, today=TODAY)
    assert seen, "no helper started"
    for helper in seen:
        assert SEED.secret_hex() not in " ".join([*helper.args, *helper.env.values()])
        assert set(helper.env) <= {"PATH", "PYTHONPATH"}


def test_a_spare_helper_nobody_takes_is_ended() -> None:
    sharedqueue.prespawn()
    spare = sharedqueue._spare
    assert spare is not None
    sharedqueue.release_spare()
    assert spare.poll() is not None


def test_a_small_plan_starts_no_issuing_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(sharedqueue, "_start", lambda *options: started.append(1))
    assert start_deriving(SEED, spec(clients=(client("edge", key_type=KeyType.EC_P256),))) is False
    headstart.cancel()
    assert not started


@pytest.mark.usefixtures("own_rsa_keys")
def test_the_helper_offers_its_ca_key_and_the_servers_and_the_plan_derives_neither(
        monkeypatch: pytest.MonkeyPatch, alone: list[str]) -> None:
    """The issuing helper derives its CA's key anyway, and the server's before any client: both
    reach pki.keypool with its first answer, and the program derives neither (~60 ms it spent)."""
    from pki import detkeygen, keypool
    from pki.revocation import ca_key_request

    monkeypatch.setattr(keypool, "_CACHE", {})
    monkeypatch.setattr(keypool, "_OFFERED", {})
    certificate_authority.cache_clear()  # as in a plan's own process: no CA built yet
    here: list[tuple[bytes, int]] = []
    real = detkeygen.rsa_key
    monkeypatch.setattr(detkeygen, "rsa_key", lambda dk_seed, bits: here.append((dk_seed, bits)) or real(dk_seed, bits))
    ca_key = ca_key_request(SEED, SPEC)
    server_key, = keypool.server_key_requests(SEED, SPEC)
    assert start_deriving(SEED, SPEC)
    _import_pulumi_meanwhile(2)
    state = headstart._started
    assert state is not None and state.ca_key is not None and state.ca_key[0] == ca_key
    assert set(keypool._OFFERED) == {server_key}, "the CA's key is offered once the program names its request"
    assert _rendered(build_material(SEED, SPEC, today=TODAY)) == alone
    assert ca_key not in here and server_key not in here
    assert not keypool._OFFERED, "both offers were taken"


_FINGERPRINT, _CA, _ASKED = "ab" * 32, "2048:" + "cd" * 32 + ":3000", "2048:" + "ef" * 32 + ":3001"


@pytest.mark.parametrize("keys", [
    [_CA],  # the key asked for is missing
    [_CA, _ASKED, "2048:" + "01" * 32 + ":3002"],  # a key nobody asked for (a retired CA's, say)
    [_ASKED.replace("2048", "1024")],  # not a size this project derives
    [_CA, "2048:" + "ef" * 32],  # no key
    [_CA, "2048:" + "zz" * 32 + ":3000"],  # not hex
    [_CA, "2048:" + "ef" * 31 + ":3000"],  # a det-keygen seed is 64 hex digits
    [_CA, "2048:" + "ef" * 31 + "\t e:3000"],
    [_CA, _ASKED.replace(":3001", ":30g1")],
    [_CA, _ASKED.upper()],
    [_CA, _ASKED + "0"],  # half a byte
])
def test_a_first_answer_with_a_malformed_or_unasked_key_is_refused_whole(monkeypatch: pytest.MonkeyPatch,
                                                                        keys: list[str]) -> None:
    """The helper's first answer: its CA's fingerprint, its CA's key, then exactly the keys it was
    asked for. Anything else and nothing is offered: the helper is not trusted with the rest."""
    from pki import keypool

    monkeypatch.setattr(keypool, "_OFFERED", {})
    asked = frozenset({(bytes.fromhex("ef" * 32), 2048)})
    state = headstart.Issuing(asked)
    assert not state.check_preamble(" ".join([_FINGERPRINT, *keys]))
    assert state.ca_fingerprint is None and state.ca_key is None and keypool._OFFERED == {}
    assert state.check_preamble(" ".join([_FINGERPRINT, _CA, _ASKED]))
    assert state.ca_fingerprint == _FINGERPRINT and list(keypool._OFFERED) == list(asked)
    assert state.ca_key == ((bytes.fromhex("cd" * 32), 2048), bytes.fromhex("3000"))


@pytest.mark.usefixtures("own_rsa_keys")
def test_an_offered_key_is_used_only_as_an_rsa_key_of_the_size_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the key helper's answers: a key that does not load, or is not RSA of that size, is
    dropped and derived here."""
    from pki import detkeygen, keypool
    from pki.derive import pkcs8_der

    monkeypatch.setattr(keypool, "_CACHE", {})
    monkeypatch.setattr(keypool, "_OFFERED", {})
    request = keypool.rsa_request(SEED, ("offered",), 2048)
    right = detkeygen.rsa_key(*request)
    for wrong in (b"not DER", pkcs8_der(ec.derive_private_key(7, ec.SECP256R1()))):
        keypool._CACHE.clear()
        keypool.offer(request, wrong)
        assert keypool.rsa_key(*request).private_numbers() == right.private_numbers()
    keypool._CACHE.clear()
    keypool.offer(request, pkcs8_der(right))
    monkeypatch.setattr(detkeygen, "rsa_key", None)  # an offered key that loads is not derived again
    assert keypool.rsa_key(*request).private_numbers() == right.private_numbers()
    keypool.offer(request, b"not DER")  # once cached, offers are ignored
    assert not keypool._OFFERED


@pytest.mark.usefixtures("own_rsa_keys")
def test_a_prespawned_helper_derives_a_small_stacks_ca_and_server_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Too few clients to share: the helper started ahead of need derives the CA's and the
    server's keys instead of being ended unused."""
    from pki import detkeygen, keypool

    small = spec(clients=(client("edge", key_type=KeyType.EC_P256),))
    monkeypatch.setattr(keypool, "_CACHE", {})
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "1")
    expected = _rendered(build_material(SEED, small, today=TODAY))
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    monkeypatch.setattr(keypool, "_CACHE", {})
    certificate_authority.cache_clear()  # as in a plan's own process: no CA built yet
    here: list[int] = []
    real = detkeygen.rsa_key
    monkeypatch.setattr(detkeygen, "rsa_key", lambda dk_seed, bits: here.append(bits) or real(dk_seed, bits))
    sharedqueue.prespawn()
    try:
        assert start_deriving(SEED, small) and keypool.started() and not headstart.started()
        assert _rendered(build_material(SEED, small, today=TODAY)) == expected
    finally:
        stop_deriving()
    assert not here, "this process derived a key itself"


def test_rsa_clients_go_to_the_helper_keys_and_certificates_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan of RSA clients: the helper derives their keys and issues their certificates (keys
    the plan checks against the certificates), so issuing is no phase of its own on one core; the
    key pool keeps only the CA's and the server's keys, too few for a helper of its own."""
    from pki import keypool

    rsa_only = spec(clients=tuple(client(f"rsa-{i}") for i in range(4)))
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "1")
    expected = _rendered(build_material(SEED, rsa_only, today=TODAY))
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    accepted: list[str] = []
    real_issued = issuing._issued

    def counting(answer: Any, client: Any) -> Any:
        issued = real_issued(answer, client)
        if issued is not None:
            accepted.append(client.name)
        return issued

    monkeypatch.setattr(issuing, "_issued", counting)
    assert start_deriving(SEED, rsa_only)
    assert headstart.started() and not keypool.started()
    _import_pulumi_meanwhile(2)
    assert _rendered(build_material(SEED, rsa_only, today=TODAY)) == expected
    assert len(accepted) >= 2, "the helper's RSA clients were not used"


@pytest.mark.usefixtures("own_rsa_keys")
@pytest.mark.parametrize("history", [{"ca_generation": 5},
                                     {"revocations": (Revocation("alice"), Revocation("bob"), Revocation("edge"))}],
                         ids=["rotated", "revoked"])
def test_the_head_start_shares_a_ca_historys_keys_and_not_a_plain_cas(monkeypatch: pytest.MonkeyPatch,
                                                                      history: dict[str, Any]) -> None:
    """pki.headstart works out the RSA keys (which loads cryptography) only for a CA with a history:
    then the retired CAs' keys may be enough for the key helper. A plain CA has two, never enough."""
    from pki import keypool
    from pki.revocation import rsa_requests

    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    monkeypatch.setattr(keypool, "_CACHE", {})  # none derived by an earlier test
    rotated = spec(**history)
    assert len(set(rsa_requests(SEED, rotated))) >= keypool.MIN_PARALLEL
    try:
        start_deriving(SEED, rotated)
        assert keypool.started()
    finally:
        stop_deriving()
    try:
        start_deriving(SEED, spec())
        assert not keypool.started()
    finally:
        stop_deriving()


def test_importing_the_queue_loads_no_heavy_module() -> None:
    """`python -m slbmtls plan` starts its helper before it imports cryptography, pydantic or Pulumi."""
    code = ("import sys, pki.sharedqueue\n"
            "print(sorted(m for m in ('cryptography', 'pydantic', 'pulumi', 'gmpy2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(sharedqueue.PACKAGE_ROOT)})
    assert done.stdout.strip() == "[]"


def test_a_refused_client_ends_the_helper_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client outside its CA's lifetime is refused by this process's own issuing; the helper,
    which refused it first, is not left behind."""
    started = record_helpers(monkeypatch)
    too_long = client("ec-too-long", key_type=KeyType.EC_P256, validity=dataclasses.replace(
        SPEC.ca_validity, days=SPEC.ca_validity.days + 1))
    bad = dataclasses.replace(SPEC, clients=(*SPEC.clients, too_long))
    start_deriving(SEED, bad)
    with pytest.raises(PkiError, match="ec-too-long"):
        build_material(SEED, bad, today=TODAY)
    assert started and all(h.process.poll() is not None for h in started)


def test_without_a_head_start_the_program_starts_the_helper_itself(monkeypatch: pytest.MonkeyPatch,
                                                                    alone: list[str]) -> None:
    """`pulumi up` has no head start: with many clients, build_material starts the helper itself,
    before it derives the CA key (the helper's start-up overlaps that; the helper derives its own)."""
    monkeypatch.setattr(headstart, "MIN_PARALLEL_LATE", 8)
    contexts: list[str] = []
    real_context = headstart.encode_context
    monkeypatch.setattr(headstart, "encode_context", lambda *a, **k: contexts.append(real_context(*a, **k)) or contexts[-1])
    delivered: list[int] = []
    real_issue = issuing.issue_clients

    def slow_plan(ca: Any, clients: Any) -> Any:  # let the helper answer before the plan issues
        _import_pulumi_meanwhile(8)
        state = headstart._started
        result = real_issue(ca, clients)
        delivered.append(len(state.from_helper) if state else 0)
        return result

    monkeypatch.setattr(issuing, "issue_clients", slow_plan)
    assert _rendered(build_material(SEED, SPEC, today=TODAY)) == alone
    assert delivered[0] >= 8
    assert len(contexts) == 1


def test_what_the_helper_is_told_round_trips() -> None:
    full = client("dora", email="dora@example.com", key_type=KeyType.EC_P256, generation=3, csr_pem=_csr("dora"))
    for c in (full, *SPEC.clients):
        assert headstart.decode_client(headstart.encode_client(c)) == c
    definition = headstart.CaDefinition(SPEC.subject, SPEC.ca_validity, 2, ("ec-03", "x"), SPEC.ca_key_type)
    here = certificate_authority(SEED, SPEC.subject, SPEC.ca_validity, 2, ("ec-03", "x"), SPEC.ca_key_type)
    made = issuing.authority(headstart.encode_context(SEED, definition))
    assert made.issued.fingerprint == here.issued.fingerprint


def test_large_requests_and_answers_never_wedge_the_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """CSRs with RSA-4096 keys, ~1.6 KB per request and ~2.4 KB per answer, through pipes shrunk
    to one page (macOS's are 16 KB, Linux's 64 KB): the requests in flight and every batch of
    answers overfill them. Neither side may wait for the other to read."""
    def small_pipes(helper: subprocess.Popen[bytes]) -> None:
        for pipe in (helper.stdin, helper.stdout):
            assert pipe is not None
            fcntl.fcntl(pipe.fileno(), 1031, 4096)  # F_SETPIPE_SZ

    record_helpers(monkeypatch, small_pipes)
    key = rsa.generate_private_key(65537, 4096)
    csrs = []
    for i in range(60):
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"big-{i:02d}")])
        csrs.append(client(f"big-{i:02d}", csr_pem=x509.CertificateSigningRequestBuilder().subject_name(name)
                           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()))
    big = spec(clients=tuple(csrs))
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "1")
    expected = _rendered(build_material(SEED, big, today=TODAY))
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    delivered = _spy(monkeypatch)
    outcome: list[list[str]] = []

    def plan() -> None:
        start_deriving(SEED, big)
        _import_pulumi_meanwhile(len(csrs))
        outcome.append(_rendered(build_material(SEED, big, today=TODAY)))

    worker = threading.Thread(target=plan, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the plan and its helper wait on each other"
    assert outcome == [expected] and delivered[0] == len(csrs)


def test_an_offline_plan_loads_the_sdk_while_the_helper_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a helper at work, the offline plan imports the provider SDK before the program needs
    its material (it would idle through that import otherwise); the helper is stopped whatever
    happens next."""
    from stackrun import ROOT, TEST_SEED

    from slbmtls import offline, program
    from slbmtls.offline import OfflineStack
    from slbmtls.stackfile import load_stack

    stopped: list[int] = []
    monkeypatch.setattr(offline, "start_deriving", lambda seed, spec: True)
    monkeypatch.setattr(offline, "stop_deriving", lambda: stopped.append(1))
    import slbmtls

    monkeypatch.delitem(sys.modules, "slbmtls.infra", raising=False)  # both restored afterwards
    monkeypatch.delattr(slbmtls, "infra", raising=False)
    loaded_first: list[bool] = []

    def prepare() -> None:
        loaded_first.append("slbmtls.infra" in sys.modules)
        raise KeyboardInterrupt

    monkeypatch.setattr(program, "prepare", prepare)
    with pytest.raises(KeyboardInterrupt):
        OfflineStack(load_stack(ROOT, "dev"), TEST_SEED, "test", {}).plan()
    assert loaded_first == [True] and stopped == [1]

    monkeypatch.setitem(sys.modules, "slbmtls.infra", None)  # the import itself fails
    with pytest.raises(ImportError):
        OfflineStack(load_stack(ROOT, "dev"), TEST_SEED, "test", {}).plan()
    assert stopped == [1, 1]


# the real helper, whose RSA keys after the first HELD wait until the file GO exists; keys made
# before it starts (READY: seed hex -> bits) come at once, as if cached
_HELD_RSA_WORKER = ("import os, time\nfrom pki import detkeygen, worker\n"
                    "real, calls = detkeygen.rsa_key, []\n"
                    "ready = {bytes.fromhex(s): real(bytes.fromhex(s), b) for s, b in READY.items()}\n"
                    "def held(seed, bits):\n"
                    "    calls.append(1)\n"
                    "    if seed in ready:\n        return ready[seed]\n"
                    "    while len(calls) > HELD and not os.path.exists(GO):\n        time.sleep(0.01)\n"
                    "    return real(seed, bits)\n"
                    "detkeygen.rsa_key = held\nworker.main()")


def _read_line(stream: Any) -> bytes:
    """The next line, or a failure after 60 s (a deadlock guard, not a timing)."""
    import select

    ready, _, _ = select.select([stream], [], [], 60)
    assert ready, "no answer: the helper holds it back while it works on the next job"
    return bytes(stream.readline())


@pytest.mark.parametrize("mode", ["keys", "issue"])
def test_an_answer_never_waits_behind_an_rsa_key(tmp_path: Any, mode: str) -> None:
    """The helper sends what it has finished before it starts on an RSA key (tens of milliseconds,
    more for a big one): its parent may be waiting for that answer. Here the RSA job cannot finish
    until the answers before it have arrived."""
    from pki.keypool import rsa_request

    go = tmp_path / "go"
    ready: dict[str, int] = {}
    if mode == "keys":  # the first key comes at once, the second is held
        held, requests = 1, [rsa_request(SEED, ("client", name, 1), 2048) for name in ("first", "second")]
        lines = ["keys", *(f"{bits} {seed.hex()}" for seed, bits in requests)]
        ready = {requests[0][0].hex(): 2048}
        before = 1
    else:  # the helper derives the CA's key first; the client's RSA key, the second, is held
        held = 1
        definition = headstart.CaDefinition(SPEC.subject, SPEC.ca_validity, SPEC.ca_generation, SPEC.revoked_names,
                                          SPEC.ca_key_type)
        lines = [f"issue {headstart.encode_context(SEED, definition)}",
                 headstart.encode_client(client("ec-first", key_type=KeyType.EC_P256)),
                 headstart.encode_client(client("rsa-second"))]
        before = 2  # the CA's fingerprint, then the EC client
    script = _HELD_RSA_WORKER.replace("HELD", str(held)).replace("GO", repr(str(go))).replace("READY", repr(ready))
    # unbuffered: a buffered readline could take both answers at once, and select would then wait
    helper = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                              env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(sharedqueue.PACKAGE_ROOT)})
    assert helper.stdin is not None and helper.stdout is not None
    try:
        helper.stdin.write("".join(f"{line}\n" for line in lines).encode())
        helper.stdin.flush()
        answers = [_read_line(helper.stdout) for _ in range(before)]
        assert all(a.strip() for a in answers)
        go.touch()  # now the held RSA key may finish
        helper.stdin.close()
        assert len(helper.stdout.read().splitlines()) == 1  # its answer
    finally:
        go.touch()
        helper.kill()
        helper.wait()


# issues every client right, but flips a bit of each EC key's private scalar (its public point, at
# the end of the PKCS#8, stays the certificate's)
_FORGED_EC_SCALARS = (_WORKER + "from cryptography.hazmat.primitives import serialization\n"
                      "from pki.headstart import decode_client\nfrom pki.issuing import authority\n"
                      "ca = authority(context)\nchannel.answer(worker.first_answer(ca, context))\n"
                      "for line in requests:\n"
                      "    spec = decode_client(line)\n    issued = ca.issue_client(spec)\n"
                      "    cert = issued.certificate.public_bytes(serialization.Encoding.DER).hex()\n"
                      "    der = bytearray(issued.plain_pkcs8_der()) if issued.private_key is not None else None\n"
                      "    if der is not None and not spec.key_type.is_rsa:\n        der[40] ^= 1\n"
                      "    channel.answer(f'{cert} {der.hex() if der is not None else \"-\"}')\n"
                      "channel.flush()\n")


def test_an_ec_key_from_the_helper_is_checked_when_first_used(monkeypatch: pytest.MonkeyPatch, alone: list[str]) -> None:
    """A plan uses no client key, so an EC client's key from the helper is loaded on first use; its
    public point is checked against the certificate at once, the key itself when it loads."""
    replace_helper(monkeypatch, _FORGED_EC_SCALARS)
    counts = _spy(monkeypatch)
    start_deriving(SEED, SPEC)
    _import_pulumi_meanwhile(len(SPEC.clients))
    material = build_material(SEED, SPEC, today=TODAY)
    assert counts[0] > 0
    from_helper = [n for n, c in material.clients.items() if callable(c.key_source)]
    assert from_helper, "no EC key from the helper was deferred: the test tests nothing"
    here = alone[2:]  # the clients, each rendered with its key
    for name in from_helper:
        issued = material.clients[name]
        assert issued.certificate_pem in "".join(here)
        with pytest.raises(PkiError, match="does not match its certificate"):
            issued.private_key  # noqa: B018


def _answer_for(certificate: x509.Certificate, key: Any) -> tuple[bytes, bytes]:
    return (certificate.public_bytes(serialization.Encoding.DER),
            key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_only_an_ec_key_that_is_its_certificates_is_taken_from_the_helper() -> None:
    """What `_issued` accepts for an EC client: its own key and certificate (the key loaded on first
    use); never a truncated or padded key, a certificate whose key is another one that names this
    key's point elsewhere, or another curve."""
    here = certificate_authority(SEED, SPEC.subject, SPEC.ca_validity, 1, (), SPEC.ca_key_type)
    spec_ec = client("ec-x", key_type=KeyType.EC_P256)
    good = here.issue_client(spec_ec)
    cert_der, key_der = _answer_for(good.certificate, good.private_key)
    accepted = issuing._issued((cert_der, key_der), spec_ec)
    assert accepted is not None and callable(accepted.key_source)  # deferred
    assert accepted.private_key is not None and accepted.private_key.public_key() == good.certificate.public_key()

    def signed(public_key: Any, extra: bytes | None = None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(good.certificate.subject)
                   .issuer_name(good.certificate.issuer).public_key(public_key)
                   .serial_number(good.certificate.serial_number)
                   .not_valid_before(good.certificate.not_valid_before_utc)
                   .not_valid_after(good.certificate.not_valid_after_utc))
        if extra is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
                                                                       extra), critical=False)
        return builder.sign(here.private_key, hashes.SHA256())

    other = ec.generate_private_key(ec.SECP256R1())
    spki = good.private_key.public_key().public_bytes(serialization.Encoding.DER,  # type: ignore[union-attr]
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    k1 = ec.generate_private_key(ec.SECP256K1())
    refused = {
        "truncated key": (cert_der, key_der[-70:]),
        "junk, then the key's end": (cert_der, b"\x30" * 68 + key_der[-70:]),
        "the key's point in an extension of another key's certificate":
            (_answer_for(signed(other.public_key(), spki), good.private_key)[0], key_der),
        "secp256k1": _answer_for(signed(k1.public_key()), k1),
    }
    for what, answer in refused.items():
        assert issuing._issued(answer, spec_ec) is None, what


def test_an_answer_is_read_before_the_helpers_ca_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper's CA fingerprint reaches the plan before any of its answers, so the plan reads an
    answer first and then checks the fingerprint. Here the fingerprint arrives while the plan reads
    the first answer (a head start for another CA): nothing from the helper is used."""
    start_deriving(SEED, SPEC)  # CA generation 1
    _import_pulumi_meanwhile(len(SPEC.clients))
    state = headstart._started
    assert state is not None and state.ca_fingerprint is not None and state.from_helper
    theirs, state.ca_fingerprint = state.ca_fingerprint, None

    class Arriving(dict[Any, Any]):
        def get(self, key: Any, default: Any = None) -> Any:
            state.ca_fingerprint = theirs  # as the reader thread would, between two reads
            return super().get(key, default)

    state.from_helper = Arriving(state.from_helper)
    other = dataclasses.replace(SPEC, ca_generation=2)
    material = build_material(SEED, other, today=TODAY)
    for issued in material.clients.values():
        issued.certificate.verify_directly_issued_by(material.ca.certificate)


def test_a_plan_that_fails_after_starting_its_own_helper_leaves_none_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a head start, build_material starts the helper first, before anything it checks
    can fail (here a brought server certificate that is no certificate): the helper is stopped."""
    from pki import OperatorCertificate, ServerSpec

    started = record_helpers(monkeypatch)
    server = ServerSpec(SPEC.server.names, SPEC.server.validity, operator=OperatorCertificate("not PEM", "not PEM"))
    many = dataclasses.replace(SPEC, server=server, clients=tuple(
        client(f"ec-{i:03d}", key_type=KeyType.EC_P256) for i in range(headstart.MIN_PARALLEL_LATE)))
    with pytest.raises(PkiError):
        build_material(SEED, many, today=TODAY)
    assert started, "no helper started: the test tests nothing"
    assert all(h.process.poll() is not None for h in started)
    assert not headstart.started()


def test_no_private_key_is_in_a_repr() -> None:
    """The helper's keys, and a brought certificate's key and passphrase, stay out of reprs (an
    assertion's message, a log line)."""
    from pki import OperatorCertificate

    state = headstart.Issuing()
    state.ca_key = ((b"\1" * 32, 2048), b"CA-KEY-DER")
    state.from_helper[client("x")] = (b"CERT", b"CLIENT-KEY-DER")
    brought = OperatorCertificate("CHAIN", "-----BEGIN PRIVATE KEY-----", "PASSPHRASE")
    shown = repr(state) + repr(brought) + repr(spec(server=dataclasses.replace(SPEC.server, operator=brought)))
    for secret in ("CA-KEY-DER", "CLIENT-KEY-DER", "PRIVATE KEY", "PASSPHRASE"):
        assert secret not in shown
