"""Plain values that describe what to issue; no key material here.

Only the standard library: a stack's config becomes a `PkiSpec` before cryptography is loaded
(pki.headstart); x509 names are built on first use.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pki.errors import PkiError

if TYPE_CHECKING:
    from cryptography import x509

# RFC 5280 reason codes an operator may give, by their usual camelCase names (cryptography's
# x509.ReasonFlags values).
REVOCATION_REASONS: Final = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
                             "cessationOfOperation", "privilegeWithdrawn")


class KeyType(enum.Enum):
    """Key algorithms the pki issues. CLB takes RSA for its own certificates; clients may use EC."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"

    @classmethod
    def parse(cls, text: str, *, setting: str) -> KeyType:
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(k.value for k in cls)
            raise PkiError(f"{setting}: unknown key type {text!r}; allowed: {allowed}") from None

    @classmethod
    def rsa(cls, bits: int, *, setting: str) -> KeyType:
        return cls.parse(f"rsa-{bits}", setting=setting)

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")

    @property
    def rsa_bits(self) -> int:
        return int(self.value.removeprefix("rsa-"))


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
        from cryptography import x509
        from cryptography.x509.oid import NameOID

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

    def __post_init__(self) -> None:
        if self.reason not in REVOCATION_REASONS:  # e.g. certificateHold: a CRL here is never re-signed
            raise PkiError(f"revocation of {self.name!r}: reason {self.reason!r} is not one of "
                           f"{', '.join(REVOCATION_REASONS)}")


@dataclass(frozen=True)
class OperatorCertificate:
    """A purchased server certificate, as PEM text (key unencrypted or with its passphrase)."""

    chain_pem: str
    key_pem: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)


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
