"""The stack's configuration, declared once: each option's type, default, allowed values and doc.

The pydantic models below are the single declaration. Validation, defaults and the README's key
table (`reference_markdown`) all come from them; CLB's limits come from `slbmtls.clb`. This module
does not know the Pulumi runtime: the program feeds it what the engine hands over, the offline tools
feed it `Pulumi.<stack>.yaml`. Every problem is reported at once, each with the full key, the value
and what is allowed, before anything is declared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from pki import (
    REVOCATION_REASONS,
    ClientSpec,
    KeyType,
    OperatorCertificate,
    PkiError,
    PkiSpec,
    Revocation,
    Seed,
    ServerSpec,
    Subject,
    Validity,
)
from slbmtls import clb
from slbmtls.clock import today as utc_today

NAMESPACE: Final = "slb-mtls"
SEED_KEY: Final = f"{NAMESPACE}:pkiSeed"
# Piped, so the seed never appears in the process list.
SEED_COMMAND: Final = "openssl rand -hex 32 | pulumi config set --secret pkiSeed"

# Alibaba Cloud region ids (public regions, finance clouds included).
REGIONS: Final = frozenset({
    "cn-qingdao", "cn-beijing", "cn-zhangjiakou", "cn-huhehaote", "cn-wulanchabu", "cn-hangzhou",
    "cn-shanghai", "cn-nanjing", "cn-fuzhou", "cn-wuhan-lr", "cn-shenzhen", "cn-heyuan",
    "cn-guangzhou", "cn-chengdu", "cn-hongkong", "ap-northeast-1", "ap-northeast-2",
    "ap-southeast-1", "ap-southeast-3", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "us-east-1", "us-west-1", "na-south-1", "eu-west-1", "eu-central-1", "me-east-1",
    "me-central-1", "cn-shanghai-finance-1", "cn-shenzhen-finance-1", "cn-beijing-finance-1",
})
CLIENT_KEY_TYPES: Final = clb.Choice(("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256"),
                                     "client keys are never uploaded to CLB; EC on CLB is unverified")
OUR_TAGS: Final = ("managed-by", "stack")  # set by the component on every load balancer
EARLIEST_DATE: Final = dt.date(2000, 1, 1)
MAX_CA_COMMON_NAME: Final = 48  # the CA's CN gains an epoch suffix and must stay within X.520's 64


class ConfigError(Exception):
    """One or more invalid settings; `str()` lists each on its own line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# -- value types: each refuses with "expected <what is allowed>" --------------------------------

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI_AND_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_BIDI_AND_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]")


def _refuse(expected: str) -> PydanticCustomError:
    return PydanticCustomError("slb_mtls", "{expected}", {"expected": expected})


@dataclass(frozen=True)
class _Rule(BeforeValidator):
    """A validator that also says, for the README's table, what it allows."""

    expected: str = ""


def _rule(rule: clb.IntRange | clb.Choice | clb.Pattern, *, lines: bool = False) -> BeforeValidator:
    """`lines`: the value is PEM text, so line breaks are allowed (other control characters are not)."""
    forbidden = _BIDI_AND_CONTROL_BUT_LINES if lines else _BIDI_AND_CONTROL

    def check(value: object) -> object:
        if isinstance(value, str) and forbidden.search(value):
            raise _refuse(rule.describe() + " (no control or bidirectional characters)")
        if not rule.allows(value):
            raise _refuse(rule.describe())
        return value
    return _Rule(check, expected=rule.describe())


def _text(pattern: str, expected: str, *, lines: bool = False) -> BeforeValidator:
    return _rule(clb.Pattern(pattern, expected, "slb-mtls"), lines=lines)


def _strict_bool(value: object) -> object:
    if not isinstance(value, bool):
        raise _refuse("true or false")
    return value


def _date(value: object) -> dt.date:
    """YYYY-MM-DD, quoted or not (YAML reads an unquoted one as a date); never a time of day."""
    if isinstance(value, dt.datetime):
        raise _refuse("a date YYYY-MM-DD without a time of day")
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise _refuse("a date YYYY-MM-DD") from None
    else:
        raise _refuse("a date YYYY-MM-DD")
    if day < EARLIEST_DATE:
        raise _refuse(f"a date YYYY-MM-DD from {EARLIEST_DATE} on")
    return day


Bool = Annotated[bool, _Rule(_strict_bool, expected="true or false")]
Date = Annotated[dt.date, _Rule(_date, expected="a date YYYY-MM-DD (UTC), not in the future")]
Port = Annotated[int, _rule(clb.PORT)]
DnsName = Annotated[str, _text(r"(?=.{1,64}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
                               "a lower-case DNS name of at most 64 characters, such as mtls.example.com "
                               "(no wildcard: clients connect to it)")]
AltName = Annotated[str, _text(r"(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+"
                               r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?",
                               "a lower-case DNS name, optionally starting with *.")]
Generation = Annotated[int, _rule(clb.IntRange(1, 10_000, "slb-mtls"))]


Days825 = Annotated[int, _rule(clb.IntRange(1, 825, "slb-mtls: the longest TLS server lifetime clients accept"))]
Days3650 = Annotated[int, _rule(clb.IntRange(1, 3650, "slb-mtls"))]
Days36500 = Annotated[int, _rule(clb.IntRange(1, 36500, "slb-mtls"))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- the settings --------------------------------------------------------------------------------


class LoadBalancerConfig(_Section):
    name: Annotated[str | None, _rule(clb.LOAD_BALANCER_NAME)] = Field(
        None, description="CLB instance name; default `<project>-<stack>`")
    address_type: Annotated[Literal["internet", "intranet"], _rule(clb.ADDRESS_TYPES)] = Field(
        "internet", alias="addressType", description="`internet` or `intranet` (needs `vswitchId`); replaces the LB")
    vswitch_id: Annotated[str | None, _text(r"vsw-[a-z0-9]{6,40}", "a vSwitch id such as vsw-bp1...")] = Field(
        None, alias="vswitchId", description="the vSwitch of an intranet load balancer")
    instance_charge_type: Annotated[str, _rule(clb.INSTANCE_CHARGE_TYPES)] = Field(
        "PayByCLCU", alias="instanceChargeType",
        description="`PayByCLCU` (pay-by-spec and shared instances are no longer sold)")
    internet_charge_type: Annotated[str, _rule(clb.INTERNET_CHARGE_TYPES)] = Field(
        "PayByTraffic", alias="internetChargeType", description="`PayByTraffic` (the only kind with PayByCLCU)")
    delete_protection: Bool = Field(False, alias="deleteProtection",
                                    description="CLB delete protection and Pulumi `protect` on the LB")
    tags: dict[Annotated[str, _rule(clb.TAG_KEY)], Annotated[str, _rule(clb.TAG_VALUE)]] = Field(
        default_factory=dict, description=f"up to {clb.MAX_TAGS - len(OUR_TAGS)} tags "
                                          f"({', '.join(OUR_TAGS)} are set by slb-mtls)")


class HealthCheckConfig(_Section):
    enabled: Bool = Field(True, description="health checks on the backends")
    uri: Annotated[str, _rule(clb.HEALTH_URI)] = Field("/", description="path the check requests")
    method: Annotated[str, _rule(clb.HEALTH_METHODS)] = Field("head", description="`head` or `get`")
    http_codes: tuple[Annotated[str, _rule(clb.HEALTH_HTTP_CODES)], ...] = Field(
        ("http_2xx",), alias="httpCodes", min_length=1, description="healthy status classes, e.g. [http_2xx]")
    interval: Annotated[int, _rule(clb.HEALTH_INTERVAL)] = Field(2, description="seconds between checks")
    timeout: Annotated[int, _rule(clb.HEALTH_TIMEOUT)] = Field(
        5, description="seconds to wait; at least `interval` (CLB replaces a shorter one)")
    healthy_threshold: Annotated[int, _rule(clb.HEALTH_THRESHOLD)] = Field(3, alias="healthyThreshold")
    unhealthy_threshold: Annotated[int, _rule(clb.HEALTH_THRESHOLD)] = Field(3, alias="unhealthyThreshold")
    connect_port: Annotated[int | None, _rule(clb.HEALTH_CONNECT_PORT)] = Field(
        None, alias="connectPort", description="default: the backend port")
    domain: Annotated[str | None, _rule(clb.HEALTH_DOMAIN)] = Field(
        None, description="Host header of the check; default: the backend's private IP")


class XForwardedForConfig(_Section):
    slb_ip: Bool = Field(False, alias="slbIp", description="add SLB-IP")
    slb_id: Bool = Field(False, alias="slbId", description="add SLB-ID")
    slb_proto: Bool = Field(True, alias="slbProto", description="add X-Forwarded-Proto")


class ListenerConfig(_Section):
    frontend_port: Port = Field(443, alias="frontendPort", description="HTTPS port; a change replaces the listener")
    backend_port: Port = Field(80, alias="backendPort", description="backend HTTP port; a change replaces it")
    bandwidth: Annotated[int, _rule(clb.BANDWIDTH)] = Field(
        clb.BANDWIDTH_PAY_BY_TRAFFIC, description="-1 (unlimited; pay-by-traffic internet LBs), else Mbit/s")
    scheduler: Annotated[str, _rule(clb.SCHEDULERS)] = Field(
        "wrr", description="weighted round robin, round robin, weighted least connections")
    tls_cipher_policy: Annotated[str, _rule(clb.Choice(
        tuple(p for p in clb.TLS_POLICIES if p not in clb.WEAK_TLS_POLICIES),
        clb.TLS_POLICY_SOURCE))] = Field(
        "tls_cipher_policy_1_2_strict", alias="tlsCipherPolicy",
        description="TLS 1.2 policies or 1.2+1.3 (1.0/1.1 policies refused)")
    http2: Bool = Field(True, description="HTTP/2 towards clients")
    idle_timeout: Annotated[int, _rule(clb.IDLE_TIMEOUT)] = Field(15, alias="idleTimeout", description="seconds")
    request_timeout: Annotated[int, _rule(clb.REQUEST_TIMEOUT)] = Field(
        60, alias="requestTimeout", description="seconds")
    gzip: Bool = Field(True, description="compress text responses")
    health_check: HealthCheckConfig = Field(HealthCheckConfig(), alias="healthCheck")
    x_forwarded_for: XForwardedForConfig = Field(XForwardedForConfig(), alias="xForwardedFor")


class BackendConfig(_Section):
    instance_id: Annotated[str, _rule(clb.BACKEND_ID)] = Field(alias="instanceId",
                                                               description="i-..., eni-..., eci-...")
    weight: Annotated[int, _rule(clb.BACKEND_WEIGHT)] = Field(100, description="0-100; 0 takes it out")
    type: Annotated[str, _rule(clb.BACKEND_TYPES)] = Field("ecs", description="`ecs`, `eni` or `eci`")


class DemoBackendsConfig(_Section):
    count: Annotated[int, _rule(clb.IntRange(0, clb.MAX_BACKENDS_PER_CALL, "slb-mtls"))] = Field(
        2, description="ECS instances serving a page that names them (0: none)")
    instance_type: Annotated[str, _text(r"ecs\.[a-z0-9-]+\.[a-z0-9]+", "an ECS instance type such as ecs.t6-c1m1.large")
                             ] = Field("ecs.t6-c1m1.large", alias="instanceType")
    image_id: Annotated[str | None, _text(r"[A-Za-z0-9_.-]{1,128}", "an image id")] = Field(
        None, alias="imageId", description="default: the newest Alibaba Cloud Linux 3, looked up once")
    weight: Annotated[int, _rule(clb.BACKEND_WEIGHT)] = Field(100)
    zone_id: Annotated[str | None, _text(r"[a-z]{2}-[a-z0-9-]+", "a zone id such as cn-hangzhou-h")] = Field(
        None, alias="zoneId", description="default: a zone with the instance type and an ESSD")


_NAME_TEXT: Final = r"[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


class SubjectConfig(_Section):
    country: Annotated[str | None, _text(r"[A-Z]{2}", "a two-letter ISO 3166 country code such as CN")] = None
    state: Annotated[str | None, _text(_NAME_TEXT + "{1,64}", "1-64 characters")] = None
    locality: Annotated[str | None, _text(_NAME_TEXT + "{1,64}", "1-64 characters")] = None
    organization: Annotated[str | None, _text(_NAME_TEXT + "{1,64}", "1-64 characters")] = None
    organizational_unit: Annotated[str | None, _text(_NAME_TEXT + "{1,64}", "1-64 characters")] = Field(
        None, alias="organizationalUnit")
    common_name: Annotated[str | None, _text(_NAME_TEXT + f"{{1,{MAX_CA_COMMON_NAME}}}",
                                             f"1-{MAX_CA_COMMON_NAME} characters")] = Field(
        None, alias="commonName", description="the CA's name; default `<organization> client CA`")


class PkiConfig(_Section):
    issued: Date = Field(description="the CA's first day (UTC), YYYY-MM-DD; required")
    ca_generation: Generation = Field(1, alias="caGeneration", description="bump for a new CA key")
    key_bits: Annotated[int, _Rule(lambda v: _choice_int(v, clb.UPLOAD_RSA_BITS), expected="2048 or 4096")] = Field(
        2048, alias="keyBits", description="RSA size of the CA and server keys: 2048 or 4096 (CLB takes no 3072)")
    ca_days: Days36500 = Field(3650, alias="caDays")
    server_days: Days825 = Field(397, alias="serverDays")
    client_days: Days3650 = Field(365, alias="clientDays", description="default client lifetime")
    renew_before_days: Annotated[int, _rule(clb.IntRange(0, 365, "slb-mtls"))] = Field(
        30, alias="renewBeforeDays", description="warn this many days before an expiry")
    crl_days: Annotated[None, _Rule(_crl_days_gone, expected="(no longer used)")] = Field(
        None, alias="crlDays", description="no longer used: CRLs are valid until the CA's last day")
    subject: SubjectConfig = SubjectConfig()
    server_generation: Generation = Field(1, alias="serverGeneration", description="bump for a new server key")
    server_issued: Date | None = Field(None, alias="serverIssued", description="default: `issued`")
    server_alt_names: tuple[AltName, ...] = Field((), alias="serverAltNames")
    retired_ca_fingerprints: tuple[Annotated[str, _text(r"[0-9a-f]{64}", "SHA-256 fingerprints, 64 lower-case hex")],
                                   ...] = Field(
        (), alias="retiredCaFingerprints",
        description="CAs retired under an earlier CA definition (keyBits, caDays, issued, subject): "
                    "never trusted again")


_EMAIL: Final = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}"
_EMAIL_TEXT: Final = "an ASCII email address such as alice@example.com"
_CSR: Final = r"\s*-----BEGIN CERTIFICATE REQUEST-----[A-Za-z0-9+/=\s-]+-----END CERTIFICATE REQUEST-----\s*"


class ClientConfig(_Section):
    name: Annotated[str, _text(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
                               "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    email: Annotated[str | None, _rule(clb.Pattern(_EMAIL, _EMAIL_TEXT, "RFC 5280 rfc822Name"))] = None
    key_type: Annotated[str, _rule(CLIENT_KEY_TYPES)] = Field("rsa-2048", alias="keyType")
    generation: Generation = Field(1, description="bump for a new key")
    issued: Date | None = Field(None, description="default: `pki.issued`; set to renew")
    days: Days3650 | None = Field(None, description="default: `pki.clientDays`")
    csr: Annotated[str | None, _text(_CSR, "a PEM certificate signing request", lines=True)] = Field(
        None, description="the client keeps its key; gets clientAuth only")


class RevocationConfig(_Section):
    name: Annotated[str, _text(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", "a client name")]
    reason: Annotated[str, _rule(clb.Choice(REVOCATION_REASONS, "RFC 5280 5.3.1"))] = "unspecified"
    date: Date | None = Field(None, description="default: the revoked certificate's first day; not in the future")
    # A revoked client may leave `clients`: its entry then keeps what its certificate was made from,
    # so the CRLs still list its serial. Same meaning and defaults as in `clients`.
    email: Annotated[str | None, _rule(clb.Pattern(_EMAIL, _EMAIL_TEXT, "RFC 5280 rfc822Name"))] = None
    key_type: Annotated[str | None, _rule(CLIENT_KEY_TYPES)] = Field(None, alias="keyType")
    generation: Generation | None = None
    issued: Date | None = None
    days: Days3650 | None = None
    csr: Annotated[str | None, _text(_CSR, "a PEM certificate signing request", lines=True)] = None

    @property
    def details(self) -> set[str]:
        """The client-detail keys this entry sets (only meaningful once the client left `clients`)."""
        return {(f.alias or n) for n, f in type(self).model_fields.items()
                if n in self.model_fields_set and n not in ("name", "reason", "date")}


def _crl_days_gone(value: object) -> object:
    raise _refuse("nothing: CRLs now stay valid until the CA's last day (nothing would re-sign them); remove it")


def _revocation(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


def _choice_int(value: object, allowed: Sequence[int]) -> object:
    if isinstance(value, bool) or value not in allowed:
        raise _refuse("one of " + ", ".join(map(str, allowed)))
    return value


class Settings(_Section):
    """Every `slb-mtls:*` key a stack file may set (secrets apart)."""

    domain: DnsName = Field(description="the DNS name clients use; the server certificate's first name")
    load_balancer: LoadBalancerConfig = Field(LoadBalancerConfig(), alias="loadBalancer")
    listener: ListenerConfig = ListenerConfig()
    backends: tuple[BackendConfig, ...] = Field((), description="existing instances behind the listener")
    demo_backends: DemoBackendsConfig | None = Field(None, alias="demoBackends",
                                                     description="the tutorial's demo ECS servers")
    pki: PkiConfig
    clients: tuple[ClientConfig, ...] = ()
    revoked: tuple[Annotated[RevocationConfig, BeforeValidator(_revocation)], ...] = Field(
        (), description="names or {name, reason, date}, in the order revoked; never reorder")
    server_certificate: Annotated[str | None, _text(r"\s*-----BEGIN CERTIFICATE-----[\s\S]+",
                                                    "a PEM certificate chain", lines=True)] = Field(
        None, alias="serverCertificate", description="a purchased certificate chain (with secret serverPrivateKey)")


SECRET_KEYS: Final = ("pkiSeed", "serverPrivateKey", "serverPrivateKeyPassphrase")
KNOWN_KEYS: Final = (*(f.alias or n for n, f in Settings.model_fields.items()), *SECRET_KEYS)


# -- the validated whole -------------------------------------------------------------------------


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    region: str
    domain: str
    load_balancer_name: str
    load_balancer: LoadBalancerConfig
    listener: ListenerConfig
    backends: tuple[BackendConfig, ...]
    demo_backends: DemoBackendsConfig | None
    pki: PkiSpec
    renew_before_days: int
    carried_retired_fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackSecrets:
    """Secret config, as plain strings held only in memory. `*_is_secret` say how they were stored."""

    seed: str | None = None
    seed_is_secret: bool = True
    server_private_key: str | None = None
    server_private_key_is_secret: bool = True
    server_private_key_passphrase: str | None = None
    server_private_key_passphrase_is_secret: bool = True

    def effective(self) -> tuple[object, ...]:
        """What validation reads: how a value was stored matters only when it is set."""
        def stored(value: str | None, is_secret: bool) -> tuple[str | None, bool | None]:
            return value, (is_secret if value is not None else None)

        return (*stored(self.seed, self.seed_is_secret),
                *stored(self.server_private_key, self.server_private_key_is_secret),
                *stored(self.server_private_key_passphrase, self.server_private_key_passphrase_is_secret))


# The offline tools validate a stack's config to start their helper, then the program validates the
# same values again as the engine hands them over (~45 us per client each time): the last few
# accepted configs are kept, by a digest of everything validation reads (settings in any order,
# each one's own content in its order: a tags map keeps it). Values the engine would
# hand over differently (e.g. "443" as a string, which the program decodes) just miss.
_ACCEPTED: dict[bytes, StackConfig] = {}
_ACCEPTED_KEPT: Final = 4


def _text_keys_only(value: object) -> bool:
    """JSON would write the keys True, 1 and None as "true", "1" and "null": such values are
    validated every time, never mistaken for the text keys validation treats differently."""
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _text_keys_only(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_text_keys_only(v) for v in value)
    return True


def _inputs_digest(raw: Mapping[str, Any], region: object, project: str, stack: str, secrets: StackSecrets,
                   on: dt.date) -> bytes | None:
    if not _text_keys_only(raw):
        return None
    try:
        # settings in any order (the engine's is not the file's); inside each, the order given
        text = json.dumps([sorted(raw.items()), region, project, stack, secrets.effective(), on.isoformat()],
                          allow_nan=False)
    except (TypeError, ValueError):  # not plain JSON values: validated every time
        return None
    return hashlib.sha256(text.encode()).digest()


def parse_stack_config(raw: Mapping[str, Any], region: object, *, project: str, stack: str,
                       secrets: StackSecrets, today: dt.date | None = None) -> StackConfig:
    """Validate everything; raise ConfigError listing every problem, or return the typed config.
    `today` (UTC) bounds the dates: nothing may be issued or revoked in the future."""
    on = today or utc_today()
    digest = _inputs_digest(raw, region, project, stack, secrets, on)
    if digest is not None and (accepted := _ACCEPTED.get(digest)) is not None:
        return accepted
    config = _parse_stack_config(raw, region, project=project, stack=stack, secrets=secrets, on=on)
    if digest is not None:
        if len(_ACCEPTED) >= _ACCEPTED_KEPT:
            _ACCEPTED.pop(next(iter(_ACCEPTED)), None)
        _ACCEPTED[digest] = config
    return config


def _parse_stack_config(raw: Mapping[str, Any], region: object, *, project: str, stack: str,
                        secrets: StackSecrets, on: dt.date) -> StackConfig:
    problems: list[str] = []
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ConfigError([f"{NAMESPACE}: expected a mapping of setting names to values"])
    if not isinstance(region, str) or region not in REGIONS:
        shown = "not set" if region is None else f"{_show(region)} is not an Alibaba Cloud region"
        problems.append(f"alicloud:region: {shown}; expected one of {', '.join(sorted(REGIONS))}")
    settings = _validate(raw, problems)
    problems += _check_secrets(raw, secrets)
    if settings is None:
        raise ConfigError(problems + list(_section_checks(raw)))
    lb_name = settings.load_balancer.name or f"{project}-{stack}"
    problems += list(_cross_checks(settings, lb_name, on))
    pki_spec = None if problems else _pki_spec(settings, _operator_certificate(settings, secrets))
    if problems or pki_spec is None:
        raise ConfigError(problems)
    return StackConfig(project, stack, str(region), settings.domain, lb_name, settings.load_balancer,
                       settings.listener, settings.backends, settings.demo_backends, pki_spec,
                       settings.pki.renew_before_days, settings.pki.retired_ca_fingerprints)


def seed_of(secrets: StackSecrets) -> Seed:
    """The parsed seed; call only after `parse_stack_config` accepted the secrets."""
    assert secrets.seed is not None
    return Seed.from_hex(secrets.seed, setting=SEED_KEY)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(loc: Sequence[int | str]) -> str:
    """('listener', 'healthCheck', 'timeout') -> listener.healthCheck.timeout; list indexes as [i]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPE_WORDS: Final = {
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "list_type": "a list", "tuple_type": "a list", "string_type": "a string", "int_type": "an integer",
    "bool_type": "true or false", "missing": None,
}


def _validate(raw: Mapping[str, Any], problems: list[str]) -> Settings | None:
    settings = {k: v for k, v in raw.items() if k not in SECRET_KEYS}
    try:
        return Settings.model_validate(settings)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            # unions and tagged validators add their own path parts: keep the config's
            loc = [p for p in loc if p not in ("str", "int", "none", "is-instance[date]", "[key]")]
            key = _key(loc)
            kind = error["type"]
            if kind == "extra_forbidden":
                problems.append(f"{NAMESPACE}:{key}: unknown setting; known: {_known_at(loc[:-1])}")
            elif kind == "missing":
                problems.append(f"{NAMESPACE}:{key}: required; {_required_hint(key)}")
            elif kind == "slb_mtls":
                problems.append(f"{NAMESPACE}:{key}: {_show(error['input'])} is not allowed; "
                                f"expected {error['ctx']['expected']}")
            else:
                expected = _TYPE_WORDS.get(kind) or error["msg"].removeprefix("Input should be ")
                if kind in ("model_type", "model_attributes_type", "dict_type"):
                    expected = f"an object with keys {_known_at(loc)}"
                problems.append(f"{NAMESPACE}:{key}: {_show(error['input'])} is not allowed; expected {expected}")
        return None


def _required_hint(key: str) -> str:
    return {
        "domain": "the DNS name clients use, e.g. mtls.example.com",
        "pki": "at least {issued: YYYY-MM-DD}",
        "pki.issued": "expected a date YYYY-MM-DD",
    }.get(key, "see the README's configuration table")


def _known_at(loc: Sequence[int | str]) -> str:
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        inner = _model_of(field.annotation) if field else None
        if inner is None:
            break
        model = inner
    return ", ".join(f.alias or n for n, f in model.model_fields.items())


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) + getattr(annotation, "__metadata__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _check_secrets(raw: Mapping[str, Any], secrets: StackSecrets) -> list[str]:
    problems: list[str] = []
    if secrets.seed is None:
        problems.append(f"{SEED_KEY}: required and not set; create it once per stack with:  {SEED_COMMAND}")
    else:
        if not secrets.seed_is_secret:
            problems.append(f"{SEED_KEY}: stored in plain text; remove it and store it encrypted with:  "
                            f"{SEED_COMMAND}")
        try:
            Seed.from_hex(secrets.seed, setting=SEED_KEY)
        except PkiError as exc:
            problems.append(str(exc))
    chain, key = raw.get("serverCertificate"), secrets.server_private_key
    if chain is not None and key is None:
        problems.append(f"{NAMESPACE}:serverPrivateKey: required with serverCertificate; set it with: "
                        "pulumi config set --secret serverPrivateKey < server.key")
    if key is not None and chain is None:
        problems.append(f"{NAMESPACE}:serverCertificate: required with serverPrivateKey; the PEM chain, "
                        "set with: pulumi config set serverCertificate < fullchain.pem")
    if key is not None and not secrets.server_private_key_is_secret:
        problems.append(f"{NAMESPACE}:serverPrivateKey: stored in plain text; remove it and store it encrypted "
                        "with: pulumi config set --secret serverPrivateKey < server.key")
    if secrets.server_private_key_passphrase is not None and not secrets.server_private_key_passphrase_is_secret:
        problems.append(f"{NAMESPACE}:serverPrivateKeyPassphrase: stored in plain text; remove it and store it "
                        "encrypted with: pulumi config set --secret serverPrivateKeyPassphrase < passphrase-file")
    return problems


def _cross_checks(s: Settings, lb_name: str, today: dt.date) -> Iterator[str]:
    """Rules between settings, each reported on the key to change."""
    def bad(key: str, value: object, expected: str) -> str:
        return f"{NAMESPACE}:{key}: {_show(value)} is not allowed; expected {expected}"

    lb, listener, hc = s.load_balancer, s.listener, s.listener.health_check
    if not clb.LOAD_BALANCER_NAME.allows(lb_name):
        yield bad("loadBalancer.name", lb_name, clb.LOAD_BALANCER_NAME.describe() +
                  " (the default is <project>-<stack>: set a name)")
    if lb.address_type == "intranet" and not lb.vswitch_id:
        yield (f"{NAMESPACE}:loadBalancer.vswitchId: required when addressType is intranet "
               "(the vSwitch the private address comes from)")
    if lb.address_type == "internet" and listener.bandwidth != clb.BANDWIDTH_PAY_BY_TRAFFIC:
        yield bad("listener.bandwidth", listener.bandwidth,
                  "-1 for an internet load balancer billed PayByTraffic (the only kind with PayByCLCU)")
    ours = [t for t in lb.tags if t in OUR_TAGS]
    if ours:
        yield bad("loadBalancer.tags", ours, f"tags other than {', '.join(OUR_TAGS)} (slb-mtls sets those)")
    if len(lb.tags) > clb.MAX_TAGS - len(OUR_TAGS):
        yield bad("loadBalancer.tags", f"{len(lb.tags)} tags",
                  f"at most {clb.MAX_TAGS - len(OUR_TAGS)} (CLB allows {clb.MAX_TAGS}; slb-mtls sets {len(OUR_TAGS)})")
    yield from _health_check_rules(hc)
    ids = [b.instance_id for b in s.backends]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        yield f"{NAMESPACE}:backends: instance {dup!r} is listed more than once"
    demo = s.demo_backends if s.demo_backends and s.demo_backends.count else None
    total = len(s.backends) + (demo.count if demo else 0)
    if total == 0:
        yield (f"{NAMESPACE}:backends: no backends; list existing instances in {NAMESPACE}:backends "
               f"or set {NAMESPACE}:demoBackends: {{count: 2}}")
    if total > clb.MAX_BACKENDS_PER_CALL:
        yield bad("backends", f"{total} backends (with demoBackends.count)",
                  f"at most {clb.MAX_BACKENDS_PER_CALL}: CLB adds at most {clb.MAX_BACKENDS_PER_CALL} per call")
    weights = [b.weight for b in s.backends] + ([demo.weight] * demo.count if demo else [])
    if weights and not any(weights):
        yield f"{NAMESPACE}:backends: every weight is 0, so no backend would get traffic"
    yield from _pki_checks(s, today)


def _pki_checks(s: Settings, today: dt.date) -> Iterator[str]:
    def future(key: str, day: dt.date | None) -> Iterator[str]:
        if day is not None and day > today:
            yield (f"{NAMESPACE}:{key}: {day.isoformat()!r} is in the future; expected a date on or before "
                   f"{today.isoformat()} (dates are UTC days: until 08:00 in UTC+8, UTC is still on the day before)")

    pki = s.pki
    yield from future("pki.issued", pki.issued)
    yield from future("pki.serverIssued", pki.server_issued)
    ca_end = min(pki.issued, today) + dt.timedelta(days=pki.ca_days)  # a future issued is reported above

    def within_ca(key_day: str, day: dt.date, key_days: str, days: int) -> Iterator[str]:
        """A certificate's lifetime inside its CA's, reported on the keys that set it."""
        if day > today or pki.issued > today:
            return  # reported as in the future; its end may not even be a date
        if day < pki.issued:
            yield (f"{NAMESPACE}:{key_day}: {day.isoformat()!r} is not allowed; expected a day from the CA's "
                   f"first day {pki.issued.isoformat()} (pki.issued) on")
        elif day + dt.timedelta(days=days) > ca_end:
            most = (ca_end - day).days
            yield (f"{NAMESPACE}:{key_days}: {days} is not allowed; expected at most {most}: the certificate "
                   f"must end by the CA's last day {ca_end.isoformat()} (or raise pki.caDays)")

    if s.server_certificate is None:  # a brought certificate has its own lifetime, checked when loaded
        yield from within_ca("pki.serverIssued" if pki.server_issued else "pki.issued",
                             pki.server_issued or pki.issued, "pki.serverDays", pki.server_days)
    subject = pki.subject
    if subject.common_name is None and len(_default_common_name(subject)) > MAX_CA_COMMON_NAME:
        yield (f"{NAMESPACE}:pki.subject.commonName: required when the default "
               f"{_default_common_name(subject)!r} is longer than {MAX_CA_COMMON_NAME} characters")
    yield from _unique_client_names(list(enumerate(s.clients)))
    for i, client in enumerate(s.clients):
        if client.csr is not None and "keyType" in client.model_fields_set:
            yield f"{NAMESPACE}:clients[{i}]: give keyType or csr, not both (with a csr the client's key is used)"
        yield from future(f"clients[{i}].issued", client.issued)
        yield from within_ca(f"clients[{i}].issued" if client.issued else "pki.issued",
                                 client.issued or pki.issued,
                                 f"clients[{i}].days" if client.days else "pki.clientDays",
                                 client.days or pki.client_days)
    names = {c.name for c in s.clients}
    revoked: list[str] = []
    for i, revocation in enumerate(s.revoked):
        if revocation.name in names and revocation.details:
            yield (f"{NAMESPACE}:revoked[{i}]: {revocation.name!r} is still in {NAMESPACE}:clients, which holds its "
                   f"details; remove {', '.join(sorted(revocation.details))} here, or move them here when the "
                   "client leaves clients")
        if revocation.name in revoked:
            yield f"{NAMESPACE}:revoked[{i}]: {revocation.name!r} is revoked twice"
        revoked.append(revocation.name)
        yield from future(f"revoked[{i}].date", revocation.date)
        yield from future(f"revoked[{i}].issued", revocation.issued)
        if revocation.date is not None and revocation.date < pki.issued:
            yield (f"{NAMESPACE}:revoked[{i}].date: {revocation.date.isoformat()!r} is before the CA's first day "
                   f"{pki.issued.isoformat()}; expected a date from then on")


def _health_check_rules(hc: HealthCheckConfig) -> Iterator[str]:
    if hc.enabled and hc.timeout < hc.interval:
        yield (f"{NAMESPACE}:listener.healthCheck.timeout: {hc.timeout!r} is not allowed; expected at least "
               f"healthCheck.interval ({hc.interval}): CLB silently uses the interval instead")


def _unique_client_names(clients: Sequence[tuple[int, ClientConfig]]) -> Iterator[str]:
    seen: dict[str, int] = {}
    for i, client in clients:
        folded = client.name.casefold()
        if folded in seen:
            yield (f"{NAMESPACE}:clients[{i}].name: {client.name!r} is used by another client "
                   f"(clients[{seen[folded]}]; names are compared ignoring case); names must be unique")
        seen.setdefault(folded, i)


def _section_checks(raw: Mapping[str, Any]) -> Iterator[str]:
    """With field errors elsewhere, the rules between keys of sections that did validate, so a run
    reports those too rather than only after the field errors are fixed."""
    listener = raw.get("listener")
    if isinstance(listener, Mapping):
        with contextlib.suppress(ValidationError):
            yield from _health_check_rules(ListenerConfig.model_validate(listener).health_check)
    clients = raw.get("clients")
    if isinstance(clients, list):
        valid: list[tuple[int, ClientConfig]] = []
        for i, item in enumerate(clients):
            with contextlib.suppress(ValidationError):
                valid.append((i, ClientConfig.model_validate(item)))
        yield from _unique_client_names(valid)


def _default_common_name(subject: SubjectConfig) -> str:
    return f"{subject.organization or 'slb-mtls'} client CA"


def _operator_certificate(s: Settings, secrets: StackSecrets) -> OperatorCertificate | None:
    if s.server_certificate is None or secrets.server_private_key is None:
        return None
    return OperatorCertificate(s.server_certificate, secrets.server_private_key,
                               secrets.server_private_key_passphrase)


def _pki_spec(s: Settings, operator: OperatorCertificate | None) -> PkiSpec:
    pki, subject = s.pki, s.pki.subject
    key_type = KeyType.rsa(pki.key_bits, setting=f"{NAMESPACE}:pki.keyBits")
    def client_spec(c: ClientConfig | RevocationConfig) -> ClientSpec:
        return ClientSpec(
            name=c.name,
            validity=Validity(c.issued or pki.issued, c.days or pki.client_days),
            email=c.email,
            key_type=KeyType(c.key_type or "rsa-2048"),
            generation=c.generation or 1,
            csr_pem=c.csr,
        )

    clients = tuple(client_spec(c) for c in s.clients)
    active = {c.name for c in s.clients}
    return PkiSpec(
        subject=Subject(
            common_name=subject.common_name or _default_common_name(subject),
            country=subject.country, state=subject.state, locality=subject.locality,
            organization=subject.organization, organizational_unit=subject.organizational_unit,
        ),
        ca_validity=Validity(pki.issued, pki.ca_days),
        server=ServerSpec(tuple(dict.fromkeys([s.domain, *pki.server_alt_names])),
                          Validity(pki.server_issued or pki.issued, pki.server_days),
                          pki.server_generation, key_type, operator),
        clients=clients,
        revocations=tuple(Revocation(r.name, r.reason, r.date, None if r.name in active else client_spec(r))
                          for r in s.revoked),
        ca_generation=pki.ca_generation,
        ca_key_type=key_type,
    )


# -- the README's key table, from the same declaration -------------------------------------------


def reference_markdown() -> str:
    """One row per setting: key, default, what is allowed; generated so the README cannot drift."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{field.alias or name}"
            inner = _model_of(field.annotation)
            if inner is not None and inner is not RevocationConfig and inner is not ClientConfig \
                    and inner is not BackendConfig:
                walk(inner, key + ".")
                continue
            if inner is not None:
                walk(inner, key + "[].")
                continue
            default = "required" if field.is_required() else _default_text(field.get_default(call_default_factory=True))
            allowed = _cell(_allowed(field.annotation, field.metadata))
            rows.append(f"| `{NAMESPACE}:{key}` | {default} | {allowed} | {_cell(field.description or '')} |")

    walk(Settings, "")
    for secret, meaning in (("pkiSeed", "secret: 64 hex characters, `" + SEED_COMMAND + "`"),
                            ("serverPrivateKey", "secret: the brought certificate's key (PEM)"),
                            ("serverPrivateKeyPassphrase", "secret: its passphrase, if encrypted")):
        rows.append(f"| `{NAMESPACE}:{secret}` | | | {_cell(meaning)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _allowed(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """The `expected` text of the first rule on a field or inside its type (list items, dict values)."""
    for item in (*metadata, *getattr(annotation, "__metadata__", ())):
        if isinstance(item, _Rule):
            return item.expected
    for arg in getattr(annotation, "__args__", ()):
        found = _allowed(arg)
        if found:
            return ("each " if getattr(annotation, "__origin__", None) in (tuple, dict) else "") + found
    return ""


def _default_text(value: object) -> str:
    if value is None or value == () or value == {}:
        return ""
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, tuple):
        return "`[" + ", ".join(map(str, value)) + "]`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"

