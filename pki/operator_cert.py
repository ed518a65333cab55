"""A server certificate the operator brings (the tutorial's step 1: bought from a commercial CA),
checked against everything CLB and clients will hold against it, before anything is uploaded."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.errors import PkiError
from pki.issued import Issued


def _dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.DNSName)


def _covers(pattern: str, domain: str) -> bool:
    """RFC 6125 matching: exact, or one leftmost wildcard label."""
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def load_operator_certificate(chain_pem: str, key_pem: str, *, domains: list[str], today: dt.date,
                              passphrase: str | None = None, source: str = "serverCertificate",
                              key_source: str = "serverPrivateKey") -> Issued:
    """Validate and normalise a brought certificate: RSA, key matches, in date, SAN covers the
    domains; chain reordered leaf first. Errors name the setting, never echo the key."""
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise PkiError(f"{source}: not a PEM certificate chain "
                       "(expected -----BEGIN CERTIFICATE----- blocks)") from None
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), passphrase.encode() if passphrase else None
        )
    except TypeError:
        raise PkiError(
            f"{key_source}: the private key is encrypted; give its passphrase in "
            f"{key_source}Passphrase (secret) so it can be decrypted for CLB, which needs it unencrypted"
        ) from None
    except ValueError:
        what = "the passphrase does not decrypt it" if passphrase else "not a PEM private key"
        raise PkiError(f"{key_source}: {what}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = "EC" if isinstance(key, ec.EllipticCurvePrivateKey) else type(key).__name__
        raise PkiError(f"{key_source}: {kind} key; CLB accepts RSA server certificates only")
    if key.key_size < 2048:
        raise PkiError(f"{key_source}: RSA-{key.key_size} is too weak; use 2048 bits or more")

    leaf = next((c for c in certificates if c.public_key() == key.public_key()), None)
    if leaf is None:
        raise PkiError(f"{source}: no certificate in the chain matches {key_source} "
                       "(CLB would answer CertificateNotMatchPrivateKey)")
    chain = _order_chain(leaf, [c for c in certificates if c is not leaf], source)

    for cert in (leaf, *chain):
        if isinstance(cert.signature_hash_algorithm, hashes.MD5 | hashes.SHA1):
            raise PkiError(f"{source}: {cert.subject.rfc4514_string()} is signed with "
                           f"{cert.signature_hash_algorithm.name}; use SHA-256 or better")
    expires = leaf.not_valid_after_utc.date()
    if expires < today:
        raise PkiError(f"{source}: expired on {expires} (today is {today})")
    names = _dns_names(leaf)
    for domain in domains:
        if not any(_covers(n, domain) for n in names):
            raise PkiError(f"{source}: subjectAltName {names or '(none)'} does not cover domain {domain!r}")
    return Issued(leaf, key, tuple(chain))


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate], source: str) -> list[x509.Certificate]:
    """Follow issuer links from the leaf; anything left over does not belong to this chain."""
    ordered: list[x509.Certificate] = []
    current = leaf
    remaining = list(others)
    while remaining and current.issuer != current.subject:
        parent = next((c for c in remaining if c.subject == current.issuer), None)
        if parent is None:
            break
        ordered.append(parent)
        remaining.remove(parent)
        current = parent
    if remaining:
        stray = ", ".join(c.subject.rfc4514_string() for c in remaining)
        raise PkiError(f"{source}: certificate(s) not in the leaf's issuer chain: {stray}")
    return ordered
