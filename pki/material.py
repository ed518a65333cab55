"""Everything the stack needs from the pki, built in one call from a plain description."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import headstart, issuing, keypool
from pki.authority import CertificateAuthority
from pki.errors import PkiError
from pki.issued import Issued
from pki.model import PkiSpec
from pki.operator_cert import load_operator_certificate
from pki.revocation import ca_epochs, ca_key_request, retired_fingerprints, revocation_crls, rsa_requests
from pki.seed import Seed


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
    headstart.start(seed, headstart.ca_definition(spec), active, minimum=headstart.MIN_PARALLEL_LATE)
    try:
        if headstart.started():  # its helper may have derived this very CA's key
            headstart.offer_ca_key(ca_key_request(seed, spec))
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
        headstart.cancel()  # a helper started above for clients never issued
        raise
    return PkiMaterial(ca, server, spec.server.operator is None, clients, spec.revoked_names, crls, retired)
