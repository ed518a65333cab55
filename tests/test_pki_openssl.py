"""The pki's output checked by the real `openssl` command, not by the code that made it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import AT_TIME, CRL_TIME, openssl, pkcs12_once, write

from pki import PkiMaterial, Profile

PASSWORD = "correct horse battery staple"  # test_pki_bundle's: the modern file is built once for both


def test_every_leaf_verifies_against_the_ca(material: PkiMaterial, tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", material.ca.issued.certificate_pem)
    leaves = [write(tmp_path / "server.pem", material.server.certificate_pem)]
    leaves += [write(tmp_path / f"{n}.pem", c.certificate_pem) for n, c in material.clients.items()]
    result = openssl("verify", "-attime", AT_TIME, "-x509_strict", "-CAfile", str(ca), *map(str, leaves))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": OK") == 4


def test_purposes_are_enforced_by_openssl(material: PkiMaterial, tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", material.ca.issued.certificate_pem)
    server = write(tmp_path / "server.pem", material.server.certificate_pem)
    alice = write(tmp_path / "alice.pem", material.clients["alice"].certificate_pem)
    ok = openssl("verify", "-attime", AT_TIME, "-purpose", "sslclient", "-CAfile", str(ca), str(alice))
    assert ok.returncode == 0, ok.stderr
    wrong = openssl("verify", "-attime", AT_TIME, "-purpose", "sslclient", "-CAfile", str(ca), str(server))
    assert wrong.returncode != 0
    assert "unsuitable certificate purpose" in wrong.stdout + wrong.stderr


def test_ca_extensions_as_openssl_shows_them(material: PkiMaterial) -> None:
    text = openssl("x509", "-noout", "-text", input=material.ca.issued.certificate_pem.encode()).stdout
    assert "Signature Algorithm: sha256WithRSAEncryption" in text
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "Public-Key: (2048 bit)" in text
    assert f"C=CN, ST=Zhejiang, O=Example Corp, OU=IT, CN=Example client CA {material.ca.epoch}" in text.replace(" = ", "=")
    assert material.ca.epoch.startswith("g1.r0.")


def test_server_and_client_extensions(material: PkiMaterial) -> None:
    server = openssl("x509", "-noout", "-text", input=material.server.certificate_pem.encode()).stdout
    assert "DNS:mtls.example.com, DNS:www.mtls.example.com" in server
    assert "TLS Web Server Authentication" in server
    assert "Digital Signature, Key Encipherment" in server
    assert "X509v3 Authority Key Identifier" in server
    alice = openssl("x509", "-noout", "-text", input=material.clients["alice"].certificate_pem.encode()).stdout
    assert "email:alice@example.com" in alice
    assert "TLS Web Client Authentication" in alice
    assert "TLS Web Server Authentication" not in alice
    bob = openssl("x509", "-noout", "-text", input=material.clients["bob"].certificate_pem.encode()).stdout
    assert "URI:https://slb-mtls.invalid/client/bob" in bob
    edge = openssl("x509", "-noout", "-text", input=material.clients["edge"].certificate_pem.encode()).stdout
    assert "ASN1 OID: prime256v1" in edge


def test_derived_rsa_keys_pass_openssl_check(material: PkiMaterial) -> None:
    for issued in (material.server, material.clients["alice"]):
        pem = issued.private_key_pem()
        assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1, as CLB wants
        result = openssl("rsa", "-check", "-noout", input=pem.encode())
        assert result.returncode == 0, result.stderr
        assert "RSA key ok" in result.stdout


def test_server_rendering_is_what_clb_accepts(material: PkiMaterial) -> None:
    chain, key = material.server.chain_pem, material.server.private_key_pem()
    for text in (chain, key):
        assert "\n\n" not in text and "DH PARAMETERS" not in text and "ENCRYPTED" not in text
        assert all(len(line) <= 64 for line in text.splitlines())
    modulus_cert = openssl("x509", "-noout", "-modulus", input=chain.encode()).stdout
    modulus_key = openssl("rsa", "-noout", "-modulus", input=key.encode()).stdout
    assert modulus_cert == modulus_key


def test_revoked_client_shows_as_revoked_with_crl_check(material: PkiMaterial, revoked_material: PkiMaterial,
                                                        tmp_path: Path) -> None:
    """bob's certificate from before the revocation is listed in the old CA epoch's CRL."""
    old_ca = write(tmp_path / "old-ca.pem", material.ca.issued.certificate_pem)
    crl = write(tmp_path / "crl.pem", revoked_material.crl_pem)
    bob = write(tmp_path / "bob.pem", material.clients["bob"].certificate_pem)
    alice = write(tmp_path / "alice.pem", material.clients["alice"].certificate_pem)
    args = ["verify", "-attime", CRL_TIME, "-crl_check", "-CAfile", str(old_ca), "-CRLfile", str(crl)]
    revoked = openssl(*args, str(bob))
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    assert openssl(*args, str(alice)).returncode == 0
    end = "-----END X509 CRL-----\n"
    current, previous = (block + end for block in revoked_material.crl_pem.split(end)[:2])
    assert "No Revoked Certificates" in openssl("crl", "-noout", "-text", input=current.encode()).stdout
    crl_text = openssl("crl", "-noout", "-text", input=previous.encode()).stdout
    assert "Key Compromise" in crl_text and "X509v3 CRL Number" in crl_text


def test_revocation_rotates_the_ca_for_clb(material: PkiMaterial, revoked_material: PkiMaterial,
                                           tmp_path: Path) -> None:
    """CLB ignores CRLs: what stops bob is that the new CA does not sign his old certificate."""
    assert revoked_material.ca.epoch.startswith("g1.r1.")
    assert "bob" not in revoked_material.clients
    new_ca = write(tmp_path / "new-ca.pem", revoked_material.ca.issued.certificate_pem)
    old_bob = write(tmp_path / "bob.pem", material.clients["bob"].certificate_pem)
    new_alice = write(tmp_path / "alice.pem", revoked_material.clients["alice"].certificate_pem)
    assert openssl("verify", "-attime", AT_TIME, "-CAfile", str(new_ca), str(old_bob)).returncode != 0
    assert openssl("verify", "-attime", AT_TIME, "-CAfile", str(new_ca), str(new_alice)).returncode == 0


@pytest.mark.parametrize(("profile", "extra", "marker"), [
    (Profile.MODERN, [], "PBES2, PBKDF2, AES-256-CBC"),
    (Profile.LEGACY, ["-legacy"], "pbeWithSHA1And3-KeyTripleDES-CBC"),
])
def test_pkcs12_profiles_open_with_the_password(material: PkiMaterial, tmp_path: Path, profile: Profile,
                                                extra: list[str], marker: str) -> None:
    p12 = write(tmp_path / "alice.p12", pkcs12_once("alice", material.clients["alice"],
                                                    material.ca.certificate, PASSWORD, profile))
    info = openssl("pkcs12", *extra, "-in", str(p12), "-info", "-noout", "-passin", f"pass:{PASSWORD}")
    assert info.returncode == 0, info.stderr
    assert marker in info.stderr + info.stdout
    wrong = openssl("pkcs12", *extra, "-in", str(p12), "-noout", "-passin", "pass:wrong")
    assert wrong.returncode != 0
    dump = openssl("pkcs12", *extra, "-in", str(p12), "-nodes", "-passin", f"pass:{PASSWORD}").stdout
    assert "CN=alice" in dump.replace(" = ", "=") and "PRIVATE KEY" in dump
