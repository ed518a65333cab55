"""Human summaries of certificates, CSRs, CRLs and PKCS#12 files, for operators."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from pki.derive import PublicKey
from pki.errors import PkiError
from pki.issued import days_left, fingerprint


def _key(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _extension_lines(extensions: x509.Extensions) -> list[str]:
    lines = []
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            lines.append("  SAN:         " + ", ".join(str(n.value) for n in value))
        elif isinstance(value, x509.ExtendedKeyUsage):
            lines.append("  EKU:         " + ", ".join(u._name for u in value))
        elif isinstance(value, x509.KeyUsage):
            flags = [n for n in ("digital_signature", "key_encipherment", "key_cert_sign", "crl_sign")
                     if getattr(value, n)]
            lines.append("  key usage:   " + ", ".join(flags))
        elif isinstance(value, x509.BasicConstraints):
            lines.append(f"  CA:          {value.ca}" + (f" (pathlen {value.path_length})" if value.ca else ""))
    return lines


def describe_certificate(cert: x509.Certificate, today: dt.date, title: str = "certificate") -> str:
    key: PublicKey = cert.public_key()  # type: ignore[assignment]
    lines = [
        f"{title}:",
        f"  subject:     {cert.subject.rfc4514_string()}",
        f"  issuer:      {cert.issuer.rfc4514_string()}",
        f"  serial:      {cert.serial_number:x}",
        f"  key:         {_key(key)}",
        *_extension_lines(cert.extensions),
        f"  valid:       {cert.not_valid_before_utc:%Y-%m-%d %H:%M} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"  days left:   {days_left(cert, today)}",
        f"  sha256:      {fingerprint(cert)}",
    ]
    return "\n".join(lines)


def describe(data: bytes, *, today: dt.date, password: str | None = None, source: str = "input") -> str:
    """Recognise the input by its content and summarise it."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        certs = x509.load_pem_x509_certificates(data)
        return "\n".join(describe_certificate(c, today, f"certificate {i + 1}/{len(certs)}")
                         for i, c in enumerate(certs))
    if b"-----BEGIN CERTIFICATE REQUEST-----" in data:
        csr = x509.load_pem_x509_csr(data)
        return "\n".join([
            "certificate request:",
            f"  subject:     {csr.subject.rfc4514_string()}",
            f"  key:         {_key(csr.public_key())}",
            f"  signature:   {'valid' if csr.is_signature_valid else 'INVALID'}",
            *_extension_lines(csr.extensions),
        ])
    if b"-----BEGIN X509 CRL-----" in data:
        blocks = [b"-----BEGIN X509 CRL-----" + part for part in data.split(b"-----BEGIN X509 CRL-----")[1:]]
        out = []
        for block in blocks:
            crl = x509.load_pem_x509_crl(block)
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            out.append(f"CRL #{number} from {crl.issuer.rfc4514_string()}, "
                       f"{crl.last_update_utc:%Y-%m-%d} .. {crl.next_update_utc:%Y-%m-%d}: "
                       f"{len(crl)} revoked")
            out.extend(f"  serial {r.serial_number:x} revoked {r.revocation_date_utc:%Y-%m-%d}" for r in crl)
        return "\n".join(out)
    if password is None:
        raise PkiError(f"{source}: not PEM; if it is a PKCS#12 file, give its password (PASSWORD_FILE)")
    try:
        p12 = pkcs12.load_pkcs12(data, password.encode())
    except ValueError:
        raise PkiError(f"{source}: not a PKCS#12 file, or the password is wrong") from None
    parts = []
    if p12.cert is not None:
        parts.append(describe_certificate(p12.cert.certificate, today, "PKCS#12 certificate"))
    parts.append(f"PKCS#12 private key: {'present' if p12.key is not None else 'absent'}")
    parts.extend(describe_certificate(c.certificate, today, "PKCS#12 CA certificate")
                 for c in p12.additional_certs)
    return "\n".join(parts)
