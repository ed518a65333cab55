"""`make inspect` on every file a bundle holds, PEM and DER, and on malformed input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import SEED, TODAY, spec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki import PkiError, PkiMaterial, Profile, Revocation, build_material, write_client_bundle
from pki.inspect import describe

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, revoked_material: PkiMaterial) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "alice"
    m = revoked_material
    write_client_bundle(out, "alice", m.clients["alice"], m.ca.certificate, m.crl_pem, password=PASSWORD,
                        plain_key=True)
    return out


def test_encrypted_key_pem_and_der(bundle: Path) -> None:
    pem = (bundle / "alice.key").read_bytes()
    text = describe(pem, today=TODAY, password=PASSWORD)
    assert "encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC, 600000 iterations)" in text
    cert_key = describe((bundle / "alice.crt").read_bytes(), today=TODAY).split("key sha256:  ")[1][:64]
    assert f"key sha256:  {cert_key}" in text
    with pytest.raises(PkiError, match="encrypted private key; give its password"):
        describe(pem, today=TODAY)
    with pytest.raises(PkiError, match="the password does not decrypt"):
        describe(pem, today=TODAY, password="wrong")
    der = serialization.load_pem_private_key(pem, PASSWORD.encode()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()))
    assert "encrypted PKCS#8" in describe(der, today=TODAY, password=PASSWORD)
    assert "unencrypted PKCS#8" in describe((bundle / "alice.plain.key").read_bytes(), today=TODAY)


def test_certificate_pem_and_der_with_validity_state(bundle: Path) -> None:
    pem = (bundle / "alice.crt").read_bytes()
    assert "state:       current" in describe(pem, today=TODAY)
    assert "state:       EXPIRED" in describe(pem, today=dt.date(2030, 1, 1))
    assert "state:       NOT YET VALID" in describe(pem, today=dt.date(2026, 1, 1))
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert "subject:     CN=alice" in describe(der, today=TODAY)
    assert "CA:          True" in describe((bundle / "ca.crt").read_bytes(), today=TODAY)


def test_crl_state_number_and_reasons(bundle: Path) -> None:
    crl = (bundle / "crl.pem").read_bytes()
    text = describe(crl, today=TODAY)
    assert text.count("CRL from") == 2 and "state:       current" in text
    assert "keyCompromise" in text and "revoked:     1" in text
    assert "EXPIRED" in describe(crl, today=dt.date(2040, 1, 1))
    assert "NOT YET VALID" in describe(crl, today=dt.date(2026, 1, 1))
    der = x509.load_pem_x509_crl(crl.split(b"-----END X509 CRL-----")[0] + b"-----END X509 CRL-----\n")
    assert "CRL from" in describe(der.public_bytes(serialization.Encoding.DER), today=TODAY)


def test_crl_without_a_number(material: PkiMaterial) -> None:
    crl = (x509.CertificateRevocationListBuilder().issuer_name(material.ca.name)
           .last_update(dt.datetime(2026, 11, 27, tzinfo=dt.UTC)).next_update(dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
           .sign(material.ca.private_key, hashes.SHA256()))
    assert "number:      MISSING" in describe(crl.public_bytes(serialization.Encoding.PEM), today=TODAY)


@pytest.mark.parametrize(("profile", "name"), [(Profile.MODERN, "Modern2023"), (Profile.LEGACY, "LegacyDES")])
def test_pkcs12_profile_mac_and_match(material: PkiMaterial, bundle: Path, tmp_path: Path, profile: Profile,
                                      name: str) -> None:
    if profile is Profile.MODERN:  # the module's bundle is a modern one (built once: ~0.8 s of CPU)
        p12 = bundle / "alice.p12"
    else:
        files = write_client_bundle(tmp_path / "b", "bob", material.clients["bob"], material.ca.certificate,
                                    material.crl_pem, password=PASSWORD, profile=profile)
        p12 = tmp_path / "b" / "bob.p12"
        assert p12 in files.paths
    text = describe(p12.read_bytes(), today=TODAY, password=PASSWORD)
    assert f"PKCS#12 profile: {name}" in text
    assert ("HMAC-SHA-256, 600000 iterations" if profile is Profile.MODERN else "HMAC-SHA-1, 2048 iterations") in text
    assert "PKCS#12 private key: RSA-2048, matches the certificate" in text
    with pytest.raises(PkiError, match="a PKCS#12 file; give its password"):
        describe(p12.read_bytes(), today=TODAY)


def test_csr_is_described(material: PkiMaterial) -> None:
    key = material.clients["edge"].private_key
    assert key is not None
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string("CN=edge"))
           .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
    assert "signature:   valid" in describe(csr.public_bytes(serialization.Encoding.PEM), today=TODAY)
    assert "certificate request" in describe(csr.public_bytes(serialization.Encoding.DER), today=TODAY)


@pytest.mark.parametrize("data", [
    b"", b"hello", b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n", b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    b"\x30\x82\xff\xff\x02\x01", b"\x30\x03\x02\x01\x03", b"\x30\x00", bytes(range(256)),
    b"-----BEGIN FOO-----\nMAA=\n-----END FOO-----\n",
])
def test_malformed_input_is_a_short_pki_error(data: bytes) -> None:
    with pytest.raises(PkiError) as info:
        describe(data, today=TODAY, password=PASSWORD, source="x.pem")
    assert str(info.value).startswith("x.pem: ") and len(str(info.value)) < 200


def test_revoked_material_is_still_inspectable() -> None:
    m = build_material(SEED, spec((Revocation("bob", "superseded"),)), today=TODAY)
    assert "superseded" in describe(m.crl_pem.encode(), today=TODAY)


def test_a_text_file_that_is_no_pem_says_what_inspect_reads() -> None:
    with pytest.raises(PkiError, match="neither PEM nor DER: expected a certificate, CSR, CRL, private key or PKCS#12"):
        describe(b"a-long-enough-password\n", today=TODAY, source="alice.password")
