"""Revocation that CLB honours: every revocation moves the CA to a new epoch.

Epoch k is the CA derived from the first k revoked names (in the order they were revoked). The
current epoch issues only clients never revoked; clients holding an older epoch's certificate stop
passing CLB's handshake once the listener trusts the new CA. For verifiers that do check CRLs, each
earlier epoch also publishes a CRL listing the serials it had issued to clients revoked since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from cryptography import x509

from pki.authority import CertificateAuthority
from pki.derive import KeyType, Seed
from pki.errors import PkiError
from pki.model import ClientSpec, Revocation, Subject, Validity, start_of_day


def ca_epochs(seed: Seed, subject: Subject, validity: Validity, *, generation: int,
              key_type: KeyType, revocations: Sequence[Revocation]) -> list[CertificateAuthority]:
    """Every CA epoch of this generation, oldest first; the last one is the CA in use."""
    names = [r.name for r in revocations]
    return [
        CertificateAuthority(seed, subject, validity, generation=generation, revoked=names[:k],
                             key_type=key_type)
        for k in range(len(names) + 1)
    ]


def revocation_crls(epochs: Sequence[CertificateAuthority], revocations: Sequence[Revocation],
                    clients: Mapping[str, ClientSpec], *, days: int) -> list[x509.CertificateRevocationList]:
    """One CRL per epoch, the current CA's (empty) first, then older epochs newest first."""
    for revocation in revocations:
        if revocation.name not in clients:
            raise PkiError(f"revoked client {revocation.name!r} is not a configured client")
    days_of = [r.date or epochs[0].validity.issued for r in revocations]
    this_update = start_of_day(max([epochs[0].validity.issued, *days_of]))
    next_update = this_update + dt.timedelta(days=days)
    crls = []
    for k in reversed(range(len(epochs))):
        entries = [(epochs[k].client_serial(clients[r.name]), r) for r in revocations[k:]]
        crls.append(epochs[k].crl(entries, this_update, next_update))
    return crls
