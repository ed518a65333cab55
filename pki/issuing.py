"""Client certificates issued on two cores when a plan has enough of them: the helper's answers
taken and checked, the rest issued here.

A helper process (`python -m pki.worker`, started by pki.headstart) builds the same CA and issues
from the front of a shared queue while this process issues from the back (pki.sharedqueue), keys
and certificates together, so no phase of a plan runs on one core only. Started early (the offline
tools start it before they load cryptography and Pulumi), it has usually issued most of them
before the program asks. Its certificates are used only when its CA certificate's fingerprint is
the one of the CA this process built (from the same definition; its key may be the helper's,
pki.headstart.offer_ca_key), and each with a key of the kind asked for that matches it, so plans
stay byte-identical whoever issued what.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki import headstart, keypool
from pki.authority import CertificateAuthority
from pki.derive import PrivateKey
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import ClientSpec, KeyType
from pki.revocation import certificate_authority


def authority(context: str) -> CertificateAuthority:
    """The CA a helper issues with, from its job (pki.headstart.encode_context)."""
    seed, ca, _ = headstart.decode_context(context)
    return certificate_authority(seed, ca.subject, ca.validity, ca.generation, ca.revoked, ca.key_type)


# A P-256 private key as cryptography writes it in PKCS#8: this header, the 32-byte scalar, then
# [1] { BIT STRING { no unused bits, the uncompressed public point 04 X Y } }
_P256_PKCS8_HEAD: Final = bytes.fromhex("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420")
_P256_PKCS8_POINT: Final = bytes.fromhex("a14403420004")
_P256_PKCS8_SIZE: Final = len(_P256_PKCS8_HEAD) + 32 + len(_P256_PKCS8_POINT) + 64


# A P-256 public key in a certificate: SubjectPublicKeyInfo { { ecPublicKey, prime256v1 }, BIT
# STRING { no unused bits, 04 X Y } }. In the DER of a certificate the first such header is its
# key's: only the serial (at most 20 bytes), names, dates and fixed algorithm IDs come before it.
_P256_SPKI_HEAD: Final = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def _p256_public_point(cert_der: bytes) -> bytes | None:
    at = cert_der.find(_P256_SPKI_HEAD)
    return None if at < 0 else cert_der[at + len(_P256_SPKI_HEAD):at + len(_P256_SPKI_HEAD) + 65]


def _matching_key(key_der: bytes, certificate: x509.Certificate, client: ClientSpec) -> PrivateKey | None:
    """The helper's key for this client, if it is of the kind asked for and the certificate's."""
    try:
        key = keypool.load_key(key_der)
        if isinstance(key, rsa.RSAPrivateKey):
            wanted = client.key_type.is_rsa and key.key_size == client.key_type.rsa_bits
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            wanted = client.key_type is KeyType.EC_P256 and key.curve.name == "secp256r1"
        else:
            return None
        return key if wanted and key.public_key() == certificate.public_key() else None
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a certificate key cryptography cannot read
        return None


def _deferred_ec_key(key_der: bytes, cert_der: bytes, certificate: x509.Certificate,
                     client: ClientSpec) -> Issued | None:
    """An EC client whose key, as the helper wrote it, carries its certificate's public point, with
    the key itself loaded (and checked) on first use: a plan uses no client key, and loading and
    comparing one costs ~50 us, a third of a plan's own work per client; this check ~1 us. None
    when the key is not a P-256 PKCS#8 as cryptography writes it: then it is checked at once."""
    if (len(key_der) != _P256_PKCS8_SIZE or not key_der.startswith(_P256_PKCS8_HEAD)
            or key_der[-70:-64] != _P256_PKCS8_POINT or key_der[-65:] != _p256_public_point(cert_der)):
        return None

    def load() -> PrivateKey:
        key = _matching_key(key_der, certificate, client)
        if key is None:
            raise PkiError(f"the issuing helper's key for {certificate.subject.rfc4514_string()} does not match its "
                           "certificate; plan again with SLB_MTLS_PKI_WORKERS=1 and report this")
        return key

    return Issued(certificate, load, certificate_der=cert_der)


def _issued(answer: tuple[bytes, bytes | None], client: ClientSpec) -> Issued | None:
    """A certificate and key as the helper made them, or None if they are not what was asked."""
    cert_der, key_der = answer
    try:
        certificate = x509.load_der_x509_certificate(cert_der)
    except (ValueError, TypeError):  # not DER
        return None
    if client.csr_pem is not None or key_der is None:
        from_csr = client.csr_pem is not None and key_der is None
        return Issued(certificate, None, certificate_der=cert_der) if from_csr else None
    if client.key_type is KeyType.EC_P256 and (deferred := _deferred_ec_key(key_der, cert_der, certificate, client)):
        return deferred
    key = _matching_key(key_der, certificate, client)
    return None if key is None else Issued(certificate, key, certificate_der=cert_der)


def issue_clients(ca: CertificateAuthority, clients: list[ClientSpec]) -> dict[str, Issued]:
    """Every client's certificate from this CA, in order: the helper's where it issued them for
    this very CA, this process's for the rest."""
    state = headstart.take()
    mine: dict[ClientSpec, Issued] = {}
    if state is not None:
        queue = state.queue
        try:
            queue.add(clients)
            queue.retain(clients)  # not a client a head start queued that is not among these
            while (client := queue.take()) is not None:  # nobody started these: from the back
                mine[client] = ca.issue_client(client)
            # The helper has the rest, front first. Take its answers from the front as they come
            # and issue from the back here meanwhile: the two meet in the middle, and nothing
            # waits for the helper's last batch.
            left = deque(c for c in clients if c not in mine)
            trusted = True
            fingerprint = ca.issued.fingerprint
            while left:
                issued = None
                # the answer first: the helper's CA fingerprint is known before any answer is
                answer = state.from_helper.get(left[0]) if trusted else None
                if trusted and state.ca_fingerprint not in (None, fingerprint):
                    trusted = False  # another CA (the config changed since the head start)
                elif answer is not None:
                    issued = _issued(answer, left[0])
                    trusted = issued is not None  # a wrong answer: the helper is not trusted with the rest
                if not trusted:
                    queue.close(kill=True)  # nothing it makes will be used: stop it now (once)
                if issued is not None:
                    mine[left.popleft()] = issued
                else:
                    client = left.pop()
                    mine[client] = ca.issue_client(client)
        finally:
            queue.close(kill=True)  # done with it (its answers past the middle are not needed)
    return {c.name: mine.get(c) or ca.issue_client(c) for c in clients}
