"""The private CA: a self-signed RSA root that issues the server certificate, client certificates
and CRLs, every byte derived from the seed.

The CA's key is derived from its generation *and* the names revoked so far. CLB never checks CRLs,
so the only revocation it honours is a CA it no longer trusts: each revocation therefore yields a new
CA (a new "epoch") that issues only the remaining clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.derive import KeyType, Label, PublicKey, Seed, derive_key, derive_rsa_key, derive_serial
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import REVOCATION_REASONS, ClientSpec, Revocation, Subject, Validity

MAX_SERVER_DAYS = 825  # the longest TLS server lifetime any mainstream client still accepts
_CLIENT_URI_PREFIX = "urn:slb-mtls:client:"


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False,
               cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """One CA epoch: (generation, revoked names so far) -> one key, one self-signed certificate."""

    def __init__(
        self,
        seed: Seed,
        subject: Subject,
        validity: Validity,
        *,
        generation: int = 1,
        revoked: Sequence[str] = (),
        key_type: KeyType = KeyType.RSA_2048,
    ) -> None:
        if not key_type.is_rsa:
            raise PkiError(f"CA key type {key_type.value!r}: CLB accepts RSA CA certificates only")
        self.seed = seed
        self.generation = generation
        self.revoked = tuple(revoked)
        self.validity = validity
        self.label: Label = ("ca", generation, len(self.revoked), *self.revoked)
        self.epoch = f"g{generation}.r{len(self.revoked)}"
        self.subject = subject
        self.name = subject.to_name(f"{subject.common_name} {self.epoch}")
        self.private_key = derive_rsa_key(seed, self.label, key_type.rsa_bits)
        self._serials: dict[int, str] = {}
        ski = x509.SubjectKeyIdentifier.from_public_key(self.private_key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.private_key.public_key())
            .serial_number(self._serial((*self.label, "self")))
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(self.private_key, hashes.SHA256())
        )
        self.issued = Issued(certificate, self.private_key)
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    # -- issuing ---------------------------------------------------------------------------

    def issue_server(self, names: Sequence[str], validity: Validity, *, generation: int = 1,
                     key_type: KeyType = KeyType.RSA_2048) -> Issued:
        """The listener's certificate: SAN = the domain names, serverAuth, RSA (CLB refuses EC)."""
        if not names:
            raise PkiError("the server certificate needs at least one domain name")
        if not key_type.is_rsa:
            raise PkiError(f"server key type {key_type.value!r}: CLB accepts RSA server certificates only")
        if validity.days > MAX_SERVER_DAYS:
            raise PkiError(f"server certificate lifetime {validity.days} days exceeds {MAX_SERVER_DAYS}")
        what = f"server certificate for {names[0]}"
        key = derive_rsa_key(self.seed, ("server", generation), key_type.rsa_bits)
        builder = self._leaf(what, self.subject.to_name(names[0]), key.public_key(), validity,
                             ("server", generation, *names))
        builder = (
            builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
        )
        issued = Issued(builder.sign(self.private_key, hashes.SHA256()), key)
        self._self_check(issued, server_name=names[0])
        return issued

    def issue_client(self, spec: ClientSpec) -> Issued:
        """A client certificate: clientAuth only. From a CSR the client keeps its key."""
        if spec.csr_pem is not None:
            public_key = _public_key_from_csr(spec.name, spec.csr_pem)
            key = None
        else:
            key = derive_key(self.seed, ("client", spec.name, spec.generation), spec.key_type)
            public_key = key.public_key()
        san: x509.GeneralName = (
            x509.RFC822Name(spec.email) if spec.email else x509.UniformResourceIdentifier(
                _CLIENT_URI_PREFIX + spec.name)
        )
        builder = self._leaf(
            f"client {spec.name!r}", self.subject.to_name(spec.name), public_key, spec.validity,
            _client_label(spec),
        )
        builder = (
            builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_key_usage(digital_signature=True), critical=True)
        )
        issued = Issued(builder.sign(self.private_key, hashes.SHA256()), key)
        self._self_check(issued)
        return issued

    def client_serial(self, spec: ClientSpec) -> int:
        """The serial `issue_client(spec)` gives, without deriving the key (for CRLs)."""
        return derive_serial(self.seed, self._serial_label(_client_label(spec), spec.validity))

    def crl(self, entries: Sequence[tuple[int, Revocation]], this_update: dt.datetime,
            next_update: dt.datetime) -> x509.CertificateRevocationList:
        """A CRL from this CA; its number counts the revocations it lists, so it only grows."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(len(self.revoked) + len(entries)), critical=False)
            .add_extension(self._aki, critical=False)
        )
        for serial, revocation in entries:
            when = revocation.date or self.validity.issued
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(dt.datetime(when.year, when.month, when.day, tzinfo=dt.UTC))
            )
            if revocation.reason != "unspecified":
                entry = entry.add_extension(x509.CRLReason(REVOCATION_REASONS[revocation.reason]), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self.private_key, hashes.SHA256())

    # -- internals -------------------------------------------------------------------------

    def _serial(self, label: Label) -> int:
        serial = derive_serial(self.seed, label)
        owner = "/".join(map(str, label))
        if self._serials.setdefault(serial, owner) != owner:  # pragma: no cover - 2^-63 odds
            raise PkiError(f"serial collision between {self._serials[serial]} and {owner}")
        return serial

    def _leaf(self, what: str, subject: x509.Name, public_key: PublicKey, validity: Validity,
              serial_label: Label) -> x509.CertificateBuilder:
        if validity.not_before < self.validity.not_before or validity.not_after > self.validity.not_after:
            raise PkiError(
                f"{what}: lifetime {validity.not_before.date()} .. {validity.not_after.date()} "
                f"({validity.days} days) is not within its CA's "
                f"{self.validity.not_before.date()} .. {self.validity.not_after.date()}; "
                "shorten it or lengthen the CA's"
            )
        serial = self._serial(self._serial_label(serial_label, validity))
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
        )

    def _serial_label(self, what: Label, validity: Validity) -> Label:
        """Unique per CA epoch and per issuance: a re-issue with a new lifetime gets a new serial."""
        return (*self.label, *what, validity.issued.isoformat(), validity.days)

    def _self_check(self, issued: Issued, *, server_name: str | None = None) -> None:
        """Verify the leaf as a relying party would, at its start time, before handing it out."""
        policy = (
            verification.PolicyBuilder()
            .store(verification.Store([self.certificate]))
            .time(issued.certificate.not_valid_before_utc)
        )
        try:
            if server_name is not None:
                policy.build_server_verifier(x509.DNSName(server_name)).verify(issued.certificate, [])
            else:
                policy.build_client_verifier().verify(issued.certificate, [])
        except verification.VerificationError as exc:  # pragma: no cover - a bug, not bad input
            raise AssertionError(f"issued certificate failed its self-check: {exc}") from exc
        if issued.private_key is not None and issued.private_key.public_key() != issued.certificate.public_key():
            raise AssertionError("issued certificate does not match its key")  # pragma: no cover


def _client_label(spec: ClientSpec) -> Label:
    return ("client", spec.name, spec.generation, spec.csr_pem or "")


def _public_key_from_csr(name: str, csr_pem: str) -> PublicKey:
    """Accept a client's CSR only when its signature holds and its key is one CLB clients use."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise PkiError(f"client {name!r}: csr is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise PkiError(f"client {name!r}: csr signature does not verify (altered or not signed by its key)")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
        return key
    raise PkiError(f"client {name!r}: csr key must be RSA of 2048+ bits or EC P-256/P-384")
