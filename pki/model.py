"""Plain values that describe what to issue; no key material here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.derive import KeyType

# RFC 5280 reason codes an operator may give, by their usual camelCase names.
REVOCATION_REASONS: Final = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


def start_of_day(day: dt.date) -> dt.datetime:
    """Certificates begin at 00:00 UTC of a configured day: never the clock."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Subject:
    """Distinguished-name fields, as in the tutorial's `policy_any` (C, ST, O, OU match; CN given)."""

    common_name: str
    country: str | None = None
    state: str | None = None
    locality: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None

    def to_name(self, common_name: str | None = None) -> x509.Name:
        fields = [
            (NameOID.COUNTRY_NAME, self.country),
            (NameOID.STATE_OR_PROVINCE_NAME, self.state),
            (NameOID.LOCALITY_NAME, self.locality),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.COMMON_NAME, common_name or self.common_name),
        ]
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in fields if value])


@dataclass(frozen=True)
class Validity:
    """A lifetime that starts on a configured day."""

    issued: dt.date
    days: int

    @property
    def not_before(self) -> dt.datetime:
        return start_of_day(self.issued)

    @property
    def not_after(self) -> dt.datetime:
        return self.not_before + dt.timedelta(days=self.days)


@dataclass(frozen=True)
class ClientSpec:
    """One client: its certificate is re-issued when `generation` or `validity` changes."""

    name: str
    validity: Validity
    email: str | None = None
    key_type: KeyType = KeyType.RSA_2048
    generation: int = 1
    csr_pem: str | None = None  # the client keeps its own key and sends a CSR


@dataclass(frozen=True)
class Revocation:
    """One entry of the revocation history, in the order revoked.

    `client` carries the revoked client's certificate details when it has left `clients` (the CRLs
    still list its serials); while the client stays in `clients`, that entry is used instead.
    `date` defaults to the revoked certificate's first day (or the CA's, if later): the one date
    known without a clock at which the certificate existed."""

    name: str
    reason: str = "unspecified"
    date: dt.date | None = None
    client: ClientSpec | None = None
