"""Human summaries of everything a bundle holds (certificates, CSRs, CRLs, keys, PKCS#12), PEM or
DER, for operators. Malformed input gives a PkiError with a short message, never a traceback, and
no private key material is ever printed."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import der
from pki.errors import PkiError
from pki.issued import days_left, fingerprint
from pki.p12crypto import (
    AES256_CBC_OID,
    HMAC_SHA256_OID,
    PBE_SHA1_3DES_OID,
    PBES2_OID,
    SHA1_OID,
    SHA256_OID,
)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def _key(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _spki_sha256(public_key: object) -> str:
    """SHA-256 of the SubjectPublicKeyInfo: equal for a certificate and its private key."""
    spki = public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def _extension_lines(extensions: x509.Extensions) -> list[str]:
    lines = []
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            lines.append("  SAN:         " + ", ".join(str(n.value) for n in value))
        elif isinstance(value, x509.ExtendedKeyUsage):
            lines.append("  EKU:         " + ", ".join(getattr(u, "_name", u.dotted_string) for u in value))
        elif isinstance(value, x509.KeyUsage):
            flags = [n for n in ("digital_signature", "key_encipherment", "key_cert_sign", "crl_sign")
                     if getattr(value, n)]
            lines.append("  key usage:   " + ", ".join(flags))
        elif isinstance(value, x509.BasicConstraints):
            lines.append(f"  CA:          {value.ca}" + (f" (pathlen {value.path_length})" if value.ca else ""))
    return lines


def _state(start: dt.datetime, end: dt.datetime | None, today: dt.date) -> str:
    if start.date() > today:
        return f"NOT YET VALID (starts {start:%Y-%m-%d})"
    if end is not None and end.date() <= today:
        return f"EXPIRED ({end:%Y-%m-%d})"
    return "current"


def describe_certificate(cert: x509.Certificate, today: dt.date, title: str = "certificate") -> str:
    try:
        extensions = _extension_lines(cert.extensions)
    except ValueError as exc:
        extensions = [f"  extensions:  unreadable ({exc})"]
    lines = [
        f"{title}:",
        f"  subject:     {cert.subject.rfc4514_string()}",
        f"  issuer:      {cert.issuer.rfc4514_string()}",
        f"  serial:      {cert.serial_number:x}",
        f"  key:         {_key(cert.public_key())}",
        *extensions,
        f"  valid:       {cert.not_valid_before_utc:%Y-%m-%d %H:%M} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"  state:       {_state(cert.not_valid_before_utc, cert.not_valid_after_utc, today)}",
        f"  days left:   {days_left(cert, today)}",
        f"  sha256:      {fingerprint(cert)}",
        f"  key sha256:  {_spki_sha256(cert.public_key())}",
    ]
    return "\n".join(lines)


def describe_csr(csr: x509.CertificateSigningRequest) -> str:
    try:
        extensions = _extension_lines(csr.extensions)
    except ValueError as exc:
        extensions = [f"  extensions:  unreadable ({exc})"]
    return "\n".join([
        "certificate request:",
        f"  subject:     {csr.subject.rfc4514_string()}",
        f"  key:         {_key(csr.public_key())}",
        f"  signature:   {'valid' if csr.is_signature_valid else 'INVALID'}",
        *extensions,
        f"  key sha256:  {_spki_sha256(csr.public_key())}",
    ])


def describe_crl(crl: x509.CertificateRevocationList, today: dt.date) -> str:
    try:
        number: str = str(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        number = "MISSING (RFC 5280 requires one)"
    next_update = crl.next_update_utc
    lines = [
        f"CRL from {crl.issuer.rfc4514_string()}:",
        f"  number:      {number}",
        f"  valid:       {crl.last_update_utc:%Y-%m-%d %H:%M} .. "
        + (f"{next_update:%Y-%m-%d %H:%M} UTC" if next_update else "(no nextUpdate)"),
        f"  state:       {_state(crl.last_update_utc, next_update, today)}",
        f"  revoked:     {len(crl)}",
    ]
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        except x509.ExtensionNotFound:
            reason = "(no reason given)"
        lines.append(f"    serial {entry.serial_number:x} revoked {entry.revocation_date_utc:%Y-%m-%d}, {reason}")
    return "\n".join(lines)


def describe_private_key(key: object, how: str) -> str:
    return "\n".join([
        "private key:",
        f"  key:         {_key(key)}",
        f"  stored as:   {how}",
        f"  key sha256:  {_spki_sha256(key.public_key())}",  # type: ignore[attr-defined]
    ])


def _pbe(algorithm: der.Node) -> str:
    """A readable name for a password-based-encryption AlgorithmIdentifier, with its iterations."""
    oids = der.oids_in(algorithm.raw)
    ints = [n.as_int() for n in _walk(algorithm) if n.tag == der.INTEGER]
    if oids[:1] == [PBES2_OID]:
        prf = "SHA-256" if HMAC_SHA256_OID in oids else "SHA-1"
        cipher = "AES-256-CBC" if AES256_CBC_OID in oids else "other cipher"
        return f"PBES2, PBKDF2-HMAC-{prf}, {cipher}, {ints[0] if ints else '?'} iterations"
    if oids[:1] == [PBE_SHA1_3DES_OID]:
        return f"PBES1 SHA-1 3DES, {ints[-1] if ints else '?'} iterations"
    return f"algorithm {oids[0] if oids else '?'}"


def _walk(node: der.Node) -> list[der.Node]:
    out = [node]
    if node.tag & 0x20:
        try:
            for child in node.children():
                out += _walk(child)
        except PkiError:
            pass
    return out


def _encrypted_key(data: bytes, password: str | None, source: str) -> str:
    if password is None:
        raise PkiError(f"{source}: an encrypted private key; give its password (PASSWORD_FILE)")
    try:
        key = serialization.load_der_private_key(data, password.encode())
    except (ValueError, TypeError):
        raise PkiError(f"{source}: the password does not decrypt this private key (or it is malformed)") from None
    node, _ = der.parse_one(data, source)
    return describe_private_key(key, f"encrypted PKCS#8 ({_pbe(node.children(source)[0])})")


def _pkcs12(data: bytes, password: str, today: dt.date, source: str) -> str:
    try:
        p12 = pkcs12.load_pkcs12(data, password.encode())
    except ValueError:
        raise PkiError(f"{source}: not a PKCS#12 file, or the password is wrong") from None
    oids = der.oids_in(data, source)
    if PBES2_OID in oids and AES256_CBC_OID in oids and PBE_SHA1_3DES_OID not in oids:
        profile = "Modern2023 (PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC)"
    elif PBE_SHA1_3DES_OID in oids:
        profile = "LegacyDES (PBES1 SHA-1, 3DES)"
    else:
        profile = "other (neither Modern2023 nor LegacyDES)"
    outer, _ = der.parse_one(data, source)
    parts = outer.children(source)
    mac = "none"
    if len(parts) >= 3:
        mac_oids = der.oids_in(parts[2].raw)
        ints = [n.as_int() for n in _walk(parts[2]) if n.tag == der.INTEGER]
        name = {SHA256_OID: "HMAC-SHA-256", SHA1_OID: "HMAC-SHA-1"}.get(mac_oids[0] if mac_oids else "", "other")
        mac = f"{name}, {ints[-1] if ints else 1} iterations"
    lines = [f"PKCS#12 profile: {profile}", f"PKCS#12 MAC:     {mac}"]
    cert = p12.cert.certificate if p12.cert is not None else None
    if cert is not None:
        lines.append(describe_certificate(cert, today, "PKCS#12 certificate"))
    if p12.key is None:
        lines.append("PKCS#12 private key: absent")
    else:
        match = "no certificate to match" if cert is None else (
            "matches the certificate" if _spki_sha256(p12.key.public_key()) == _spki_sha256(cert.public_key())
            else "DOES NOT MATCH the certificate")
        lines.append(f"PKCS#12 private key: {_key(p12.key)}, {match}")
    lines.extend(describe_certificate(c.certificate, today, "PKCS#12 CA certificate") for c in p12.additional_certs)
    return "\n".join(lines)


def _describe_der(data: bytes, today: dt.date, password: str | None, source: str) -> str:
    loaders: list[Callable[[], str]] = [
        lambda: describe_certificate(x509.load_der_x509_certificate(data), today),
        lambda: describe_csr(x509.load_der_x509_csr(data)),
        lambda: describe_crl(x509.load_der_x509_crl(data), today),
        lambda: describe_private_key(serialization.load_der_private_key(data, None), "unencrypted (DER)"),
    ]
    for load in loaders:
        try:
            return load()
        except (ValueError, TypeError):
            continue
    if not data.startswith(b"\x30"):  # every DER structure inspect reads is a SEQUENCE
        raise PkiError(f"{source}: neither PEM nor DER: expected a certificate, CSR, CRL, private key or PKCS#12 "
                       "file (a password file is given as PASSWORD_FILE, not FILE)")
    node, _ = der.parse_one(data, source)  # raises PkiError when it is not DER at all
    children = node.children(source) if node.tag == der.SEQUENCE else []
    if len(children) == 2 and children[0].tag == der.SEQUENCE and children[1].tag == der.OCTET_STRING:
        return _encrypted_key(data, password, source)
    if children and children[0].tag == der.INTEGER and children[0].as_int() == 3:
        if password is None:
            raise PkiError(f"{source}: a PKCS#12 file; give its password (PASSWORD_FILE)")
        return _pkcs12(data, password, today, source)
    raise PkiError(f"{source}: DER, but not a certificate, CSR, CRL, private key or PKCS#12")


def _describe_pem(kind: str, body: bytes, block: bytes, today: dt.date, password: str | None, source: str,
                  title: str) -> str:
    try:
        if kind == "CERTIFICATE":
            return describe_certificate(x509.load_pem_x509_certificate(block), today, title)
        if kind in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
            return describe_csr(x509.load_pem_x509_csr(block))
        if kind == "X509 CRL":
            return describe_crl(x509.load_pem_x509_crl(block), today)
        if kind == "ENCRYPTED PRIVATE KEY":
            return _encrypted_key(base64.b64decode(body), password, source)
        if kind in ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"):
            if b"ENCRYPTED" in block:  # traditional OpenSSL encryption headers
                raise PkiError(f"{source}: a traditionally encrypted {kind}; convert with `openssl pkey`")
            how = {"PRIVATE KEY": "unencrypted PKCS#8", "RSA PRIVATE KEY": "unencrypted PKCS#1"}.get(kind, kind)
            return describe_private_key(serialization.load_pem_private_key(block, None), how)
    except ValueError as exc:
        if isinstance(exc, PkiError):
            raise
        raise PkiError(f"{source}: malformed {kind} block") from None
    raise PkiError(f"{source}: unsupported PEM block {kind!r}")


def describe(data: bytes, *, today: dt.date, password: str | None = None, source: str = "input") -> str:
    """Recognise the input by its content (PEM blocks, or DER) and summarise it."""
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        if b"-----BEGIN" in data:
            raise PkiError(f"{source}: malformed PEM (a BEGIN line without its matching END)")
        if not data.strip():
            raise PkiError(f"{source}: empty")
        return _describe_der(data, today, password, source)
    certificates = sum(1 for b in blocks if b.group(1) == b"CERTIFICATE")
    out, seen = [], 0
    for match in blocks:
        kind = match.group(1).decode()
        title = "certificate"
        if kind == "CERTIFICATE":
            seen += 1
            title = f"certificate {seen}/{certificates}"
        out.append(_describe_pem(kind, match.group(2), match.group(0), today, password, source, title))
    return "\n".join(out)
