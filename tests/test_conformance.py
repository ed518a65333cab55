"""Conformance with implementations nobody here wrote: pkilint on every certificate and CRL of the
dev, prod and rehearsal stacks; NSS (pk12util, vfychain, crlutil); GnuTLS certtool; openssl verify
with CRLs on each client's first and last day. The tools come from scripts/need-tools and .ci/run
(libnss3-tools, gnutls-bin), so nothing here is skipped."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, TODAY, openssl, pkcs12_once, spec, write
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from stackrun import TEST_SEED

from pki import PkiMaterial, PkiSpec, Profile, Revocation, Seed, Validity, build_material
from pki.revocation import ca_epochs
from slbmtls.offline import OfflineStack
from slbmtls.stackfile import load_stack

ROOT = Path(__file__).resolve().parent.parent
STACKS = {"dev": ("dev", ROOT), "prod": ("prod", ROOT), "rehearsal-wrr": ("wrr", ROOT / "tests" / "rehearsal")}
PASSWORD = "correct horse battery staple"
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
# pkilint reports which SKI method it recognised: information, not a finding against us.
EXPECTED_INFO = {"pkix.subject_key_identifier_method_1_identified"}


@dataclasses.dataclass(frozen=True)
class Stack:
    seed: Seed
    spec: PkiSpec
    material: PkiMaterial


def _stack(stack: str, project_dir: Path) -> Stack:
    offline = OfflineStack(load_stack(project_dir, stack), TEST_SEED, "test", {})  # "5e" * 32 is refused now
    config, seed = offline.config, offline.seed
    return Stack(seed, config.pki, build_material(seed, config.pki, today=TODAY))


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request: pytest.FixtureRequest) -> Stack:
    return _stack(*STACKS[request.param])


def _der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


# -- pkilint ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Pkilint:
    loader: Any
    certificate: object
    crl: object


@pytest.fixture(scope="module")
def pkilint() -> Pkilint:
    """pkilint's loaders and validators, imported by the one worker that lints (at module level every
    xdist worker paid ~0.5 s to import it while collecting)."""
    from pkilint import loader, pkix
    from pkilint.pkix import certificate, crl, extension, name

    return Pkilint(
        loader,
        certificate.create_pkix_certificate_validator_container(
            certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
            [certificate.create_issuer_validator_container([]), certificate.create_validity_validator_container(),
             certificate.create_subject_validator_container([]), certificate.create_extensions_validator_container([]),
             certificate.create_spki_validator_container([])],
        ),
        crl.create_pkix_crl_validator_container(
            [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
             pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
            [crl.create_issuer_validator_container([]), crl.create_validity_validator_container([]),
             crl.create_extensions_validator_container([])],
        ),
    )


def _findings(validator: object, document: object) -> list[tuple[str, str, str | None]]:
    results = validator.validate(document.root)  # type: ignore[attr-defined]
    return [(d.finding.severity.name, d.finding.code, d.message) for r in results for d in r.finding_descriptions]


def test_pkilint_finds_nothing_in_any_certificate_or_crl(stack: Stack, pkilint: Pkilint) -> None:
    m = stack.material
    certificates = {"ca": m.ca.certificate, "server": m.server.certificate,
                    **{f"client {n}": c.certificate for n, c in m.clients.items()}}
    epochs = ca_epochs(stack.seed, stack.spec.subject, stack.spec.ca_validity, generation=stack.spec.ca_generation,
                       key_type=stack.spec.ca_key_type, revocations=stack.spec.revocations)
    certificates |= {f"epoch {ca.epoch}": ca.certificate for ca in epochs}
    problems = {}
    for what, cert in certificates.items():
        doc = pkilint.loader.RFC5280CertificateDocumentLoader().load_der_document(_der(cert), what)
        found = [f for f in _findings(pkilint.certificate, doc) if f[1] not in EXPECTED_INFO]
        if found:
            problems[what] = found
    for i, one in enumerate(m.crls):
        doc = pkilint.loader.RFC5280CertificateListDocumentLoader().load_der_document(_der(one), f"crl {i}")
        found = _findings(pkilint.crl, doc)
        if found:
            problems[f"crl {i}"] = found
    assert problems == {}
    assert len(m.crls) == len(epochs)


# -- openssl: each client's first and last day, with the CRL ------------------------------------


def _at(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()))


def test_openssl_accepts_each_client_on_its_first_and_last_day_with_crl_check(stack: Stack, tmp_path: Path) -> None:
    m = stack.material
    ca = write(tmp_path / "ca.pem", m.ca.issued.certificate_pem)
    current_crl = write(tmp_path / "crl.pem", m.crls[0].public_bytes(serialization.Encoding.PEM))
    assert m.clients
    for client_name, issued in m.clients.items():
        leaf = write(tmp_path / f"{client_name}.pem", issued.certificate_pem)
        cert = issued.certificate
        for moment in (cert.not_valid_before_utc + dt.timedelta(minutes=1), cert.not_valid_after_utc - dt.timedelta(minutes=1)):
            result = openssl("verify", "-x509_strict", "-purpose", "sslclient", "-crl_check", "-attime", _at(moment),
                             "-CAfile", str(ca), "-CRLfile", str(current_crl), str(leaf))
            assert result.returncode == 0, (client_name, moment, result.stdout + result.stderr)
        after = openssl("verify", "-crl_check", "-attime", _at(cert.not_valid_after_utc + dt.timedelta(minutes=1)),
                        "-CAfile", str(ca), "-CRLfile", str(current_crl), str(leaf))
        assert "certificate has expired" in after.stdout + after.stderr


def test_openssl_sees_revoked_clients_through_the_older_epochs_crl(stack: Stack, tmp_path: Path) -> None:
    s = stack.spec
    if not s.revocations:
        s = dataclasses.replace(s, revocations=(Revocation(s.clients[0].name, "keyCompromise"),))
    epochs = ca_epochs(stack.seed, s.subject, s.ca_validity, generation=s.ca_generation, key_type=s.ca_key_type,
                       revocations=s.revocations)
    revoked = build_material(stack.seed, s, today=TODAY)
    first = next(c for c in s.clients if c.name == s.revocations[0].name)
    old = epochs[0].issue_client(first)
    ca = write(tmp_path / "ca0.pem", epochs[0].issued.certificate_pem)
    crls = write(tmp_path / "crls.pem", revoked.crl_pem)
    leaf = write(tmp_path / "old.pem", old.certificate_pem)
    for moment in (old.certificate.not_valid_before_utc + dt.timedelta(days=1),
                   old.certificate.not_valid_after_utc - dt.timedelta(minutes=1)):
        result = openssl("verify", "-crl_check", "-attime", _at(moment), "-CAfile", str(ca), "-CRLfile", str(crls),
                         str(leaf))
        assert "certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr


# -- NSS ---------------------------------------------------------------------------------------------


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=cwd)


def _nss_db(path: Path) -> str:
    path.mkdir()
    db = f"sql:{path}"
    assert _run("certutil", "-N", "-d", db, "--empty-password").returncode == 0
    return db


def _nss_time(moment: dt.datetime) -> str:
    return moment.strftime("%y%m%d%H%M%SZ")


@pytest.fixture(scope="module")
def dev() -> Stack:
    return _stack(*STACKS["dev"])


@pytest.mark.parametrize("profile", list(Profile))
def test_nss_imports_both_profiles_and_verifies_client_auth(dev: Stack, tmp_path: Path, profile: Profile) -> None:
    m = dev.material
    name_, issued = next((n, c) for n, c in m.clients.items() if c.private_key is not None)
    p12 = write(tmp_path / "c.p12", pkcs12_once(name_, issued, m.ca.certificate, PASSWORD, profile))
    db = _nss_db(tmp_path / "db")
    imported = _run("pk12util", "-i", str(p12), "-d", db, "-W", PASSWORD, "-K", "")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    keys = _run("certutil", "-K", "-d", db)
    assert keys.returncode == 0 and keys.stdout.count("<") == 1, keys.stdout  # the one private key
    wrong = _run("pk12util", "-i", str(p12), "-d", _nss_db(tmp_path / "db2"), "-W", "wrong password", "-K", "")
    assert wrong.returncode != 0
    leaf = write(tmp_path / "leaf.der", _der(issued.certificate))
    ca = write(tmp_path / "ca.der", _der(m.ca.certificate))
    assert _run("certutil", "-A", "-d", db, "-n", "stack-ca", "-t", "CT,C,C", "-i", str(ca)).returncode == 0
    when = _nss_time(issued.certificate.not_valid_before_utc + dt.timedelta(days=1))
    ok = _run("vfychain", "-d", db, "-u", "0", "-b", when, "-r", str(leaf))
    assert ok.returncode == 0 and "Chain is good" in ok.stdout + ok.stderr, ok.stdout + ok.stderr
    as_server = _run("vfychain", "-d", db, "-u", "1", "-b", when, "-r", str(leaf))
    assert as_server.returncode != 0  # clientAuth only


def test_nss_sees_the_revocation_through_the_crl(tmp_path: Path) -> None:
    m = build_material(SEED, spec(), today=TODAY)
    revoked = build_material(SEED, spec((Revocation("bob", "keyCompromise"),)), today=TODAY)
    db = _nss_db(tmp_path / "db")
    old_ca = write(tmp_path / "ca.der", _der(m.ca.certificate))
    assert _run("certutil", "-A", "-d", db, "-n", "old-ca", "-t", "CT,C,C", "-i", str(old_ca)).returncode == 0
    old_crl = revoked.crls[1]
    assert old_crl.issuer == m.ca.certificate.subject
    crl_file = write(tmp_path / "crl.der", _der(old_crl))
    imported = _run("crlutil", "-I", "-d", db, "-i", str(crl_file), "-t", "1")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    when = _nss_time(dt.datetime(2027, 1, 15, tzinfo=dt.UTC))
    bob = write(tmp_path / "bob.der", _der(m.clients["bob"].certificate))
    alice = write(tmp_path / "alice.der", _der(m.clients["alice"].certificate))
    refused = _run("vfychain", "-d", db, "-u", "0", "-b", when, "-r", str(bob))
    assert refused.returncode != 0 and "revoked" in (refused.stdout + refused.stderr).lower(), refused.stdout
    accepted = _run("vfychain", "-d", db, "-u", "0", "-b", when, "-r", str(alice))
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


# -- GnuTLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "marker"), [(Profile.MODERN, "PBES2-AES256-CBC"), (Profile.LEGACY, "3DES")])
def test_certtool_reads_both_profiles(dev: Stack, tmp_path: Path, profile: Profile, marker: str) -> None:
    m = dev.material
    name_, issued = next((n, c) for n, c in m.clients.items() if c.private_key is not None)
    p12 = write(tmp_path / "c.p12", pkcs12_once(name_, issued, m.ca.certificate, PASSWORD, profile))
    info = _run("certtool", "--p12-info", "--inder", "--infile", str(p12), "--password", PASSWORD)
    assert info.returncode == 0, info.stdout + info.stderr
    assert marker in info.stdout + info.stderr
    wrong = _run("certtool", "--p12-info", "--inder", "--infile", str(p12), "--password", "wrong password")
    assert wrong.returncode != 0


def test_certtool_verifies_clients_and_crls_now(tmp_path: Path) -> None:
    """certtool has no --attime: a PKI issued yesterday (UTC) is checked at the real time."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    base = spec(ca_validity=Validity(yesterday, 3650))
    clients = tuple(dataclasses.replace(c, validity=Validity(yesterday, 365)) for c in base.clients)
    server = dataclasses.replace(base.server, validity=Validity(yesterday, 397))
    before = build_material(SEED, dataclasses.replace(base, clients=clients, server=server), today=yesterday)
    after = build_material(SEED, dataclasses.replace(base, clients=clients, server=server,
                                                     revocations=(Revocation("bob", "keyCompromise"),)), today=yesterday)
    old_ca = write(tmp_path / "old-ca.pem", before.ca.issued.certificate_pem)
    new_ca = write(tmp_path / "new-ca.pem", after.ca.issued.certificate_pem)
    old_crl = write(tmp_path / "old-crl.pem", after.crls[1].public_bytes(serialization.Encoding.PEM))
    new_crl = write(tmp_path / "new-crl.pem", after.crls[0].public_bytes(serialization.Encoding.PEM))
    for ca, one in ((new_ca, new_crl), (old_ca, old_crl)):
        checked = _run("certtool", "--verify-crl", "--load-ca-certificate", str(ca), "--infile", str(one))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    for name_, issued in after.clients.items():
        leaf = write(tmp_path / f"{name_}.pem", issued.certificate_pem)
        ok = _run("certtool", "--verify", "--load-ca-certificate", str(new_ca), "--load-crl", str(new_crl),
                  "--verify-purpose", CLIENT_AUTH, "--infile", str(leaf))
        assert ok.returncode == 0, ok.stdout + ok.stderr
    bob = write(tmp_path / "bob.pem", before.clients["bob"].certificate_pem)
    refused = _run("certtool", "--verify", "--load-ca-certificate", str(old_ca), "--load-crl", str(old_crl),
                   "--verify-purpose", CLIENT_AUTH, "--infile", str(bob))
    assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr
    assert os.path.exists(tmp_path / "bob.pem")
