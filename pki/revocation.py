"""Revocation that CLB honours, and that no configuration edit undoes.

Epoch k is the CA derived from the first k revoked names (in the order revoked), chained onto the
CA's definition and generation (pki.authority.history_chain). The current epoch issues only
clients never revoked; clients holding an older epoch's certificate stop passing CLB's handshake
once the listener trusts the new CA. For verifiers that do check CRLs, each earlier epoch also
publishes a CRL listing the serials it had issued to clients revoked since.

Every CA this stack trusted before and trusts no more is re-derivable from the seed and the config:
the earlier epochs of this generation and every epoch of the earlier generations. Their
fingerprints are published (`retired_ca_fingerprints`) so tooling can refuse a plan whose CA is one
of them: dropping the last revocation, or lowering `caGeneration`, re-derives exactly such a CA.
Any other edit of the history (dropping an earlier entry, reordering) yields a CA never seen.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from cryptography import x509

from pki.authority import CertificateAuthority
from pki.derive import KeyType, Seed
from pki.errors import PkiError
from pki.model import ClientSpec, Revocation, Subject, Validity, start_of_day


@functools.lru_cache(maxsize=512)
def certificate_authority(seed: Seed, subject: Subject, validity: Validity, generation: int,
                          revoked: tuple[str, ...], key_type: KeyType) -> CertificateAuthority:
    """CAs are pure functions of their inputs; retired epochs are re-derived on every plan, so
    a process (tests, plan-diff of two configs) derives each RSA CA key once."""
    return CertificateAuthority(seed, subject, validity, generation=generation, revoked=revoked,
                                key_type=key_type)


def ca_epochs(seed: Seed, subject: Subject, validity: Validity, *, generation: int,
              key_type: KeyType, revocations: Sequence[Revocation]) -> list[CertificateAuthority]:
    """Every CA epoch of this generation, oldest first; the last one is the CA in use."""
    names = tuple(r.name for r in revocations)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PkiError(f"revoked: {', '.join(duplicates)} listed more than once; a client is revoked once")
    return [certificate_authority(seed, subject, validity, generation, names[:k], key_type)
            for k in range(len(names) + 1)]


def retired_fingerprints(seed: Seed, subject: Subject, validity: Validity, *, generation: int,
                         key_type: KeyType, revocations: Sequence[Revocation]) -> tuple[str, ...]:
    """SHA-256 fingerprints of the CAs trusted before and no more: this generation's earlier
    epochs, and all epochs (for the same revocation history) of generations 1 .. generation-1."""
    names = tuple(r.name for r in revocations)
    out = []
    for g in range(1, generation + 1):
        last = len(names) if g < generation else len(names) - 1
        out += [certificate_authority(seed, subject, validity, g, names[:k], key_type).issued.fingerprint
                for k in range(last + 1)]
    return tuple(out)


def revoked_client_spec(index: int, revocation: Revocation, clients: Mapping[str, ClientSpec]) -> ClientSpec:
    spec = clients.get(revocation.name, revocation.client)
    if spec is None:
        raise PkiError(
            f"revoked[{index}] {revocation.name!r}: not in clients, and the entry carries no certificate "
            "details (issued, days, keyType, email, generation, csr) for the CRL; add them to the entry"
        )
    return spec


def revocation_date(index: int, revocation: Revocation, spec: ClientSpec, ca: CertificateAuthority) -> dt.date:
    """The configured date, or the revoked certificate's first day; never before the CA existed."""
    ca_start = ca.validity.issued
    when = revocation.date or max(ca_start, spec.validity.issued)
    if when < ca_start:
        raise PkiError(
            f"revoked[{index}] {revocation.name!r}: date {when} is before the CA's notBefore {ca_start} "
            "(pki.issued); a certificate cannot be revoked before its CA existed"
        )
    return when


def revocation_crls(epochs: Sequence[CertificateAuthority], revocations: Sequence[Revocation],
                    clients: Mapping[str, ClientSpec]) -> list[x509.CertificateRevocationList]:
    """One CRL per epoch, the current CA's (empty) first, then older epochs newest first; all valid
    from the latest revocation date until the CA's end."""
    specs = [revoked_client_spec(i, r, clients) for i, r in enumerate(revocations)]
    dates = [revocation_date(i, r, s, epochs[0]) for i, (r, s) in enumerate(zip(revocations, specs, strict=True))]
    this_update = start_of_day(max([epochs[0].validity.issued, *dates]))
    crls = []
    for k in reversed(range(len(epochs))):
        entries = [(epochs[k].client_serial(specs[i]), revocations[i], dates[i])
                   for i in range(k, len(revocations))]
        crls.append(epochs[k].crl(entries, this_update))
    return crls
