"""The stack's configuration: read once, validated whole, turned into plain typed values.

This module knows the `slb-mtls:*` keys and CLB's rules, but not the Pulumi runtime: the program feeds
it what `pulumi.Config` returns, the offline tools feed it `Pulumi.<stack>.yaml`. Every problem is
reported with the full key, the value and what is allowed, all at once, before anything is declared.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

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

NAMESPACE: Final = "slb-mtls"
SEED_KEY: Final = f"{NAMESPACE}:pkiSeed"
SEED_COMMAND: Final = "pulumi config set --secret pkiSeed $(openssl rand -hex 32)"

# Alibaba Cloud region ids (public regions, finance clouds included).
REGIONS: Final = frozenset({
    "cn-qingdao", "cn-beijing", "cn-zhangjiakou", "cn-huhehaote", "cn-wulanchabu", "cn-hangzhou",
    "cn-shanghai", "cn-nanjing", "cn-fuzhou", "cn-wuhan-lr", "cn-shenzhen", "cn-heyuan",
    "cn-guangzhou", "cn-chengdu", "cn-hongkong", "ap-northeast-1", "ap-northeast-2",
    "ap-southeast-1", "ap-southeast-3", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "us-east-1", "us-west-1", "na-south-1", "eu-west-1", "eu-central-1", "me-east-1",
    "me-central-1", "cn-shanghai-finance-1", "cn-shenzhen-finance-1", "cn-beijing-finance-1",
})
SCHEDULERS: Final = ("rr", "wrr", "wlc")
TLS_POLICIES: Final = (
    "tls_cipher_policy_1_0", "tls_cipher_policy_1_1", "tls_cipher_policy_1_2",
    "tls_cipher_policy_1_2_strict", "tls_cipher_policy_1_2_strict_with_1_3",
)
HTTP_CODES: Final = ("http_2xx", "http_3xx", "http_4xx", "http_5xx")
HEALTH_METHODS: Final = ("head", "get")
ADDRESS_TYPES: Final = ("internet", "intranet")
INSTANCE_CHARGE_TYPES: Final = ("PayByCLCU", "PayBySpec")
INTERNET_CHARGE_TYPES: Final = ("PayByTraffic", "PayByBandwidth")
LB_SPECS: Final = ("slb.s1.small", "slb.s2.small", "slb.s2.medium", "slb.s3.small", "slb.s3.medium",
                   "slb.s3.large")
BACKEND_TYPES: Final = ("ecs", "eni", "eci")
CLIENT_KEY_TYPES: Final = ("rsa-2048", "rsa-3072", "ec-p256")
SERVER_KEY_BITS: Final = (2048, 3072, 4096)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(Exception):
    """One or more invalid settings; `str()` lists each on its own line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# -- the validated model ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoadBalancerConfig:
    name: str
    address_type: str = "internet"
    vswitch_id: str | None = None
    instance_charge_type: str = "PayByCLCU"
    spec: str | None = None
    internet_charge_type: str = "PayByTraffic"
    delete_protection: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheckConfig:
    enabled: bool = True
    uri: str = "/"
    method: str = "head"
    http_codes: tuple[str, ...] = ("http_2xx",)
    interval: int = 2
    timeout: int = 5
    healthy_threshold: int = 3
    unhealthy_threshold: int = 3
    connect_port: int | None = None
    domain: str | None = None


@dataclass(frozen=True)
class ListenerConfig:
    frontend_port: int = 443
    backend_port: int = 80
    bandwidth: int = -1
    scheduler: str = "wrr"
    tls_cipher_policy: str = "tls_cipher_policy_1_2_strict"
    http2: bool = True
    idle_timeout: int = 15
    request_timeout: int = 60
    gzip: bool = True
    health_check: HealthCheckConfig = HealthCheckConfig()
    forward_slb_ip: bool = False
    forward_slb_id: bool = False
    forward_slb_proto: bool = True


@dataclass(frozen=True)
class BackendConfig:
    instance_id: str
    weight: int = 100
    type: str = "ecs"


@dataclass(frozen=True)
class DemoBackendsConfig:
    count: int
    instance_type: str = "ecs.t6-c1m1.large"
    image_id: str | None = None
    weight: int = 100
    zone_id: str | None = None


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    region: str
    domain: str
    load_balancer: LoadBalancerConfig
    listener: ListenerConfig
    backends: tuple[BackendConfig, ...]
    demo_backends: DemoBackendsConfig | None
    pki: PkiSpec
    renew_before_days: int
    revocations: tuple[Revocation, ...]

    @property
    def client_names(self) -> list[str]:
        return [c.name for c in self.pki.clients]


@dataclass(frozen=True)
class StackSecrets:
    """Secret config, as plain strings held only in memory. `*_is_secret` say how they were stored."""

    seed: str | None = None
    seed_is_secret: bool = True
    server_private_key: str | None = None
    server_private_key_is_secret: bool = True
    server_private_key_passphrase: str | None = None


# -- reading helpers -------------------------------------------------------------------------

T = TypeVar("T")
_MISSING: Final = object()


class _Reader:
    """Walks nested config, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, value: object, allowed: str) -> None:
        shown = _show(value)
        self.problems.append(f"{NAMESPACE}:{key}: {shown} is not allowed; expected {allowed}")

    def obj(self, value: object, key: str, known: Sequence[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, value, "an object with keys " + ", ".join(known))
            return {}
        for unknown in sorted(set(value) - set(known)):
            self.problems.append(f"{NAMESPACE}:{key}.{unknown}: unknown setting; known: {', '.join(known)}")
        return value

    def int_(self, obj: Mapping[str, Any], key: str, path: str, default: int, lo: int, hi: int,
             extra: Sequence[int] = ()) -> int:
        value = obj.get(key, default)
        ok = isinstance(value, int) and not isinstance(value, bool) and (lo <= value <= hi or value in extra)
        if not ok:
            also = "".join(f" or {e}" for e in extra)
            self.fail(_join(path, key), value, f"an integer {lo}-{hi}{also}")
            return default
        return int(value)

    def choice(self, obj: Mapping[str, Any], key: str, path: str, default: T, allowed: Sequence[T]) -> T:
        value = obj.get(key, default)
        if value not in allowed:
            self.fail(_join(path, key), value, "one of " + ", ".join(map(str, allowed)))
            return default
        return value  # type: ignore[no-any-return]

    def bool_(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key, default)
        if not isinstance(value, bool):
            self.fail(_join(path, key), value, "true or false")
            return default
        return value

    def str_(self, obj: Mapping[str, Any], key: str, path: str, default: str | None = None,
             pattern: re.Pattern[str] | None = None, what: str = "a non-empty string") -> str | None:
        value = obj.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
            self.fail(_join(path, key), value, what)
            return default
        return value

    def date(self, obj: Mapping[str, Any], key: str, path: str, default: dt.date | None) -> dt.date | None:
        value = obj.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is None:
                self.problems.append(f"{NAMESPACE}:{_join(path, key)}: required; expected a date YYYY-MM-DD")
            return default
        if isinstance(value, dt.date):
            return value
        text = str(value)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                pass
        self.fail(_join(path, key), value, "a date YYYY-MM-DD")
        return default


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- the top level ---------------------------------------------------------------------------

SECRET_KEYS: Final = ("pkiSeed", "serverPrivateKey", "serverPrivateKeyPassphrase")
KNOWN_KEYS: Final = ("domain", "loadBalancer", "listener", "backends", "demoBackends", "pki", "clients",
                     "revoked", "pkiSeed", "serverCertificate", "serverPrivateKey",
                     "serverPrivateKeyPassphrase")


def parse_stack_config(raw: Mapping[str, Any], region: object, *, project: str, stack: str,
                       secrets: StackSecrets) -> StackConfig:
    """Validate everything; raise ConfigError listing every problem, or return the typed config."""
    r = _Reader()
    for unknown in sorted(set(raw) - set(KNOWN_KEYS)):
        r.problems.append(f"{NAMESPACE}:{unknown}: unknown setting; known: {', '.join(KNOWN_KEYS)}")
    if not isinstance(region, str) or region not in REGIONS:
        r.problems.append(f"alicloud:region: {_show(region)} is not an Alibaba Cloud region; "
                          f"expected one of {', '.join(sorted(REGIONS))}")
    domain = r.str_(raw, "domain", "", pattern=_HOSTNAME, what="a DNS name such as mtls.example.com")
    if "domain" not in raw:
        r.problems.append(f"{NAMESPACE}:domain: required; the DNS name clients use, e.g. mtls.example.com")
    load_balancer = _load_balancer(r, raw.get("loadBalancer"), project, stack)
    listener = _listener(r, raw.get("listener"))
    backends = _backends(r, raw.get("backends"))
    demo = _demo_backends(r, raw.get("demoBackends"))
    if not backends and demo is None:
        r.problems.append(f"{NAMESPACE}:backends: no backends; list existing instances in "
                          f"{NAMESPACE}:backends or set {NAMESPACE}:demoBackends: {{count: 2}}")
    all_weights = [b.weight for b in backends] + ([demo.weight] if demo else [])
    if all_weights and not any(all_weights):
        r.problems.append(f"{NAMESPACE}:backends: every weight is 0, so no backend would get traffic")
    pki_raw = r.obj(raw.get("pki"), "pki", _PKI_KEYS)
    issued = r.date(pki_raw, "issued", "pki", None)
    client_days = r.int_(pki_raw, "clientDays", "pki", 365, 1, 3650)
    clients = _clients(r, raw.get("clients"), issued, client_days)
    revocations = _revocations(r, raw.get("revoked"), [c.name for c in clients])
    operator = _operator_certificate(r, raw, secrets)
    pki_spec, renew = _pki(r, pki_raw, issued, domain, clients, revocations, operator)
    _check_seed(r, secrets)
    if r.problems or pki_spec is None or domain is None:
        raise ConfigError(r.problems)
    return StackConfig(project, stack, str(region), domain, load_balancer, listener, tuple(backends), demo,
                       pki_spec, renew, revocations)


def seed_of(secrets: StackSecrets) -> Seed:
    """The parsed seed; call only after `parse_stack_config` accepted the secrets."""
    assert secrets.seed is not None
    return Seed.from_hex(secrets.seed, setting=SEED_KEY)


def _check_seed(r: _Reader, secrets: StackSecrets) -> None:
    if secrets.seed is None:
        r.problems.append(f"{SEED_KEY}: required and not set; create it once per stack with:  {SEED_COMMAND}")
        return
    if not secrets.seed_is_secret:
        r.problems.append(f"{SEED_KEY}: stored in plain text; remove it and store it encrypted with:  "
                          f"{SEED_COMMAND}")
    try:
        Seed.from_hex(secrets.seed, setting=SEED_KEY)
    except PkiError as exc:
        r.problems.append(str(exc))


def _load_balancer(r: _Reader, value: object, project: str, stack: str) -> LoadBalancerConfig:
    known = ("name", "addressType", "vswitchId", "instanceChargeType", "spec", "internetChargeType",
             "deleteProtection", "tags")
    obj = r.obj(value, "loadBalancer", known)
    p = "loadBalancer"
    address_type = r.choice(obj, "addressType", p, "internet", ADDRESS_TYPES)
    vswitch_id = r.str_(obj, "vswitchId", p, what="a vSwitch id such as vsw-bp1...")
    if address_type == "intranet" and not vswitch_id:
        r.problems.append(f"{NAMESPACE}:loadBalancer.vswitchId: required when addressType is intranet "
                          "(the vSwitch the private address comes from)")
    tags = obj.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        r.fail("loadBalancer.tags", tags, "a map of string to string")
        tags = {}
    return LoadBalancerConfig(
        name=r.str_(obj, "name", p, f"{project}-{stack}", pattern=re.compile(r"^[\w.\-/]{1,80}$"),
                    what="1-80 letters, digits, '.', '_', '-', '/'") or f"{project}-{stack}",
        address_type=address_type,
        vswitch_id=vswitch_id,
        instance_charge_type=r.choice(obj, "instanceChargeType", p, "PayByCLCU", INSTANCE_CHARGE_TYPES),
        spec=r.choice(obj, "spec", p, None, (None, *LB_SPECS)),
        internet_charge_type=r.choice(obj, "internetChargeType", p, "PayByTraffic", INTERNET_CHARGE_TYPES),
        delete_protection=r.bool_(obj, "deleteProtection", p, False),
        tags=dict(tags),
    )


def _listener(r: _Reader, value: object) -> ListenerConfig:
    known = ("frontendPort", "backendPort", "bandwidth", "scheduler", "tlsCipherPolicy", "http2",
             "idleTimeout", "requestTimeout", "gzip", "healthCheck", "xForwardedFor")
    obj = r.obj(value, "listener", known)
    p = "listener"
    xff = r.obj(obj.get("xForwardedFor"), "listener.xForwardedFor", ("slbIp", "slbId", "slbProto"))
    return ListenerConfig(
        frontend_port=r.int_(obj, "frontendPort", p, 443, 1, 65535),
        backend_port=r.int_(obj, "backendPort", p, 80, 1, 65535),
        bandwidth=r.int_(obj, "bandwidth", p, -1, 1, 5120, extra=(-1,)),
        scheduler=r.choice(obj, "scheduler", p, "wrr", SCHEDULERS),
        tls_cipher_policy=r.choice(obj, "tlsCipherPolicy", p, "tls_cipher_policy_1_2_strict", TLS_POLICIES),
        http2=r.bool_(obj, "http2", p, True),
        idle_timeout=r.int_(obj, "idleTimeout", p, 15, 1, 60),
        request_timeout=r.int_(obj, "requestTimeout", p, 60, 1, 180),
        gzip=r.bool_(obj, "gzip", p, True),
        health_check=_health_check(r, obj.get("healthCheck")),
        forward_slb_ip=r.bool_(xff, "slbIp", "listener.xForwardedFor", False),
        forward_slb_id=r.bool_(xff, "slbId", "listener.xForwardedFor", False),
        forward_slb_proto=r.bool_(xff, "slbProto", "listener.xForwardedFor", True),
    )


def _health_check(r: _Reader, value: object) -> HealthCheckConfig:
    known = ("enabled", "uri", "method", "httpCodes", "interval", "timeout", "healthyThreshold",
             "unhealthyThreshold", "connectPort", "domain")
    p = "listener.healthCheck"
    obj = r.obj(value, p, known)
    codes = obj.get("httpCodes", ["http_2xx"])
    if not isinstance(codes, list) or not codes or any(c not in HTTP_CODES for c in codes):
        r.fail(f"{p}.httpCodes", codes, "a non-empty list of " + ", ".join(HTTP_CODES))
        codes = ["http_2xx"]
    uri = r.str_(obj, "uri", p, "/", pattern=re.compile(r"^/[\x21-\x7e]{0,79}$"),
                 what="a path of 1-80 printable characters starting with /") or "/"
    return HealthCheckConfig(
        enabled=r.bool_(obj, "enabled", p, True),
        uri=uri,
        method=r.choice(obj, "method", p, "head", HEALTH_METHODS),
        http_codes=tuple(dict.fromkeys(codes)),
        interval=r.int_(obj, "interval", p, 2, 1, 50),
        timeout=r.int_(obj, "timeout", p, 5, 1, 300),
        healthy_threshold=r.int_(obj, "healthyThreshold", p, 3, 2, 10),
        unhealthy_threshold=r.int_(obj, "unhealthyThreshold", p, 3, 2, 10),
        connect_port=r.int_(obj, "connectPort", p, 0, 1, 65535) if "connectPort" in obj else None,
        domain=r.str_(obj, "domain", p, pattern=_HOSTNAME, what="a DNS name"),
    )


def _backends(r: _Reader, value: object) -> list[BackendConfig]:
    if value is None:
        return []
    if not isinstance(value, list):
        r.fail("backends", value, "a list of {instanceId, weight, type}")
        return []
    out = []
    for i, item in enumerate(value):
        p = f"backends[{i}]"
        obj = r.obj(item, p, ("instanceId", "weight", "type"))
        instance_id = r.str_(obj, "instanceId", p, what="an instance id such as i-bp1...")
        if "instanceId" not in obj:
            r.problems.append(f"{NAMESPACE}:{p}.instanceId: required")
        out.append(BackendConfig(instance_id or "", r.int_(obj, "weight", p, 100, 0, 100),
                                 r.choice(obj, "type", p, "ecs", BACKEND_TYPES)))
    ids = [b.instance_id for b in out]
    for dup in sorted({i for i in ids if ids.count(i) > 1 and i}):
        r.problems.append(f"{NAMESPACE}:backends: instance {dup!r} is listed more than once")
    return out


def _demo_backends(r: _Reader, value: object) -> DemoBackendsConfig | None:
    if value is None:
        return None
    p = "demoBackends"
    obj = r.obj(value, p, ("count", "instanceType", "imageId", "weight", "zoneId"))
    count = r.int_(obj, "count", p, 2, 0, 20)
    if count == 0:
        return None
    return DemoBackendsConfig(
        count=count,
        instance_type=r.str_(obj, "instanceType", p, "ecs.t6-c1m1.large") or "ecs.t6-c1m1.large",
        image_id=r.str_(obj, "imageId", p),
        weight=r.int_(obj, "weight", p, 100, 0, 100),
        zone_id=r.str_(obj, "zoneId", p),
    )


_PKI_KEYS: Final = ("issued", "caGeneration", "keyBits", "caDays", "serverDays", "clientDays",
                    "renewBeforeDays", "crlDays", "subject", "serverGeneration", "serverIssued",
                    "serverAltNames")
_SUBJECT_KEYS: Final = ("country", "state", "locality", "organization", "organizationalUnit", "commonName")


def _clients(r: _Reader, value: object, issued: dt.date | None, default_days: int) -> list[ClientSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        r.fail("clients", value, "a list of {name, email, keyType, generation, issued, days, csr}")
        return []
    out = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        p = f"clients[{i}]"
        obj = r.obj(item, p, ("name", "email", "keyType", "generation", "issued", "days", "csr"))
        name = r.str_(obj, "name", p, pattern=_NAME,
                      what="1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if "name" not in obj:
            r.problems.append(f"{NAMESPACE}:{p}.name: required")
        if name in seen:
            r.problems.append(f"{NAMESPACE}:{p}.name: {name!r} is used by another client; names must be unique")
        seen.add(name or "")
        key_type = r.choice(obj, "keyType", p, "rsa-2048", CLIENT_KEY_TYPES)
        csr = r.str_(obj, "csr", p, pattern=re.compile(r"^\s*-----BEGIN CERTIFICATE REQUEST-----"),
                     what="a PEM certificate signing request")
        if csr is not None and "keyType" in obj:
            r.problems.append(f"{NAMESPACE}:{p}: give keyType or csr, not both (with a csr the client's key is used)")
        client_issued = r.date(obj, "issued", p, issued or dt.date(2000, 1, 1))
        out.append(ClientSpec(
            name=name or f"#{i}",
            validity=Validity(client_issued or dt.date(2000, 1, 1), r.int_(obj, "days", p, default_days, 1, 3650)),
            email=r.str_(obj, "email", p, pattern=_EMAIL, what="an email address"),
            key_type=KeyType(key_type),
            generation=r.int_(obj, "generation", p, 1, 1, 10_000),
            csr_pem=csr,
        ))
    return out


def _revocations(r: _Reader, value: object, client_names: list[str]) -> tuple[Revocation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        r.fail("revoked", value, "a list of client names or {name, reason, date}")
        return ()
    out: list[Revocation] = []
    for i, item in enumerate(value):
        p = f"revoked[{i}]"
        obj = {"name": item} if isinstance(item, str) else r.obj(item, p, ("name", "reason", "date"))
        name = r.str_(obj, "name", p, what="a client name")
        if name is None:
            r.problems.append(f"{NAMESPACE}:{p}.name: required")
            continue
        if name not in client_names:
            r.problems.append(f"{NAMESPACE}:{p}: {name!r} is not a configured client; known clients: "
                              f"{', '.join(client_names) or '(none)'} (keep revoked clients in "
                              f"{NAMESPACE}:clients so their old certificates can be listed in the CRL)")
        if name in [o.name for o in out]:
            r.problems.append(f"{NAMESPACE}:{p}: {name!r} is revoked twice")
        reason = r.choice(obj, "reason", p, "unspecified", tuple(REVOCATION_REASONS))
        out.append(Revocation(name, reason, r.date(obj, "date", p, dt.date(1, 1, 1)) if "date" in obj else None))
    return tuple(out)


def _operator_certificate(r: _Reader, raw: Mapping[str, Any], secrets: StackSecrets) -> OperatorCertificate | None:
    chain = raw.get("serverCertificate")
    if chain is None and secrets.server_private_key is None:
        return None
    if chain is None or not isinstance(chain, str):
        r.problems.append(f"{NAMESPACE}:serverCertificate: required with serverPrivateKey; the PEM chain, "
                          "set with: pulumi config set serverCertificate < fullchain.pem")
        return None
    if secrets.server_private_key is None:
        r.problems.append(f"{NAMESPACE}:serverPrivateKey: required with serverCertificate; set it with: "
                          "pulumi config set --secret serverPrivateKey < server.key")
        return None
    if not secrets.server_private_key_is_secret:
        r.problems.append(f"{NAMESPACE}:serverPrivateKey: stored in plain text; remove it and store it encrypted "
                          "with: pulumi config set --secret serverPrivateKey < server.key")
    return OperatorCertificate(chain, secrets.server_private_key, secrets.server_private_key_passphrase)


def _pki(r: _Reader, obj: dict[str, Any], issued: dt.date | None, domain: str | None,
         clients: list[ClientSpec], revocations: tuple[Revocation, ...],
         operator: OperatorCertificate | None) -> tuple[PkiSpec | None, int]:
    p = "pki"
    subject_raw = r.obj(obj.get("subject"), "pki.subject", _SUBJECT_KEYS)
    country = r.str_(subject_raw, "country", "pki.subject", pattern=re.compile(r"^[A-Z]{2}$"),
                     what="a two-letter ISO 3166 country code such as CN")
    texts = {k: r.str_(subject_raw, k, "pki.subject", pattern=re.compile(r"^.{1,64}$"),
                       what="1-64 characters") for k in _SUBJECT_KEYS[1:]}
    organization = texts["organization"]
    subject = Subject(
        common_name=texts["commonName"] or f"{organization or 'slb-mtls'} client CA",
        country=country, state=texts["state"], locality=texts["locality"],
        organization=organization, organizational_unit=texts["organizationalUnit"],
    )
    key_bits = r.choice(obj, "keyBits", p, 2048, SERVER_KEY_BITS)
    ca_days = r.int_(obj, "caDays", p, 3650, 1, 36500)
    server_days = r.int_(obj, "serverDays", p, 397, 1, 825)
    renew = r.int_(obj, "renewBeforeDays", p, 30, 0, 365)
    crl_days = r.int_(obj, "crlDays", p, 30, 1, 3650)
    ca_generation = r.int_(obj, "caGeneration", p, 1, 1, 10_000)
    server_generation = r.int_(obj, "serverGeneration", p, 1, 1, 10_000)
    server_issued = r.date(obj, "serverIssued", p, issued or dt.date(2000, 1, 1))
    alt = obj.get("serverAltNames", [])
    if not isinstance(alt, list) or not all(isinstance(a, str) and _HOSTNAME.match(a) for a in alt):
        r.fail("pki.serverAltNames", alt, "a list of DNS names")
        alt = []
    if issued is None or domain is None or server_issued is None:
        return None, renew
    names = tuple(dict.fromkeys([domain, *alt]))
    key_type = KeyType.rsa(key_bits, setting=f"{NAMESPACE}:pki.keyBits")
    spec = PkiSpec(
        subject=subject,
        ca_validity=Validity(issued, ca_days),
        server=ServerSpec(names, Validity(server_issued, server_days), server_generation, key_type, operator),
        clients=tuple(clients),
        revocations=revocations,
        ca_generation=ca_generation,
        ca_key_type=key_type,
        crl_days=crl_days,
    )
    return spec, renew
