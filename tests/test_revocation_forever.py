"""Revocation is forever: no edit brings back a CA that signed a now-revoked certificate, unless the
tooling refuses the plan because that CA is among the previous plan's retired fingerprints."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ISSUED, SEED, SUBJECT, TODAY
from cryptography import x509
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pki import ClientSpec, KeyType, PkiMaterial, PkiSpec, Revocation, ServerSpec, Validity, build_material
from pki.revocation import retired_labels

SERVER = ServerSpec(("mtls.example.com",), Validity(ISSUED, 397))
NAMES = ("ann", "ben", "cid", "dee")


@dataclasses.dataclass(frozen=True)
class Config:
    clients: tuple[tuple[str, int], ...] = tuple((n, 1) for n in NAMES)  # (name, generation)
    revoked: tuple[Revocation, ...] = ()
    ca_generation: int = 1

    def spec(self) -> PkiSpec:
        return PkiSpec(SUBJECT, Validity(ISSUED, 3650), SERVER, tuple(_client(n, g) for n, g in self.clients),
                       self.revoked, ca_generation=self.ca_generation)


def _client(name: str, generation: int) -> ClientSpec:
    return ClientSpec(name, Validity(ISSUED, 365), key_type=KeyType.EC_P256, generation=generation)


def edit(config: Config, op: str, i: int) -> Config:
    """One ordinary edit of the stack's config, as an operator might make it."""
    names = [n for n, _ in config.clients]
    revoked = [r.name for r in config.revoked]
    if op == "revoke":
        active = [n for n in names if n not in revoked]
        if active:
            return dataclasses.replace(config, revoked=(*config.revoked, Revocation(active[i % len(active)])))
    elif op == "unrevoke" and config.revoked:
        j = i % len(config.revoked)
        return dataclasses.replace(config, revoked=config.revoked[:j] + config.revoked[j + 1:])
    elif op == "remove_client" and config.clients:
        name, generation = config.clients[i % len(config.clients)]
        # a revoked client may leave `clients`: its revocation entry keeps its details for the CRL
        kept = tuple(dataclasses.replace(r, client=_client(name, generation)) if r.name == name else r
                     for r in config.revoked)
        return dataclasses.replace(config, clients=tuple(c for c in config.clients if c[0] != name), revoked=kept)
    elif op == "add_client":
        missing = [n for n in NAMES if n not in names]
        if missing:
            return dataclasses.replace(config, clients=(*config.clients, (missing[i % len(missing)], 1)))
    elif op == "reorder_clients" and config.clients:
        k = i % len(config.clients)
        return dataclasses.replace(config, clients=config.clients[k:] + config.clients[:k])
    elif op == "reorder_revoked" and len(config.revoked) > 1:
        j = i % (len(config.revoked) - 1)
        r = list(config.revoked)
        r[j], r[j + 1] = r[j + 1], r[j]
        return dataclasses.replace(config, revoked=tuple(r))
    elif op in ("generation_up", "generation_down") and config.clients:
        k = i % len(config.clients)
        name, generation = config.clients[k]
        generation = generation + 1 if op == "generation_up" else max(1, generation - 1)
        clients = list(config.clients)
        clients[k] = (name, generation)
        return dataclasses.replace(config, clients=tuple(clients))
    elif op == "ca_generation_up":
        return dataclasses.replace(config, ca_generation=config.ca_generation + 1)
    elif op == "ca_generation_down":
        return dataclasses.replace(config, ca_generation=max(1, config.ca_generation - 1))
    return config


def _verifies(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False
    return True


OPS = st.sampled_from(["revoke", "unrevoke", "remove_client", "add_client", "reorder_clients", "reorder_revoked",
                       "generation_up", "generation_down", "ca_generation_up", "ca_generation_down"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPS, st.integers(0, 7)), min_size=1, max_size=12))
# ben is issued by CA[ann, cid], then revoked; the history is reordered and ben un-revoked, which
# would bring CA[ann, cid] back if only the prefixes of the history were retired
@example([("revoke", 0), ("revoke", 1), ("revoke", 0), ("reorder_revoked", 1), ("unrevoke", 1)])
# dropping the last entry, lowering caGeneration, a departed user dropped from both lists
@example([("revoke", 1), ("unrevoke", 0)])
@example([("ca_generation_up", 0), ("revoke", 2), ("ca_generation_down", 0)])
@example([("revoke", 1), ("remove_client", 1), ("unrevoke", 0)])
def test_a_revoked_certificate_never_verifies_again_unless_refused(edits: list[tuple[str, int]]) -> None:
    config = Config()
    plan = build_material(SEED, config.spec(), today=TODAY)
    issued: list[tuple[str, x509.Certificate]] = [(n, c.certificate) for n, c in plan.clients.items()]
    revoked_certificates: list[x509.Certificate] = []
    for op, i in edits:
        after_config = edit(config, op, i)
        after = build_material(SEED, after_config.spec(), today=TODAY)
        if after.ca.issued.fingerprint in plan.retired_ca_fingerprints:
            continue  # plan-diff and `pulumi up` refuse it: the stack stays where it was
        config, plan = after_config, after
        # certificates issued before to a client that is revoked now stay revoked, whatever comes later
        revoked_certificates += [c for n, c in issued if n in plan.revoked and c not in revoked_certificates]
        for certificate in revoked_certificates:
            assert not _verifies(certificate, plan.ca.certificate), (op, i, config)
        issued += [(n, c.certificate) for n, c in plan.clients.items()]


def _plan(config: Config) -> PkiMaterial:
    return build_material(SEED, config.spec(), today=TODAY)


def test_the_issues_edits_are_refused() -> None:
    """Dropping a departed user from both lists, lowering caGeneration, dropping the last entry."""
    base = Config(ca_generation=2)
    revoked = Config(base.clients, (Revocation("ben", "keyCompromise"),), 2)
    before = _plan(revoked)
    for undo in (base,                                   # drop ben from revoked (and keep or drop him from clients)
                 dataclasses.replace(base, clients=tuple(c for c in base.clients if c[0] != "ben")),
                 dataclasses.replace(revoked, ca_generation=1)):
        assert _plan(undo).ca.issued.fingerprint in before.retired_ca_fingerprints
    # the way to re-admit someone: un-revoke together with a caGeneration bump, a CA never seen
    readmit = _plan(dataclasses.replace(base, ca_generation=3))
    assert readmit.ca.issued.fingerprint not in before.retired_ca_fingerprints


def test_a_revoked_client_may_leave_clients() -> None:
    revoked = Config(revoked=(Revocation("ben"),))
    gone = edit(revoked, "remove_client", 1)
    assert [n for n, _ in gone.clients] == ["ann", "cid", "dee"] and gone.revoked[0].client is not None
    a, b = _plan(revoked), _plan(gone)
    assert a.ca.issued.fingerprint == b.ca.issued.fingerprint and a.crl_pem == b.crl_pem
    assert a.retired_ca_fingerprints == b.retired_ca_fingerprints


def test_leaving_without_the_details_is_an_error() -> None:
    from pki import PkiError
    with pytest.raises(PkiError, match=r"revoked\[0\] 'zed': not in clients, and the entry carries no certificate"):
        _plan(Config(revoked=(Revocation("zed"),)))


def test_retired_are_the_epochs_before_and_every_single_undo() -> None:
    assert retired_labels(1, ()) == []
    assert retired_labels(1, ("a",)) == [(1, ())]
    assert retired_labels(2, ("a", "b")) == [(1, ()), (1, ("a",)), (1, ("a", "b")), (2, ()), (2, ("a",)),
                                             (2, ("b",))]
    plan = _plan(Config(revoked=(Revocation("ann"), Revocation("ben")), ca_generation=2))
    assert len(plan.retired_ca_fingerprints) == 6 == len(set(plan.retired_ca_fingerprints))
    assert plan.ca.issued.fingerprint not in plan.retired_ca_fingerprints
    assert all(len(f) == 64 and int(f, 16) >= 0 for f in plan.retired_ca_fingerprints)


def test_reordering_clients_changes_nothing() -> None:
    a = _plan(Config(revoked=(Revocation("ben"),)))
    b = _plan(edit(Config(revoked=(Revocation("ben"),)), "reorder_clients", 2))
    assert a.ca.issued.fingerprint == b.ca.issued.fingerprint
    assert {n: c.certificate_pem for n, c in a.clients.items()} == {n: c.certificate_pem for n, c in b.clients.items()}
    assert a.crl_pem == b.crl_pem


