"""Unique (issuer, serial) across config edits; CRLs valid as long as the CA, numbered by content."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import ISSUED, SEED, SUBJECT, TODAY, client, openssl, spec, write
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import KeyType, PkiError, PkiMaterial, Revocation, ServerSpec, Validity, build_material

DOMAINS = ("mtls.example.com", "www.mtls.example.com")


def _variants() -> dict[str, PkiMaterial]:
    """One config and the edits issue 9 lists as giving the same serial to different certificates."""
    base = spec()
    edits = {
        "base": base,
        "caDays": dataclasses.replace(base, ca_validity=Validity(ISSUED, 3000)),
        "keyBits": dataclasses.replace(base, ca_key_type=KeyType.RSA_3072),
        "pki.issued": dataclasses.replace(base, ca_validity=Validity(ISSUED - dt.timedelta(days=1), 3650)),
        "subject": dataclasses.replace(base, subject=dataclasses.replace(SUBJECT, organization="Other Corp")),
        "client keyType": dataclasses.replace(base, clients=(client("alice", email="alice@example.com",
                                                                    key_type=KeyType.EC_P256), *base.clients[1:])),
        "client email": dataclasses.replace(base, clients=(client("alice"), *base.clients[1:])),
        "client days": dataclasses.replace(base, clients=(client("alice", email="alice@example.com",
                                                                 validity=Validity(ISSUED, 300)), *base.clients[1:])),
        "server names": dataclasses.replace(base, server=ServerSpec(DOMAINS[:1], Validity(ISSUED, 397))),
        "revoked": dataclasses.replace(base, revocations=(Revocation("bob"),)),
        "caGeneration": dataclasses.replace(base, ca_generation=2),
    }
    return {name: build_material(SEED, s, today=TODAY) for name, s in edits.items()}


@pytest.fixture(scope="module")
def variants() -> dict[str, PkiMaterial]:
    return _variants()


def _all_certificates(m: PkiMaterial) -> list[x509.Certificate]:
    return [m.ca.certificate, m.server.certificate, *(c.certificate for c in m.clients.values())]


def test_one_issuer_and_serial_name_one_certificate(variants: dict[str, PkiMaterial]) -> None:
    seen: dict[tuple[bytes, int], set[bytes]] = defaultdict(set)
    for m in variants.values():
        for cert in _all_certificates(m):
            seen[(cert.issuer.public_bytes(), cert.serial_number)].add(cert.public_bytes(serialization.Encoding.DER))
    assert all(len(ders) == 1 for ders in seen.values())
    assert len(seen) > 3 * len(variants)  # edits really did give new certificates


def test_ca_name_and_epoch_change_whenever_the_ca_certificate_does(variants: dict[str, PkiMaterial]) -> None:
    by_epoch: dict[str, set[str]] = defaultdict(set)
    by_name: dict[bytes, set[str]] = defaultdict(set)
    for m in variants.values():
        by_epoch[m.ca.epoch].add(m.ca.issued.fingerprint)
        by_name[m.ca.name.public_bytes()].add(m.ca.issued.fingerprint)
    assert all(len(f) == 1 for f in by_epoch.values()) and all(len(f) == 1 for f in by_name.values())
    # leaf-only edits keep the CA
    assert variants["client email"].ca.issued.fingerprint == variants["base"].ca.issued.fingerprint
    assert len(by_epoch) == 7  # base (and leaf edits), caDays, keyBits, issued, subject, revoked, caGeneration


def test_serials_are_positive_and_fit_rfc_5280(variants: dict[str, PkiMaterial]) -> None:
    for m in variants.values():
        for cert in _all_certificates(m):
            assert 0 < cert.serial_number < 1 << 127


# -- CRLs ------------------------------------------------------------------------------------------


def _crls(m: PkiMaterial) -> list[x509.CertificateRevocationList]:
    return m.crls


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crls_last_as_long_as_their_ca(revoked_material: PkiMaterial) -> None:
    for crl in revoked_material.crls:
        assert crl.next_update_utc == revoked_material.ca.certificate.not_valid_after_utc
        assert 0 < _number(crl) < 1 << 159  # 20 octets, positive


def test_crl_numbers_follow_content() -> None:
    def numbers(*revocations: Revocation) -> list[int]:
        return [_number(c) for c in build_material(SEED, spec(revocations), today=TODAY).crls]

    base = numbers(Revocation("bob", "keyCompromise", dt.date(2026, 11, 30)))
    assert base == numbers(Revocation("bob", "keyCompromise", dt.date(2026, 11, 30)))
    other_reason = numbers(Revocation("bob", "superseded", dt.date(2026, 11, 30)))
    later = numbers(Revocation("bob", "keyCompromise", dt.date(2026, 12, 5)))
    assert other_reason[1] != base[1] and later[1] != base[1]
    assert later[1] > base[1] and later[0] > base[0]  # a later CRL of the same CA has a larger number
    assert len(set(base)) == len(base)


def test_default_revocation_date_is_the_certificates_first_day() -> None:
    late = client("bob", validity=Validity(ISSUED + dt.timedelta(days=10), 300))
    m = build_material(SEED, spec((Revocation("bob"),), clients=(client("alice"), late)), today=TODAY)
    (entry,) = list(m.crls[1])
    assert entry.revocation_date_utc.date() == ISSUED + dt.timedelta(days=10)
    assert m.crls[0].last_update_utc.date() == ISSUED + dt.timedelta(days=10)


def test_revocation_before_the_ca_is_refused() -> None:
    with pytest.raises(PkiError, match=r"revoked\[0\] 'bob': date 2026-11-01 is before the CA's notBefore "
                                       r"2026-11-27 \(pki.issued\)"):
        build_material(SEED, spec((Revocation("bob", date=dt.date(2026, 11, 1)),)), today=TODAY)


@pytest.mark.parametrize("day", [ISSUED, dt.date(2027, 6, 1), dt.date(2030, 1, 1), dt.date(2036, 11, 23)])
def test_openssl_checks_the_crl_through_the_cas_life(material: PkiMaterial, revoked_material: PkiMaterial,
                                                     tmp_path: Path, day: dt.date) -> None:
    """bob's pre-revocation certificate is revoked, and the CRL current, on any day of the CA's
    life; alice's is fine (her certificate's own expiry aside: -no_check_time for the leaf)."""
    at = str(int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp()))
    old_ca = write(tmp_path / "old-ca.pem", material.ca.issued.certificate_pem)
    crl = write(tmp_path / "crl.pem", revoked_material.crl_pem)
    args = ["verify", "-attime", at, "-crl_check", "-CAfile", str(old_ca), "-CRLfile", str(crl)]
    bob = openssl(*args, str(write(tmp_path / "bob.pem", material.clients["bob"].certificate_pem)))
    alice = openssl(*args, str(write(tmp_path / "alice.pem", material.clients["alice"].certificate_pem)))
    if day < dt.date(2027, 11, 27):  # the clients' 365 days
        assert "certificate revoked" in bob.stdout + bob.stderr
        assert alice.returncode == 0, alice.stdout + alice.stderr
    else:
        assert "CRL has expired" not in bob.stdout + bob.stderr + alice.stdout + alice.stderr
        assert "certificate has expired" in alice.stdout + alice.stderr


@pytest.mark.parametrize("reason", ["certificateHold", "removeFromCRL", "cACompromise", "bogus"])
def test_a_revocation_takes_only_the_reasons_the_config_offers(reason: str) -> None:
    """certificateHold is undone by removeFromCRL in a later CRL, and nothing here re-signs one;
    the CA reasons do not apply to a client: refused with the allowed names, as the config does."""
    with pytest.raises(PkiError, match=f"reason '{reason}' is not one of unspecified, keyCompromise"):
        Revocation("bob", reason)
