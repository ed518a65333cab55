"""Revocation that CLB honours, and that no configuration edit undoes.

Epoch k is the CA derived from the first k revoked names (in the order revoked), chained onto the
CA's definition and generation (pki.authority.history_chain). The current epoch issues only
clients never revoked; clients holding an older epoch's certificate stop passing CLB's handshake
once the listener trusts the new CA. For verifiers that do check CRLs, each earlier epoch also
publishes a CRL listing the serials it had issued to clients revoked since.

Every CA this stack trusted before and trusts no more, and that one edit could bring back, is
re-derivable from the seed and the config (retired_labels). Their fingerprints are published
(`retired_ca_fingerprints`) so tooling refuses a plan whose CA is one of them: un-revoking (deleting
any revoked entry) and lowering `caGeneration` re-derive exactly such CAs. Reordering the history
gives a CA never seen, which issues only clients never revoked.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from cryptography import x509

from pki.authority import CertificateAuthority, ca_label
from pki.errors import PkiError
from pki.keypool import rsa_request, server_key_requests
from pki.model import ClientSpec, KeyType, PkiSpec, Revocation, Subject, Validity, start_of_day
from pki.seed import Seed


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


def retired_labels(generation: int, names: tuple[str, ...]) -> list[tuple[int, tuple[str, ...]]]:
    """(generation, revoked names) of every CA that a single edit could bring back and that may
    have issued a certificate now revoked:

    - every earlier epoch of this generation, and every epoch of the earlier ones (dropping the
      last revocation, lowering caGeneration);
    - for each revoked name, the epochs of the history without it (un-revoking any entry: the CA
      of that history may have issued the name's certificate, if the entries were ever reordered).

    So un-revoking by deleting an entry is always refused; with a caGeneration bump in the same
    change it gives a CA never seen (every client then gets new bundles)."""
    n = len(names)
    labels = {(g, names[:k]) for g in range(1, generation) for k in range(n + 1)}
    labels |= {(generation, names[:k]) for k in range(n)}
    for j in range(n):
        dropped = names[:j] + names[j + 1:]
        labels |= {(generation, dropped[:k]) for k in range(j + 1, n)}
    labels.discard((generation, names))
    return sorted(labels, key=lambda label: (label[0], len(label[1]), label[1]))


def retired_fingerprints(seed: Seed, subject: Subject, validity: Validity, *, generation: int,
                         key_type: KeyType, revocations: Sequence[Revocation]) -> tuple[str, ...]:
    """SHA-256 fingerprints of the CAs trusted before and no more (see retired_labels)."""
    names = tuple(r.name for r in revocations)
    return tuple(certificate_authority(seed, subject, validity, g, revoked, key_type).issued.fingerprint
                 for g, revoked in retired_labels(generation, names))


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


def ca_key_request(seed: Seed, spec: PkiSpec, generation: int | None = None,
                   revoked: tuple[str, ...] | None = None) -> tuple[bytes, int]:
    """A CA epoch's key as a pki.keypool request: the current one's unless told another history."""
    generation = spec.ca_generation if generation is None else generation
    revoked = spec.revoked_names if revoked is None else revoked
    return rsa_request(seed, ca_label(spec.subject, spec.ca_validity, spec.ca_key_type, generation, revoked),
                       spec.ca_key_type.rsa_bits)


def rsa_requests(seed: Seed, spec: PkiSpec) -> list[tuple[bytes, int]]:
    """The RSA keys this spec derives before it issues clients (CA epochs, retired CAs, server),
    as pki.keypool requests: independent of each other, so they can be derived on both cores.
    Client keys are derived where their certificates are issued (pki.issuing)."""
    names = spec.revoked_names
    requests = []
    if spec.ca_key_type.is_rsa:
        labels = [(spec.ca_generation, names[:k]) for k in range(len(names) + 1)]
        labels += retired_labels(spec.ca_generation, names)
        requests += [ca_key_request(seed, spec, g, r) for g, r in labels]
    return requests + server_key_requests(seed, spec)
