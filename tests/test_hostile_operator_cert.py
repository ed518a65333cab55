"""A brought server certificate (issue 10, finding 8): refused when not yet valid, clientAuth-only,
a CA, or chained to an issuer that did not sign it; a plain key with a passphrase says so."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import PkiError
from pki.operator_cert import load_operator_certificate

DOMAIN = "mtls.example.com"
TODAY = dt.date(2026, 12, 1)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, *, ca: bool = False,
          eku: list[x509.ObjectIdentifier] | None = None, start: dt.datetime = START) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {n: rsa.generate_private_key(65537, 2048) for n in ("root", "inter", "forger", "leaf")}


def load(chain: str, key: rsa.RSAPrivateKey, passphrase: str | None = None) -> object:
    return load_operator_certificate(chain, _key_pem(key), domains=[DOMAIN], today=TODAY, passphrase=passphrase)


def test_a_proper_chain_is_accepted_in_any_order(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    root = _cert("Root", keys["root"], "Root", keys["root"], ca=True)
    inter = _cert("Inter", keys["inter"], "Root", keys["root"], ca=True)
    leaf = _cert(DOMAIN, keys["leaf"], "Inter", keys["inter"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    issued = load_operator_certificate(_pem(root, inter, leaf), _key_pem(keys["leaf"]), domains=[DOMAIN], today=TODAY)
    assert issued.chain_pem == _pem(leaf, inter, root)  # type: ignore[attr-defined]


def test_a_chain_matched_by_names_only_is_refused(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    # "Inter" as named by the leaf, but a different key: the name is right, the signature is not
    forged = _cert("Inter", keys["forger"], "Root", keys["root"], ca=True)
    leaf = _cert(DOMAIN, keys["leaf"], "Inter", keys["inter"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(PkiError, match="CN=Inter is named as the issuer of CN=mtls.example.com but did not sign it"):
        load(_pem(leaf, forged), keys["leaf"])


@pytest.mark.parametrize(("case", "message"), [
    ("not yet valid", "serverCertificate: not valid before 2027-01-01 (today is 2026-12-01)"),
    ("clientAuth only", "allows extended key usage clientAuth, not serverAuth"),
    ("CA:TRUE leaf", "is a CA certificate (basicConstraints CA:TRUE)"),
])
def test_leaf_problems(keys: dict[str, rsa.RSAPrivateKey], case: str, message: str) -> None:
    kwargs: dict[str, object] = {}
    if case == "not yet valid":
        kwargs["start"] = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    elif case == "clientAuth only":
        kwargs["eku"] = [ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        kwargs["ca"] = True
    leaf = _cert(DOMAIN, keys["leaf"], DOMAIN, keys["leaf"], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PkiError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(_pem(leaf), keys["leaf"])


def test_a_plain_key_with_a_passphrase(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    leaf = _cert(DOMAIN, keys["leaf"], DOMAIN, keys["leaf"])
    with pytest.raises(PkiError, match="the private key is not encrypted, but serverPrivateKeyPassphrase is set") as info:
        load(_pem(leaf), keys["leaf"], passphrase="hunter2hunter2")
    assert "hunter2" not in str(info.value)
