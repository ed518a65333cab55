"""A CLB emulator: what Alibaba Cloud's API would answer to each create, update and delete.

The second, independent line behind config validation: `make plan` runs every registration
through it (slbmtls.plan.PlanMocks), and `make plan-diff` replays an update's steps against it
(slbmtls.replay). It keeps the state that makes CLB refuse things: load balancers, certificates
and the listeners that use them, one listener per (load balancer, port), backends.

Every rule comes from slbmtls.clb; a refusal carries CLB's error code and, where the value came
from config, the stack key that produced it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from slbmtls import clb
from slbmtls.clb import ErrorCode

NS = "slb-mtls"
# Engine input name -> the stack key whose value it carries (what the user edits to fix it).
STACK_KEYS: dict[str, dict[str, str]] = {
    clb.LOAD_BALANCER: {
        "loadBalancerName": "loadBalancer.name", "addressType": "loadBalancer.addressType",
        "vswitchId": "loadBalancer.vswitchId", "instanceChargeType": "loadBalancer.instanceChargeType",
        "internetChargeType": "loadBalancer.internetChargeType",
        "deleteProtection": "loadBalancer.deleteProtection", "tags": "loadBalancer.tags",
    },
    clb.LISTENER: {
        "frontendPort": "listener.frontendPort", "backendPort": "listener.backendPort",
        "bandwidth": "listener.bandwidth", "scheduler": "listener.scheduler",
        "tlsCipherPolicy": "listener.tlsCipherPolicy", "enableHttp2": "listener.http2",
        "idleTimeout": "listener.idleTimeout", "requestTimeout": "listener.requestTimeout",
        "healthCheck": "listener.healthCheck.enabled", "healthCheckUri": "listener.healthCheck.uri",
        "healthCheckMethod": "listener.healthCheck.method", "healthCheckHttpCode": "listener.healthCheck.httpCodes",
        "healthCheckInterval": "listener.healthCheck.interval", "healthCheckTimeout": "listener.healthCheck.timeout",
        "healthyThreshold": "listener.healthCheck.healthyThreshold",
        "unhealthyThreshold": "listener.healthCheck.unhealthyThreshold",
        "healthCheckConnectPort": "listener.healthCheck.connectPort",
        "healthCheckDomain": "listener.healthCheck.domain",
    },
    clb.CA_CERTIFICATE: {"caCertificate": "pki.keyBits", "caCertificateName": "loadBalancer.name"},
    clb.SERVER_CERTIFICATE: {"serverCertificate": "pki.keyBits (or serverCertificate when brought)",
                             "privateKey": "serverPrivateKey", "name": "loadBalancer.name"},
    clb.BACKEND_SERVER: {"backendServers": "backends (with demoBackends.count)"},
}


@functools.lru_cache(maxsize=16)
def _private_key(pem: str) -> PrivateKeyTypes:
    """Loading checks an RSA key's consistency (~70 ms for 2048 bits, more for 4096): a replay meets
    the same server key in every plan that creates it. Pure, so cached; failures are not cached."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


def stack_key(token: str, prop: str) -> str | None:
    key = STACK_KEYS.get(token, {}).get(prop)
    return f"{NS}:{key}" if key else None


@dataclass
class ClbError(Exception):
    """CLB (or the engine) refusing one operation on one resource."""

    code: str
    message: str
    token: str
    name: str
    key: str | None = None

    def __str__(self) -> str:
        where = f" (from {self.key})" if self.key else ""
        return f"{self.name}: {self.code}: {self.message}{where}"


@dataclass
class _Listener:
    id: str
    lb: str
    port: int
    server_cert: str | None
    ca_cert: str | None


@dataclass
class _LoadBalancer:
    id: str
    inputs: dict[str, Any]


@dataclass
class Emulator:
    """CLB's state in one region, and its answers."""

    load_balancers: dict[str, _LoadBalancer] = field(default_factory=dict)
    ca_certificates: dict[str, str] = field(default_factory=dict)  # id -> resource name
    server_certificates: dict[str, str] = field(default_factory=dict)
    listeners: dict[tuple[str, int], _Listener] = field(default_factory=dict)
    backends: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # lb id -> servers
    others: dict[str, str] = field(default_factory=dict)  # id -> token, for VPC/ECS/...
    # Certificate contents are not re-checked when the value is a redacted secret (plan JSON).
    redacted: str = "[secret]"

    # -- the three operations ------------------------------------------------------------------

    def adopt(self, token: str, name: str, rid: str, inputs: Mapping[str, Any]) -> None:
        """A resource that already exists (a deployed plan's state): taken as it is, unchecked."""
        self._store(token, name, rid, inputs)

    def create(self, token: str, name: str, rid: str, inputs: Mapping[str, Any], *,
               keep_refused: bool = False) -> None:
        """`keep_refused` records a refused resource anyway, so that a plan reports each problem once
        rather than again on everything that refers to it."""
        try:
            _Check(token, name, inputs, self).create()
        except ClbError:
            if keep_refused:
                self._store(token, name, rid, inputs)
            raise
        self._store(token, name, rid, inputs)

    def update(self, token: str, name: str, rid: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if not self._exists(token, rid, old):
            raise ClbError("InvalidParameter", f"no such resource {rid} to update", token, name)
        _Check(token, name, new, self).update()
        self._forget(token, rid, old)
        self._store(token, name, rid, new)

    def delete(self, token: str, name: str, rid: str, inputs: Mapping[str, Any]) -> None:
        if token in (clb.CA_CERTIFICATE, clb.SERVER_CERTIFICATE):
            users = [lst.id for lst in self.listeners.values() if rid in (lst.server_cert, lst.ca_cert)]
            if users:
                retry = clb.DELETE_RETRIED_WHEN_IN_USE.get(token, 0)
                after = (f"; the provider retried for {retry // 60} minutes" if retry
                         else "; the provider does not retry this")
                raise _refuse(clb.ERR_CERT_IN_USE, f"certificate {rid} is bound to listener {', '.join(users)}"
                              f"{after}", token, name)
        if token == clb.LOAD_BALANCER and rid in self.load_balancers:
            # CLB removes the instance's listeners and backends with it
            for key in [k for k in self.listeners if k[0] == rid]:
                del self.listeners[key]
            self.backends.pop(rid, None)
        self._forget(token, rid, inputs)

    # -- state ---------------------------------------------------------------------------------

    def _exists(self, token: str, rid: str, inputs: Mapping[str, Any]) -> bool:
        if token == clb.LISTENER:
            return _listener_key(inputs) in self.listeners
        if token == clb.BACKEND_SERVER:
            return rid in self.backends
        return rid in self.load_balancers or rid in self.ca_certificates or rid in self.server_certificates \
            or rid in self.others or token not in STACK_KEYS

    def _store(self, token: str, name: str, rid: str, inputs: Mapping[str, Any]) -> None:
        if token == clb.LOAD_BALANCER:
            self.load_balancers[rid] = _LoadBalancer(rid, dict(inputs))
        elif token == clb.CA_CERTIFICATE:
            self.ca_certificates[rid] = name
        elif token == clb.SERVER_CERTIFICATE:
            self.server_certificates[rid] = name
        elif token == clb.LISTENER:
            lb, port = _listener_key(inputs)
            self.listeners[(lb, port)] = _Listener(rid, lb, port, _str(inputs.get("serverCertificateId")),
                                                   _str(inputs.get("caCertificateId")))
        elif token == clb.BACKEND_SERVER:
            self.backends[str(inputs.get("loadBalancerId"))] = list(inputs.get("backendServers") or [])
        else:
            self.others[rid] = token

    def _forget(self, token: str, rid: str, inputs: Mapping[str, Any]) -> None:
        if token == clb.LISTENER:
            self.listeners.pop(_listener_key(inputs), None)
        elif token == clb.BACKEND_SERVER:
            self.backends.pop(str(inputs.get("loadBalancerId")), None)
        else:
            self.load_balancers.pop(rid, None)
            for table in (self.ca_certificates, self.server_certificates, self.others):
                table.pop(rid, None)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _listener_key(inputs: Mapping[str, Any]) -> tuple[str, int]:
    port = inputs.get("frontendPort")
    return str(inputs.get("loadBalancerId")), port if isinstance(port, int) else -1


def _refuse(error: ErrorCode, message: str, token: str, name: str, prop: str | None = None) -> ClbError:
    return ClbError(error.code, message, token, name, stack_key(token, prop) if prop else None)


# -- the checks, one resource at a time ------------------------------------------------------------


class _Check:
    def __init__(self, token: str, name: str, inputs: Mapping[str, Any], emu: Emulator) -> None:
        self.token, self.name, self.inputs, self.emu = token, name, inputs, emu

    def create(self) -> None:
        handler: dict[str, Callable[[bool], None]] = {
            clb.LOAD_BALANCER: self.load_balancer, clb.CA_CERTIFICATE: self.ca_certificate,
            clb.SERVER_CERTIFICATE: self.server_certificate, clb.LISTENER: self.listener,
            clb.BACKEND_SERVER: self.backend_server,
        }
        if self.token in handler:
            handler[self.token](True)

    def update(self) -> None:
        handler: dict[str, Callable[[bool], None]] = {
            clb.LOAD_BALANCER: self.load_balancer, clb.LISTENER: self.listener,
            clb.BACKEND_SERVER: self.backend_server, clb.CA_CERTIFICATE: self.ca_certificate,
            clb.SERVER_CERTIFICATE: self.server_certificate,
        }
        if self.token in handler:
            handler[self.token](False)

    # helpers

    def refuse(self, prop: str | None, message: str, error: ErrorCode = clb.ERR_INVALID_PARAMETER) -> ClbError:
        return _refuse(error, message, self.token, self.name, prop)

    def rule(self, prop: str, rule: clb.IntRange | clb.Choice | clb.Pattern, *, required: bool = False) -> None:
        value = self.inputs.get(prop)
        if value is None and not required:
            return
        if not rule.allows(value):
            raise self.refuse(prop, f"{prop} {value!r} is not allowed; expected {rule.describe()} "
                                    f"({rule.source})")

    # load balancer

    def load_balancer(self, creating: bool) -> None:
        i = self.inputs
        self.rule("loadBalancerName", clb.LOAD_BALANCER_NAME)
        self.rule("addressType", clb.ADDRESS_TYPES)
        if i.get("addressType") == "intranet" and not i.get("vswitchId"):
            raise self.refuse("vswitchId", "an intranet load balancer needs a vswitchId")
        charge = i.get("instanceChargeType", "PayBySpec")  # the API's default
        if charge == "PayBySpec" and creating:
            if not i.get("loadBalancerSpec"):
                raise self.refuse("instanceChargeType", "PayBySpec without a spec is a shared-performance "
                                  "instance, no longer sold; use PayByCLCU", clb.ERR_SHARED_HALTED)
            raise self.refuse("instanceChargeType", "pay-by-spec instances are no longer sold (2025-06-01); "
                              "use PayByCLCU")
        self.rule("instanceChargeType", clb.INSTANCE_CHARGE_TYPES)
        internet = i.get("internetChargeType")
        if internet is not None and i.get("addressType", "internet") == "internet":
            if charge == "PayByCLCU" and internet == "PayByBandwidth":
                raise self.refuse("internetChargeType", "PayByCLCU cannot be combined with PayByBandwidth; "
                                  f"expected {clb.INTERNET_CHARGE_TYPES.describe()}")
            self.rule("internetChargeType", clb.INTERNET_CHARGE_TYPES)
        if i.get("paymentType", clb.PAYMENT_TYPE) != clb.PAYMENT_TYPE:
            raise self.refuse("paymentType", f"paymentType {i.get('paymentType')!r}; expected {clb.PAYMENT_TYPE}")
        self.rule("deleteProtection", clb.Choice(("on", "off"), "API CreateLoadBalancer DeleteProtection"))
        tags = i.get("tags") or {}
        if isinstance(tags, dict):
            if len(tags) > clb.MAX_TAGS:
                raise self.refuse("tags", f"{len(tags)} tags; at most {clb.MAX_TAGS} per load balancer "
                                  "(two are the program's own: managed-by, stack)")
            for key, value in tags.items():
                if not clb.TAG_KEY.allows(key):
                    raise self.refuse("tags", f"tag key {key!r}: expected {clb.TAG_KEY.describe()}")
                if not clb.TAG_VALUE.allows(value):
                    raise self.refuse("tags", f"tag {key!r} value {value!r}: expected {clb.TAG_VALUE.describe()}")

    # certificates

    def ca_certificate(self, creating: bool) -> None:
        self.rule("caCertificateName", clb.CERTIFICATE_NAME)
        if creating:
            self.pem_certificates("caCertificate")

    def server_certificate(self, creating: bool) -> None:
        self.rule("name", clb.CERTIFICATE_NAME)
        if not creating:
            return
        chain = self.pem_certificates("serverCertificate")
        key_pem = self.inputs.get("privateKey")
        if key_pem == self.emu.redacted or chain is None:
            return  # a redacted plan: the mock run already checked the key
        if not isinstance(key_pem, str) or not key_pem.strip():
            raise self.refuse("privateKey", "no private key", clb.ERR_KEY_FORMAT)
        if "ENCRYPTED" in key_pem:
            raise self.refuse("privateKey", "the private key is encrypted; CLB takes it unencrypted",
                              clb.ERR_PRIVATE_KEY_ENCRYPTED)
        self.pem_layout("privateKey", key_pem, clb.ERR_KEY_FORMAT)
        blocks = re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", key_pem)
        if blocks != ["RSA PRIVATE KEY"]:
            raise self.refuse("privateKey", f"PEM blocks {blocks}; CLB takes exactly one unencrypted PKCS#1 "
                              "'RSA PRIVATE KEY'", clb.ERR_KEY_FORMAT)
        try:
            key = _private_key(key_pem)
        except (ValueError, TypeError) as exc:
            raise self.refuse("privateKey", f"not a readable RSA key ({exc})", clb.ERR_KEY_FORMAT) from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != chain[0].public_key():
            raise self.refuse("privateKey", "the private key does not match the first certificate of the chain",
                              clb.ERR_CERT_KEY_MISMATCH)

    def pem_layout(self, prop: str, text: str, error: ErrorCode) -> None:
        """PEM only, 64 characters a line, no blank lines (CLB's certificate requirements)."""
        lines = text.strip("\n").split("\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                raise self.refuse(prop, f"blank line {n} in the PEM; CLB refuses blank lines", error)
            if not line.startswith("-----") and len(line) > 64:
                raise self.refuse(prop, f"line {n} has {len(line)} characters; CLB takes 64 per line", error)

    def pem_certificates(self, prop: str) -> list[x509.Certificate] | None:
        text = self.inputs.get(prop)
        if text == self.emu.redacted:
            return None
        if not isinstance(text, str) or "-----BEGIN CERTIFICATE-----" not in text:
            raise self.refuse(prop, "not a PEM certificate")
        self.pem_layout(prop, text, clb.ERR_INVALID_PARAMETER)
        kinds = set(re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text))
        if kinds != {"CERTIFICATE"}:
            raise self.refuse(prop, f"PEM blocks {sorted(kinds)}; only certificates belong here "
                              "(no DH PARAMETERS, no keys)")
        try:
            chain = x509.load_pem_x509_certificates(text.encode())
        except ValueError as exc:
            raise self.refuse(prop, f"unreadable certificate ({exc})") from None
        key = chain[0].public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise self.refuse(prop, f"a {type(key).__name__.removesuffix('PublicKey').lstrip('_')} key; CLB "
                              f"takes RSA {' or '.join(map(str, clb.UPLOAD_RSA_BITS))} ({clb.UPLOAD_RSA_BITS_SOURCE})")
        if key.key_size not in clb.UPLOAD_RSA_BITS:
            raise self.refuse(prop, f"RSA {key.key_size}-bit key; CLB takes RSA "
                              f"{' or '.join(map(str, clb.UPLOAD_RSA_BITS))} ({clb.UPLOAD_RSA_BITS_SOURCE})")
        return chain

    # listener

    def listener(self, creating: bool) -> None:
        i = self.inputs
        lb_id = str(i.get("loadBalancerId"))
        lb = self.emu.load_balancers.get(lb_id)
        if lb is None:
            raise self.refuse(None, f"load balancer {lb_id} does not exist", clb.ERR_LB_NOT_FOUND)
        if i.get("protocol") != "https":
            raise self.refuse("protocol", f"protocol {i.get('protocol')!r}; this listener is https")
        self.rule("frontendPort", clb.PORT, required=True)
        self.rule("backendPort", clb.PORT, required=True)
        if creating and _listener_key(i) in self.emu.listeners:
            raise self.refuse("frontendPort", f"load balancer {lb_id} already has a listener on port "
                              f"{i.get('frontendPort')}", clb.ERR_LISTENER_EXISTS)
        self.rule("bandwidth", clb.BANDWIDTH, required=True)
        metered = lb.inputs.get("internetChargeType", "PayByTraffic")
        if metered != "PayByBandwidth" and i.get("bandwidth") != clb.BANDWIDTH_PAY_BY_TRAFFIC:
            raise self.refuse("bandwidth", f"bandwidth {i.get('bandwidth')}: an instance metered by traffic "
                              f"takes {clb.BANDWIDTH_PAY_BY_TRAFFIC} (API CreateLoadBalancerHTTPSListener Bandwidth)")
        self.rule("scheduler", clb.SCHEDULERS)
        self.rule("tlsCipherPolicy", clb.Choice(tuple(clb.TLS_POLICIES), clb.TLS_POLICY_SOURCE))
        self.rule("enableHttp2", clb.Choice(("on", "off"), "API CreateLoadBalancerHTTPSListener EnableHttp2"))
        self.rule("stickySession", clb.Choice(("on", "off"), "API CreateLoadBalancerHTTPSListener StickySession"))
        self.rule("idleTimeout", clb.IDLE_TIMEOUT)
        self.rule("requestTimeout", clb.REQUEST_TIMEOUT)
        self.health_check()
        for prop, table, error in (("serverCertificateId", self.emu.server_certificates, clb.ERR_SERVER_CERT_NOT_FOUND),
                                   ("caCertificateId", self.emu.ca_certificates, clb.ERR_CA_CERT_NOT_FOUND)):
            cert = i.get(prop)
            if prop == "serverCertificateId" and not cert:
                raise self.refuse(prop, "an https listener needs a server certificate")
            if cert and cert not in table:
                raise self.refuse(None, f"{prop} {cert} does not exist (deleted, or never uploaded)", error)

    def health_check(self) -> None:
        i = self.inputs
        self.rule("healthCheck", clb.Choice(("on", "off"), "API CreateLoadBalancerHTTPSListener HealthCheck"))
        if i.get("healthCheck", "on") != "on":
            return
        self.rule("healthCheckUri", clb.HEALTH_URI)
        self.rule("healthCheckMethod", clb.HEALTH_METHODS)
        codes = i.get("healthCheckHttpCode")
        if codes is not None and (not isinstance(codes, str)
                                  or not all(clb.HEALTH_HTTP_CODES.allows(c) for c in codes.split(","))):
            raise self.refuse("healthCheckHttpCode", f"healthCheckHttpCode {codes!r}; expected a comma list of "
                              f"{', '.join(clb.HEALTH_HTTP_CODES.values)} ({clb.HEALTH_HTTP_CODES.source})")
        self.rule("healthCheckInterval", clb.HEALTH_INTERVAL)
        self.rule("healthCheckTimeout", clb.HEALTH_TIMEOUT)
        self.rule("healthyThreshold", clb.HEALTH_THRESHOLD)
        self.rule("unhealthyThreshold", clb.HEALTH_THRESHOLD)
        self.rule("healthCheckConnectPort", clb.HEALTH_CONNECT_PORT)
        self.rule("healthCheckDomain", clb.HEALTH_DOMAIN)
        timeout, interval = i.get("healthCheckTimeout", 5), i.get("healthCheckInterval", 2)  # TF defaults
        if isinstance(timeout, int) and isinstance(interval, int) and timeout < interval:
            raise self.refuse("healthCheckTimeout", f"healthCheckTimeout {timeout} is below the interval "
                              f"{interval}: CLB would silently use {interval}; set timeout >= interval "
                              f"({clb.HEALTH_TIMEOUT_MIN_IS_INTERVAL_SOURCE})")

    # backends

    def backend_server(self, creating: bool) -> None:
        i = self.inputs
        lb_id = str(i.get("loadBalancerId"))
        if lb_id not in self.emu.load_balancers:
            raise self.refuse(None, f"load balancer {lb_id} does not exist", clb.ERR_LB_NOT_FOUND)
        servers = i.get("backendServers") or []
        if not isinstance(servers, list):
            raise self.refuse("backendServers", "backendServers is not a list")
        if creating and len(servers) > clb.MAX_BACKENDS_PER_CALL:
            raise self.refuse("backendServers", f"{len(servers)} servers in one AddBackendServers call; CLB "
                              f"takes at most {clb.MAX_BACKENDS_PER_CALL} and the provider sends them all at create")
        seen: set[str] = set()
        for n, server in enumerate(servers):
            server_id = server.get("serverId") if isinstance(server, dict) else None
            if not clb.BACKEND_ID.allows(server_id):
                raise self.refuse("backendServers", f"backendServers[{n}].serverId {server_id!r}: expected "
                                  f"{clb.BACKEND_ID.describe()}")
            if server_id in seen:
                raise self.refuse("backendServers", f"backendServers[{n}]: {server_id} is listed twice")
            seen.add(str(server_id))
            weight, kind = server.get("weight"), server.get("type", "ecs")
            if not clb.BACKEND_WEIGHT.allows(weight):
                raise self.refuse("backendServers", f"backendServers[{n}].weight {weight!r}: expected "
                                  f"{clb.BACKEND_WEIGHT.describe()}")
            if not clb.BACKEND_TYPES.allows(kind):
                raise self.refuse("backendServers", f"backendServers[{n}].type {kind!r}: expected "
                                  f"{clb.BACKEND_TYPES.describe()}")
