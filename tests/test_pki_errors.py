"""Bad input to the pki: one clear PkiError each, naming what is wrong."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from conftest import ISSUED, SEED, SUBJECT, TODAY, client, openssl, spec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pki import (
    CertificateAuthority,
    PkiError,
    PkiMaterial,
    Profile,
    ServerSpec,
    Validity,
    build_material,
    write_client_bundle,
)
from pki.operator_cert import load_operator_certificate

DOMAIN = "mtls.example.com"


def _self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, names: list[str], days: int = 90,
                 start: dt.datetime | None = None) -> str:
    start = start or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: bytes | None = None) -> str:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def test_operator_certificate_accepted_and_rendered_for_clb(material: PkiMaterial, rsa_key: rsa.RSAPrivateKey) -> None:
    # a chain given root-first is reordered leaf-first; an encrypted key is decrypted with its passphrase
    leaf = material.server
    chain = material.ca.issued.certificate_pem + leaf.certificate_pem
    pem = leaf.private_key
    assert pem is not None
    got = load_operator_certificate(chain, _pem(pem, b"hunter22"), passphrase="hunter22", domains=[DOMAIN],
                                    today=TODAY)
    assert got.chain_pem == leaf.certificate_pem + material.ca.issued.certificate_pem
    assert got.private_key_pem().startswith("-----BEGIN RSA PRIVATE KEY-----")
    wildcard = load_operator_certificate(_self_signed(rsa_key, ["*.example.com"]), _pem(rsa_key),
                                         domains=[DOMAIN], today=TODAY)
    assert wildcard.chain == ()


@pytest.mark.parametrize(("case", "message"), [
    ("mismatch", "serverCertificate: no certificate in the chain matches serverPrivateKey"),
    ("expired", "serverCertificate: expired on 2026-06-11 (today is 2026-12-01)"),
    ("ec", "serverPrivateKey: EC key; CLB accepts RSA server certificates only"),
    ("san", "serverCertificate: subjectAltName ['other.example.org'] does not cover domain 'mtls.example.com'"),
    ("encrypted", "serverPrivateKey: the private key is encrypted; give its passphrase"),
    ("badpass", "serverPrivateKey: the passphrase does not decrypt it"),
    ("garbage", "serverCertificate: not a PEM certificate chain"),
])
def test_operator_certificate_problems(rsa_key: rsa.RSAPrivateKey, case: str, message: str) -> None:
    good_cert = _self_signed(rsa_key, [DOMAIN])
    cert, key, passphrase = good_cert, _pem(rsa_key), None
    if case == "mismatch":
        key = _pem(rsa.generate_private_key(65537, 2048))
    elif case == "expired":
        cert = _self_signed(rsa_key, [DOMAIN], days=30, start=dt.datetime(2026, 5, 12, tzinfo=dt.UTC))
    elif case == "ec":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        cert, key = _self_signed(ec_key, [DOMAIN]), _pem(ec_key)
    elif case == "san":
        cert = _self_signed(rsa_key, ["other.example.org"])
    elif case == "encrypted":
        key = _pem(rsa_key, b"s3cret-pass")
    elif case == "badpass":
        key, passphrase = _pem(rsa_key, b"s3cret-pass"), "not-it"
    elif case == "garbage":
        cert = "hello"
    with pytest.raises(PkiError) as info:
        load_operator_certificate(cert, key, passphrase=passphrase, domains=[DOMAIN], today=TODAY)
    assert str(info.value).startswith(message)
    assert "PRIVATE KEY" not in str(info.value)


def test_csr_client_keeps_its_key_and_gets_client_auth_only(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)  # asks too much
           .sign(key, hashes.SHA256()))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    ca = CertificateAuthority(SEED, SUBJECT, Validity(ISSUED, 3650))
    issued = ca.issue_client(client("carol", csr_pem=pem))
    assert issued.private_key is None
    assert issued.certificate.public_key() == key.public_key()
    assert issued.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = issued.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [u.dotted_string for u in eku] == ["1.3.6.1.5.5.7.3.2"]
    assert issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "carol"


def test_csr_with_a_bad_signature_is_refused() -> None:
    key = rsa.generate_private_key(65537, 2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")]))
           .sign(key, hashes.SHA256()))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip bits inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    ca = CertificateAuthority(SEED, SUBJECT, Validity(ISSUED, 3650))
    with pytest.raises(PkiError, match="client 'mallory': csr signature does not verify"):
        ca.issue_client(client("mallory", csr_pem=tampered))


def test_duplicate_client_name() -> None:
    with pytest.raises(PkiError, match="duplicate client name\\(s\\): alice"):
        build_material(SEED, spec(clients=(client("alice"), client("alice"))), today=TODAY)


def test_lifetime_beyond_the_issuer_is_refused() -> None:
    with pytest.raises(PkiError, match="client 'alice': lifetime 2026-11-27 .. 2028-11-26 \\(730 days\\) is not "
                                       "within its CA's 2026-11-27 .. 2027-11-27"):
        build_material(SEED, spec(ca_validity=Validity(ISSUED, 365), clients=(client("alice", validity=Validity(ISSUED, 730)),),
                                  server=ServerSpec((DOMAIN,), Validity(ISSUED, 300))), today=TODAY)
    with pytest.raises(PkiError, match="server certificate lifetime 900 days exceeds 825"):
        build_material(SEED, spec(server=ServerSpec((DOMAIN,), Validity(ISSUED, 900))), today=TODAY)


@pytest.mark.usefixtures("cheap_bundle_kdf")  # about files and modes, not the profile
def test_bundle_files_are_private_and_never_overwritten(material: PkiMaterial, tmp_path: Path) -> None:
    out = tmp_path / "alice"
    files = write_client_bundle(out, "alice", material.clients["alice"], material.ca.certificate, material.crl_pem)
    names = sorted(p.name for p in files.paths)
    assert names == ["alice.crt", "alice.key", "alice.p12", "alice.password", "ca.crt", "crl.pem"]
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in files.paths)
    password = (out / "alice.password").read_text().strip()
    assert len(password) >= 24
    key = openssl("pkey", "-in", str(out / "alice.key"), "-passin", f"pass:{password}", "-noout")
    assert key.returncode == 0, key.stderr
    before = (out / "alice.p12").read_bytes()
    with pytest.raises(PkiError, match="refusing to overwrite alice.p12, alice.crt"):
        write_client_bundle(out, "alice", material.clients["alice"], material.ca.certificate, material.crl_pem,
                            password="another password, long enough", profile=Profile.LEGACY)
    assert (out / "alice.p12").read_bytes() == before
