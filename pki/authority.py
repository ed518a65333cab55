"""The private CA: a self-signed RSA root that issues the server certificate, client certificates
and CRLs, every byte derived from the seed.

A CA's identity (key, name, epoch) is derived from everything its certificate holds (subject,
validity, key type: the "definition"), its generation and the revocation history so far, chained
name by name. CLB never checks CRLs, so the only revocation it honours is a CA it no longer trusts:
each revocation therefore yields a new CA (a new "epoch") that issues only the remaining clients,
and any edit of what the CA certificate holds yields a CA with a new name and key.

Serials are derived from the whole to-be-signed content except the serial itself, so an (issuer,
serial) pair names one certificate whatever the configuration (RFC 5280 4.1.2.2).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.derive import PublicKey, derive_key, derive_rsa_key, derive_serial
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import ClientSpec, KeyType, Revocation, Subject, Validity, start_of_day
from pki.seed import Label, Seed, server_key_label

_Verifier = verification.ClientVerifier | verification.ServerVerifier
MAX_SERVER_DAYS = 825  # the longest TLS server lifetime any mainstream client still accepts
CLIENT_URI_FORMAT = "https://slb-mtls.invalid/client/{name}"
_CRL_NUMBER_HASH_BITS = 128  # below the day number: 20 + 128 bits fit RFC 5280's 20 octets


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


@dataclass(frozen=True)
class _Parts:
    """What a certificate will hold, minus its serial and the key-derived SKI: the serial's input."""

    subject: x509.Name
    key_identity: bytes  # the key's derivation label, or its SPKI when the key is not ours
    validity: Validity
    extensions: tuple[tuple[x509.ExtensionType, bool], ...]


def _digest(*parts: bytes) -> bytes:
    """SHA-256 over length-prefixed parts, so no two part lists share an encoding."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.digest()


def _label_bytes(label: Label) -> bytes:
    return repr(tuple(label)).encode()


def ca_definition(subject: Subject, validity: Validity, key_type: KeyType) -> bytes:
    """Everything of the CA certificate the config decides, except generation and revocations."""
    return _digest(subject.to_name().public_bytes(), subject.common_name.encode(),
                   validity.issued.isoformat().encode(), str(validity.days).encode(), key_type.value.encode())


def history_chain(definition: bytes, generation: int, revoked: Sequence[str]) -> bytes:
    """h0 = H(definition, generation); h(k) = H(h(k-1), k-th revoked name). Any edit of the
    definition, the generation or the revocation prefix gives another CA; epoch k's value is a
    prefix of every later epoch's history, so the earlier CAs can be re-derived (and retired)."""
    chain = _digest(b"ca-history", definition, str(generation).encode())
    for name in revoked:
        chain = _digest(chain, name.encode())
    return chain


def ca_label(subject: Subject, validity: Validity, key_type: KeyType, generation: int,
             revoked: Sequence[str]) -> Label:
    """The derivation label of a CA's key: its history chain (so keys can be prefetched)."""
    return ("ca", generation, history_chain(ca_definition(subject, validity, key_type), generation, revoked).hex())


class CertificateAuthority:
    """One CA epoch: (definition, generation, revoked names so far) -> one key, one certificate."""

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
        self.key_type = key_type
        self.label: Label = ca_label(subject, validity, key_type, generation, self.revoked)
        chain = str(self.label[2])
        # The epoch names the CA in its subject, in CLB's certificate name and in the outputs:
        # readable counters plus a short digest, so any change of the CA certificate changes it.
        self.epoch = f"g{generation}.r{len(self.revoked)}.{chain[:6]}"
        self.subject = subject
        self.name = subject.to_name(f"{subject.common_name} {self.epoch}")
        self._name_der = self.name.public_bytes()
        self._verifiers: dict[tuple[dt.datetime, str | None], _Verifier] = {}
        self.private_key = derive_rsa_key(seed, self.label, key_type.rsa_bits)
        public_key = self.private_key.public_key()
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        self._key_id = ski.digest
        self._serials: dict[int, bytes] = {}
        extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(cert_sign=True), True),
        )
        parts = _Parts(self.name, _label_bytes(self.label), validity, extensions)
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(self._serial(parts))
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
        )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        certificate = builder.add_extension(ski, critical=False).sign(self.private_key, hashes.SHA256())
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
        label = server_key_label(generation)
        parts = _Parts(
            self.subject.to_name(names[0]), _label_bytes((*label, key_type.value)), validity,
            (
                (x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                (_key_usage(digital_signature=True, key_encipherment=True), True),
            ),
        )
        key = derive_rsa_key(self.seed, label, key_type.rsa_bits)
        issued = Issued(self._sign(f"server certificate for {names[0]}", parts, key.public_key()), key)
        self._self_check(issued, server_name=names[0])
        return issued

    def issue_client(self, spec: ClientSpec) -> Issued:
        """A client certificate: clientAuth only. From a CSR the client keeps its key."""
        key = None
        if spec.csr_pem is not None:
            public_key = _public_key_from_csr(spec.name, spec.csr_pem)
        else:
            key = derive_key(self.seed, _client_key_label(spec), spec.key_type)
            public_key = key.public_key()
        issued = Issued(self._sign(f"client {spec.name!r}", self._client_parts(spec), public_key), key)
        self._self_check(issued)
        return issued

    def client_serial(self, spec: ClientSpec) -> int:
        """The serial `issue_client(spec)` gives, without deriving the key (for CRLs)."""
        return self._serial(self._client_parts(spec))

    def crl(self, entries: Sequence[tuple[int, Revocation, dt.date]],
            this_update: dt.datetime) -> x509.CertificateRevocationList:
        """A CRL from this CA, valid until the CA itself ends (CLB never fetches CRLs, and nothing
        here runs on a schedule to re-sign one). Its number starts with thisUpdate's day, so later
        CRLs get larger numbers, and ends with a digest of the content, so different content never
        shares a number."""
        if this_update >= self.validity.not_after:
            raise PkiError(f"CRL of CA {self.epoch}: thisUpdate {this_update.date()} is not before the "
                           f"CA's end {self.validity.not_after.date()}")
        content = [self.name.public_bytes(), self._key_id, this_update.isoformat().encode(),
                   self.validity.not_after.isoformat().encode()]
        revoked = []
        for serial, revocation, when in sorted(entries, key=lambda e: e[0]):
            content += [str(serial).encode(), when.isoformat().encode(), revocation.reason.encode()]
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(start_of_day(when))
            )
            if revocation.reason != "unspecified":
                entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(revocation.reason)), critical=False)
            revoked.append(entry.build())
        digest = int.from_bytes(_digest(b"crl", *content)[: _CRL_NUMBER_HASH_BITS // 8], "big")
        number = (this_update.date().toordinal() << _CRL_NUMBER_HASH_BITS) | digest
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(this_update)
            .next_update(self.validity.not_after)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._aki, critical=False)
        )
        for revoked_certificate in revoked:
            builder = builder.add_revoked_certificate(revoked_certificate)
        return builder.sign(self.private_key, hashes.SHA256())

    # -- internals -------------------------------------------------------------------------

    def _client_parts(self, spec: ClientSpec) -> _Parts:
        # Strict verifiers (cryptography's) want a SAN in every end-entity certificate. Without an
        # e-mail, the client's name goes in a URI that pkilint accepts: it checks URIs as URLs, so
        # URNs and SPIFFE IDs fail; the reserved .invalid TLD (RFC 6761) never resolves, so
        # nobody takes it for a location.
        san: x509.GeneralName = (x509.RFC822Name(spec.email) if spec.email
                                 else x509.UniformResourceIdentifier(CLIENT_URI_FORMAT.format(name=spec.name)))
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.SubjectAlternativeName([san]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (_key_usage(digital_signature=True), True),
        ]
        if spec.csr_pem is not None:
            key_identity = _public_key_from_csr(spec.name, spec.csr_pem).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            key_identity = _label_bytes((*_client_key_label(spec), spec.key_type.value))
        return _Parts(self.subject.to_name(spec.name), key_identity, spec.validity, tuple(extensions))

    def _serial(self, parts: _Parts) -> int:
        """Derived from everything the certificate holds but the serial: the issuer's name and key,
        subject, key, validity and extensions. Equal serials from one issuer mean equal content."""
        content = _digest(
            self._name_der, self._key_id, parts.subject.public_bytes(), parts.key_identity,
            parts.validity.not_before.isoformat().encode(), parts.validity.not_after.isoformat().encode(),
            *(_extension_bytes(ext, critical) for ext, critical in parts.extensions),
        )
        serial = derive_serial(self.seed, ("tbs", content.hex()))
        if self._serials.setdefault(serial, content) != content:  # pragma: no cover - 2^-63 odds
            raise PkiError(f"serial collision under CA {self.epoch}")
        return serial

    def _sign(self, what: str, parts: _Parts, public_key: PublicKey) -> x509.Certificate:
        validity = parts.validity
        if validity.not_before < self.validity.not_before or validity.not_after > self.validity.not_after:
            raise PkiError(
                f"{what}: lifetime {validity.not_before.date()} .. {validity.not_after.date()} "
                f"({validity.days} days) is not within its CA's "
                f"{self.validity.not_before.date()} .. {self.validity.not_after.date()}; "
                "shorten it or lengthen the CA's"
            )
        builder = (
            x509.CertificateBuilder()
            .subject_name(parts.subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(self._serial(parts))
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
        )
        for ext, critical in parts.extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(self.private_key, hashes.SHA256())

    def _self_check(self, issued: Issued, *, server_name: str | None = None) -> None:
        """Verify the leaf as a relying party would, at its start time, before handing it out.
        Verifiers are kept per (time, name): clients mostly share their first day."""
        at = issued.certificate.not_valid_before_utc
        verifier = self._verifiers.get((at, server_name))
        if verifier is None:
            policy = verification.PolicyBuilder().store(verification.Store([self.certificate])).time(at)
            verifier = self._verifiers[(at, server_name)] = (
                policy.build_client_verifier() if server_name is None
                else policy.build_server_verifier(x509.DNSName(server_name)))
        try:
            verifier.verify(issued.certificate, [])
        except verification.VerificationError as exc:  # pragma: no cover - a bug, not bad input
            raise AssertionError(f"issued certificate failed its self-check: {exc}") from exc
        if issued.private_key is not None and issued.private_key.public_key() != issued.certificate.public_key():
            raise AssertionError("issued certificate does not match its key")  # pragma: no cover


@functools.lru_cache(maxsize=256)
def _extension_bytes(ext: x509.ExtensionType, critical: bool) -> bytes:
    """An extension as the serial's input; cached: EKU and key usage repeat for every client."""
    return ext.oid.dotted_string.encode() + bytes([critical]) + ext.public_bytes()


def _client_key_label(spec: ClientSpec) -> Label:
    return ("client", spec.name, spec.generation)


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
