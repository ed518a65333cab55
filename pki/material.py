"""Everything the stack needs from the pki, built in one call from a plain description."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import issuing, keypool, sharedqueue
from pki.authority import CertificateAuthority, ca_label
from pki.derive import KeyType, Seed, rsa_request
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import ClientSpec, Revocation, Subject, Validity
from pki.operator_cert import load_operator_certificate
from pki.revocation import ca_epochs, retired_fingerprints, retired_labels, revocation_crls


@dataclass(frozen=True)
class OperatorCertificate:
    """A purchased server certificate, as PEM text (key unencrypted or with its passphrase)."""

    chain_pem: str
    key_pem: str
    passphrase: str | None = None


@dataclass(frozen=True)
class ServerSpec:
    names: tuple[str, ...]
    validity: Validity
    generation: int = 1
    key_type: KeyType = KeyType.RSA_2048
    operator: OperatorCertificate | None = None


@dataclass(frozen=True)
class PkiSpec:
    subject: Subject
    ca_validity: Validity
    server: ServerSpec
    clients: tuple[ClientSpec, ...] = ()
    revocations: tuple[Revocation, ...] = ()
    ca_generation: int = 1
    ca_key_type: KeyType = KeyType.RSA_2048

    @property
    def revoked_names(self) -> tuple[str, ...]:
        """The revocation history, in order."""
        return tuple(r.name for r in self.revocations)

    @property
    def active_clients(self) -> list[ClientSpec]:
        """The clients the current CA serves (never the revoked)."""
        revoked = set(self.revoked_names)
        return [c for c in self.clients if c.name not in revoked]


@dataclass(frozen=True, eq=False)
class PkiMaterial:
    ca: CertificateAuthority
    server: Issued
    server_generated: bool
    clients: dict[str, Issued]  # the clients the current CA serves (never the revoked)
    revoked: tuple[str, ...]
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    # SHA-256 (hex) of every CA certificate this stack trusted before and trusts no more
    retired_ca_fingerprints: tuple[str, ...] = ()

    @cached_property
    def crl_pem(self) -> str:
        """All epochs' CRLs in one PEM file, current CA first."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.crls)


def rsa_requests(seed: Seed, spec: PkiSpec) -> list[tuple[bytes, int]]:
    """The RSA keys this spec derives before it issues clients (CA epochs, retired CAs, server),
    as pki.keypool requests: independent of each other, so they can be derived on both cores.
    Client keys are derived where their certificates are issued (pki.issuing)."""
    names = spec.revoked_names
    requests = []
    if spec.ca_key_type.is_rsa:
        labels = [(spec.ca_generation, names[:k]) for k in range(len(names) + 1)]
        labels += retired_labels(spec.ca_generation, names)
        requests += [rsa_request(seed, ca_label(spec.subject, spec.ca_validity, spec.ca_key_type, g, r),
                                 spec.ca_key_type.rsa_bits) for g, r in labels]
    server = spec.server
    if server.operator is None and server.key_type.is_rsa:
        requests.append(rsa_request(seed, ("server", server.generation), server.key_type.rsa_bits))
    return requests


def _ca_definition(spec: PkiSpec) -> issuing.CaDefinition:
    """The current CA epoch's."""
    return issuing.CaDefinition(spec.subject, spec.ca_validity, spec.ca_generation, spec.revoked_names,
                                spec.ca_key_type)


def start_deriving(seed: Seed, spec: PkiSpec) -> bool:
    """Begin deriving the spec's CA and server keys and issuing its clients on a second core, and
    return at once (whether a helper took work), for a caller with other start-up work to do first;
    `build_material` finishes the job (`stop_deriving` drops it)."""
    keypool.start(rsa_requests(seed, spec))
    issuing.start(seed, _ca_definition(spec), spec.active_clients)
    sharedqueue.release_spare()  # a helper started ahead of need that neither took
    return keypool.started() or issuing.started()


def stop_deriving() -> None:
    keypool.cancel()
    issuing.cancel()


def build_material(seed: Seed, spec: PkiSpec, *, today: dt.date) -> PkiMaterial:
    """Derive the CA epoch, the server certificate, every active client and the CRLs.

    `today` is used only to check a brought certificate is not expired; nothing derived depends on it.
    """
    duplicates = sorted(n for n, count in Counter(c.name for c in spec.clients).items() if count > 1)
    if duplicates:
        raise PkiError(f"duplicate client name(s): {', '.join(duplicates)}; each client needs its own name")
    by_name = {c.name: c for c in spec.clients}
    active = spec.active_clients
    # No head start (e.g. under `pulumi up`): a helper still pays off for many clients. Started
    # first, so its start-up (~0.3 s) overlaps the CA and server keys being derived here.
    issuing.start(seed, _ca_definition(spec), active, minimum=issuing.MIN_PARALLEL_LATE)
    try:
        keypool.prefetch(rsa_requests(seed, spec))
        epochs = ca_epochs(seed, spec.subject, spec.ca_validity, generation=spec.ca_generation,
                           key_type=spec.ca_key_type, revocations=spec.revocations)
        crls = revocation_crls(epochs, spec.revocations, by_name)
        retired = retired_fingerprints(seed, spec.subject, spec.ca_validity, generation=spec.ca_generation,
                                       key_type=spec.ca_key_type, revocations=spec.revocations)
        ca = epochs[-1]
        if spec.server.operator is None:
            server = ca.issue_server(list(spec.server.names), spec.server.validity,
                                     generation=spec.server.generation, key_type=spec.server.key_type)
        else:
            op = spec.server.operator
            server = load_operator_certificate(op.chain_pem, op.key_pem, passphrase=op.passphrase,
                                               domains=list(spec.server.names), today=today)
        clients = issuing.issue_clients(ca, active)
    except BaseException:
        issuing.cancel()  # a helper started above for clients never issued
        raise
    return PkiMaterial(ca, server, spec.server.operator is None, clients, spec.revoked_names, crls, retired)
