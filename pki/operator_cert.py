"""A server certificate the operator brings (the tutorial's step 1: bought from a commercial CA),
checked against everything CLB and clients will hold against it, before anything is uploaded."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

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
    """Validate and normalise a brought certificate: RSA, key matches, in date (started and not
    ended), a server certificate (not a CA, serverAuth if its EKU is limited), SAN covers the
    domains; chain reordered leaf first, each link checked by signature. Errors name the setting,
    never echo the key."""
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise PkiError(f"{source}: not a PEM certificate chain "
                       "(expected -----BEGIN CERTIFICATE----- blocks)") from None
    try:
        key = serialization.load_pem_private_key(
            key_pem.encode(), passphrase.encode() if passphrase else None
        )
    except TypeError:  # cryptography: a passphrase for a plain key, or none for an encrypted one
        if passphrase:
            raise PkiError(f"{key_source}: the private key is not encrypted, but {key_source}Passphrase is set; "
                           f"remove {key_source}Passphrase (pulumi config rm {key_source}Passphrase)") from None
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
    starts = leaf.not_valid_before_utc.date()
    if starts > today:
        raise PkiError(f"{source}: not valid before {starts} (today is {today}); clients would refuse it until then")
    _check_leaf_usage(leaf, source)
    names = _dns_names(leaf)
    for domain in domains:
        if not any(_covers(n, domain) for n in names):
            raise PkiError(f"{source}: subjectAltName {names or '(none)'} does not cover domain {domain!r}")
    return Issued(leaf, key, tuple(chain))


def _check_leaf_usage(leaf: x509.Certificate, source: str) -> None:
    """A server certificate: not a CA, and if it limits its use, TLS server use is allowed."""
    subject = leaf.subject.rfc4514_string()
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise PkiError(f"{source}: {subject} is a CA certificate (basicConstraints CA:TRUE); "
                       "give the server certificate issued for the domain")
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        names = ", ".join(getattr(u, "_name", u.dotted_string) for u in usages) or "(none)"
        raise PkiError(f"{source}: {subject} allows extended key usage {names}, not serverAuth; "
                       "browsers and curl refuse it as a TLS server certificate")


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """`parent` issued `child`: names match and the signature verifies (names alone can be copied)."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate], source: str) -> list[x509.Certificate]:
    """Follow issuer links from the leaf, each checked by its signature; anything left over does not
    belong to this chain."""
    ordered: list[x509.Certificate] = []
    current = leaf
    remaining = list(others)
    while remaining and current.issuer != current.subject:
        named = [c for c in remaining if c.subject == current.issuer]
        parent = next((c for c in named if _signed_by(current, c)), None)
        if parent is None:
            if named:
                raise PkiError(f"{source}: {named[0].subject.rfc4514_string()} is named as the issuer of "
                               f"{current.subject.rfc4514_string()} but did not sign it; the chain is not this "
                               "certificate's (get the intermediates from the CA that issued it)")
            break
        ordered.append(parent)
        remaining.remove(parent)
        current = parent
    if remaining:
        stray = ", ".join(c.subject.rfc4514_string() for c in remaining)
        raise PkiError(f"{source}: certificate(s) not in the leaf's issuer chain: {stray}")
    return ordered
