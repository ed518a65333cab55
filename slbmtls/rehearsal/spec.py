"""The planned listener, parsed once from the plan into what the rehearsal serves.

Every listener and backend input is either modelled (it changes what HAProxy does, or is served
as planned) or listed in NOT_MODELLED with the reason, which the report shows. Any other input, or
a value of a modelled input the rehearsal cannot serve, fails the rehearsal: it never passes while
silently ignoring part of the listener. Nothing here restates a CLB default: a missing input the
rehearsal needs is an error too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from slbmtls import clb
from slbmtls.plan import Plan, reveal

LISTENER: Final = clb.LISTENER
CA_CERT: Final = clb.CA_CERTIFICATE
SERVER_CERT: Final = clb.SERVER_CERTIFICATE
BACKENDS: Final = clb.BACKEND_SERVER

# CLB policy -> the TLS versions it offers, spelt as HAProxy and Python's ssl.SSLSocket.version() do
POLICY_TLS_VERSIONS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple({"TLSv1": "TLSv1.0"}.get(v, v.replace("_", ".")) for v in policy.versions)
    for name, policy in clb.TLS_POLICIES.items()
}
# the strict policies offer ECDHE key exchange only (clb.py lists their suites)
ECDHE_ONLY: Final = frozenset({"tls_cipher_policy_1_2_strict", "tls_cipher_policy_1_2_strict_with_1_3"})

# inputs served as planned without changing HAProxy's behaviour, or deliberately not emulated
NOT_MODELLED: Final[dict[str, str]] = {
    "loadBalancerId": "one local listener stands for the load balancer",
    "frontendPort": "the rehearsal listens on a free local port",
    "backendPort": "each local backend listens on a free port",
    "bandwidth": "bandwidth caps are not emulated (CLB's -1 means none)",
    "backendServers[].serverId": "a local HTTP server stands for each instance",
    "backendServers[].type": "a local HTTP server stands for each instance, whatever its type",
}


class SpecError(Exception):
    """Listener inputs the rehearsal does not handle; `problems` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class HealthCheck:
    method: str
    uri: str
    codes: str  # the HTTP status classes that count as healthy, e.g. "23"
    interval: int
    timeout: int
    rise: int
    fall: int
    domain: str | None


@dataclass(frozen=True)
class ListenerSpec:
    domain: str
    scheduler: str
    weights: tuple[int, ...]
    tls_policy: str
    http2: bool
    gzip: bool
    idle_timeout: int
    request_timeout: int
    health: HealthCheck | None
    forward_slb_ip: bool
    forward_slb_id: bool
    forward_slb_proto: bool
    load_balancer_id: str
    ca_pem: str
    server_pem: str  # certificate chain then private key, as HAProxy reads it
    server_certificate_pem: str
    not_modelled: tuple[str, ...] = field(default=())

    @property
    def tls_versions(self) -> tuple[str, ...]:
        return POLICY_TLS_VERSIONS[self.tls_policy]

    @property
    def reduced_weights(self) -> tuple[int, ...]:
        """The weights in the smallest integers of the same proportions (rr ignores weights, as CLB
        does): one scheduling cycle is then short."""
        if self.scheduler == "rr":
            return (1,) * len(self.weights)
        divisor = math.gcd(*self.weights) or 1
        return tuple(w // divisor for w in self.weights)

    def check_budget(self) -> float:
        """Seconds for the health checks to move every server up or down, with slack."""
        if self.health is None:
            return 5.0
        return 5 + (self.health.interval + self.health.timeout) * (max(self.health.rise, self.health.fall) + 1)


class _Inputs:
    """Takes inputs one by one, so whatever is left at the end was not handled."""

    def __init__(self, values: dict[str, Any], where: str) -> None:
        self.left = dict(values)
        self.where = where
        self.problems: list[str] = []
        self.notes: list[str] = []

    def take(self, key: str, kind: type | tuple[type, ...], choices: tuple[Any, ...] | None = None) -> Any:
        if key not in self.left or self.left[key] is None:
            self.left.pop(key, None)
            self.problems.append(f"{self.where}.{key}: missing; the rehearsal does not guess CLB's default")
            return None
        value = self.left.pop(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int) or (
                choices is not None and value not in choices):
            allowed = f"one of {', '.join(map(str, choices))}" if choices else getattr(kind, "__name__", str(kind))
            self.problems.append(f"{self.where}.{key}={value!r}: the rehearsal handles {allowed} only")
            return None
        return value

    def optional(self, key: str, kind: type) -> Any:
        value = self.left.pop(key, None)
        if value is not None and not isinstance(value, kind):
            self.problems.append(f"{self.where}.{key}={value!r}: expected {kind.__name__}")
            return None
        return value

    def not_modelled(self, key: str, reason_key: str | None = None) -> None:
        if key in self.left:
            value = self.left.pop(key)
            self.notes.append(f"{self.where}.{key}={value!r} not modelled: {NOT_MODELLED[reason_key or key]}")

    def finish(self) -> None:
        for key, value in sorted(self.left.items()):
            self.problems.append(f"{self.where}.{key}={value!r}: not handled by the rehearsal")


def listener_spec(plan: Plan, domain: str) -> ListenerSpec:
    """Parse the plan's listener and backends; SpecError lists every input not handled."""
    inputs = _Inputs(reveal(plan.one(LISTENER).inputs, True), "listener")
    inputs.take("protocol", str, ("https",))
    scheduler = inputs.take("scheduler", str, ("rr", "wrr", "wlc"))
    tls_policy = inputs.take("tlsCipherPolicy", str, tuple(POLICY_TLS_VERSIONS))
    http2 = inputs.take("enableHttp2", str, ("on", "off")) == "on"
    gzip = bool(inputs.take("gzip", bool))
    idle = inputs.take("idleTimeout", int)
    request = inputs.take("requestTimeout", int)
    inputs.take("stickySession", str, ("off",))  # sticky sessions are not served: "on" fails
    lb_id = inputs.take("loadBalancerId", str)
    inputs.take("caCertificateId", str)  # served: the plan's CaCertificate below
    inputs.take("serverCertificateId", str)  # served: the plan's ServerCertificate below
    forwarded = inputs.optional("xForwardedFor", dict) or {}
    health = _health(inputs)
    for key in ("frontendPort", "backendPort", "bandwidth"):
        inputs.not_modelled(key)
    inputs.finish()
    xff = _Inputs(forwarded, "listener.xForwardedFor")
    slb_ip, slb_id, slb_proto = (bool(xff.optional(k, bool)) for k in ("retriveSlbIp", "retriveSlbId",
                                                                        "retriveSlbProto"))
    xff.finish()
    weights = []
    backend_notes: set[str] = set()
    for i, server in enumerate(reveal(plan.one(BACKENDS).inputs, True).get("backendServers") or []):
        entry = _Inputs(server, f"backendServers[{i}]")
        weights.append(entry.take("weight", int) or 0)
        for key in ("serverId", "type"):
            if entry.left.pop(key, None) is not None:
                backend_notes.add(f"backendServers[].{key} not modelled: {NOT_MODELLED[f'backendServers[].{key}']}")
        entry.finish()
        inputs.problems += entry.problems
    problems = inputs.problems + xff.problems
    if not weights:
        problems.append("backendServers: none; nothing to rehearse")
    if problems:
        raise SpecError(problems)
    ca = reveal(plan.one(CA_CERT).inputs, True)
    server = reveal(plan.one(SERVER_CERT).inputs, True)
    notes = [*inputs.notes, *sorted(backend_notes)]
    return ListenerSpec(
        domain=domain, scheduler=scheduler, weights=tuple(weights), tls_policy=tls_policy, http2=http2,
        gzip=gzip, idle_timeout=idle, request_timeout=request, health=health, forward_slb_ip=slb_ip,
        forward_slb_id=slb_id, forward_slb_proto=slb_proto, load_balancer_id=lb_id,
        ca_pem=ca["caCertificate"], server_pem=server["serverCertificate"] + server["privateKey"],
        server_certificate_pem=server["serverCertificate"], not_modelled=tuple(notes))


def _health(inputs: _Inputs) -> HealthCheck | None:
    if inputs.take("healthCheck", str, ("on", "off")) != "on":
        for key in list(inputs.left):
            if key.startswith("healthCheck") or key.endswith("Threshold"):
                inputs.left.pop(key)  # CLB ignores them with health checks off
        return None
    codes = inputs.take("healthCheckHttpCode", str) or ""
    classes = [c.removeprefix("http_").removesuffix("xx") for c in codes.split(",")]
    if not all(c in ("2", "3", "4", "5") for c in classes):
        inputs.problems.append(f"listener.healthCheckHttpCode={codes!r}: not http_2xx..http_5xx")
    port = inputs.optional("healthCheckConnectPort", int)
    if port:
        inputs.problems.append(f"listener.healthCheckConnectPort={port}: local backends have no port {port}; "
                               "the rehearsal checks each backend's own port only")
    return HealthCheck(
        method=(inputs.take("healthCheckMethod", str, ("head", "get")) or "head").upper(),
        uri=inputs.take("healthCheckUri", str) or "/",
        codes="".join(classes),
        interval=inputs.take("healthCheckInterval", int) or 1,
        timeout=inputs.take("healthCheckTimeout", int) or 1,
        rise=inputs.take("healthyThreshold", int) or 1,
        fall=inputs.take("unhealthyThreshold", int) or 1,
        domain=inputs.optional("healthCheckDomain", str),
    )
