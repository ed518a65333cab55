"""Bundles: cert-manager profile names, iteration counts as openssl reads them, the plain key,
and a password floor that makes guessing moot."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import openssl, pkcs12_once, write

from pki import PkiError, PkiMaterial, Profile, pkcs12_bytes, write_client_bundle
from pki.bundle import check_password

PASSWORD = "correct horse battery staple"


def test_profile_names_follow_cert_manager_and_keep_the_old_ones() -> None:
    assert Profile.MODERN.value == "Modern2023" and Profile.LEGACY.value == "LegacyDES"
    for text, profile in [("Modern2023", Profile.MODERN), ("modern", Profile.MODERN),
                          ("legacydes", Profile.LEGACY), ("legacy", Profile.LEGACY)]:
        assert Profile.parse(text) is profile
    with pytest.raises(PkiError, match="unknown PKCS#12 profile 'LegacyRC2'; allowed: Modern2023"):
        Profile.parse("LegacyRC2")


def test_modern_mac_and_key_use_600k_iterations(material: PkiMaterial, tmp_path: Path) -> None:
    p12 = write(tmp_path / "a.p12", pkcs12_once("alice", material.clients["alice"], material.ca.certificate,
                                                PASSWORD, Profile.MODERN))
    info = openssl("pkcs12", "-in", str(p12), "-info", "-noout", "-passin", f"pass:{PASSWORD}")
    assert info.returncode == 0, info.stderr
    text = info.stdout + info.stderr
    assert "MAC: sha256, Iteration 600000" in text
    assert text.count("PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256") == 2
    assert openssl("pkcs12", "-in", str(p12), "-noout", "-passin", "pass:wrong").returncode != 0
    key = write(tmp_path / "a.key", material.clients["alice"].encrypted_private_key_pem(PASSWORD.encode()))
    parsed = openssl("asn1parse", "-in", str(key)).stdout
    assert re.search(r"OBJECT\s+:PBES2", parsed) and re.search(r"INTEGER\s+:0927C0", parsed)  # 600000
    assert "hmacWithSHA256" in parsed and "aes-256-cbc" in parsed
    assert openssl("pkey", "-in", str(key), "-passin", f"pass:{PASSWORD}", "-noout").returncode == 0
    assert openssl("pkey", "-in", str(key), "-passin", "pass:wrong", "-noout").returncode != 0


def test_legacy_profile_is_3des_sha1(material: PkiMaterial, tmp_path: Path) -> None:
    p12 = write(tmp_path / "a.p12", pkcs12_bytes("alice", material.clients["alice"], material.ca.certificate,
                                                 PASSWORD, Profile.LEGACY))
    info = openssl("pkcs12", "-legacy", "-in", str(p12), "-info", "-noout", "-passin", f"pass:{PASSWORD}")
    assert "MAC: sha1" in info.stdout + info.stderr and "pbeWithSHA1And3-KeyTripleDES-CBC" in info.stdout + info.stderr


@pytest.mark.parametrize("password", ["short", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab12"])
def test_weak_passwords_are_refused_without_echo(password: str) -> None:
    with pytest.raises(PkiError, match="PASSWORD_FILE: the bundle password needs at least 20 characters") as info:
        check_password(password)
    assert password not in str(info.value)


@pytest.mark.usefixtures("cheap_bundle_kdf")  # about the plain key file, not the profile
def test_plain_key_is_written_0600_only_on_request(material: PkiMaterial, tmp_path: Path) -> None:
    issued = material.clients["edge"]
    files = write_client_bundle(tmp_path / "e", "edge", issued, material.ca.certificate, material.crl_pem,
                                plain_key=True)
    plain = tmp_path / "e" / "edge.plain.key"
    assert plain in files.paths and os.stat(plain).st_mode & 0o777 == 0o600
    assert plain.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    assert openssl("pkey", "-in", str(plain), "-noout").returncode == 0
    modulus = openssl("pkey", "-in", str(plain), "-pubout").stdout
    assert modulus == openssl("x509", "-in", str(tmp_path / "e" / "edge.crt"), "-noout", "-pubkey").stdout
    without = write_client_bundle(tmp_path / "n", "edge", issued, material.ca.certificate, material.crl_pem)
    assert not any(p.name.endswith(".plain.key") for p in without.paths)
