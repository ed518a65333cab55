"""Every validation rule: one clear message naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from stackrun import ROOT, TEST_SEED, project_with, run_cli, stack_values

from slbmtls.config import ConfigError, StackSecrets, parse_stack_config

GOOD_SECRETS = StackSecrets(seed=TEST_SEED)


def parse(mutate: Any = None, *, region: object = "cn-hangzhou", secrets: StackSecrets = GOOD_SECRETS) -> Any:
    raw = {k.removeprefix("slb-mtls:"): v for k, v in stack_values("dev").items() if k.startswith("slb-mtls:")}
    raw = copy.deepcopy(raw)
    if mutate:
        mutate(raw)
    return parse_stack_config(raw, region, project="slb-mtls", stack="dev", secrets=secrets)


def put(path: str, value: Any) -> Any:
    """A mutation that sets raw[path] (dotted; creates objects on the way)."""
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return apply


CASES: list[tuple[str, Any, str]] = [
    ("port-high", put("listener.frontendPort", 70000),
     "slb-mtls:listener.frontendPort: 70000 is not allowed; expected an integer 1-65535"),
    ("port-zero", put("listener.backendPort", 0), "slb-mtls:listener.backendPort: 0 is not allowed; expected an integer 1-65535"),
    ("port-text", put("listener.backendPort", "80"), "slb-mtls:listener.backendPort: '80' is not allowed"),
    ("scheduler", put("listener.scheduler", "sch"),
     "slb-mtls:listener.scheduler: 'sch' is not allowed; expected one of rr, wrr, wlc"),
    ("tls-policy", put("listener.tlsCipherPolicy", "tls_cipher_policy_custom"),
     "slb-mtls:listener.tlsCipherPolicy: 'tls_cipher_policy_custom' is not allowed; expected one of tls_cipher_policy_1_0"),
    ("hc-method", put("listener.healthCheck.method", "post"),
     "slb-mtls:listener.healthCheck.method: 'post' is not allowed; expected one of head, get"),
    ("hc-code", put("listener.healthCheck.httpCodes", ["http_2xx", "http_200"]),
     "slb-mtls:listener.healthCheck.httpCodes: ['http_2xx', 'http_200'] is not allowed; expected a non-empty list of http_2xx"),
    ("hc-interval", put("listener.healthCheck.interval", 51),
     "slb-mtls:listener.healthCheck.interval: 51 is not allowed; expected an integer 1-50"),
    ("hc-timeout", put("listener.healthCheck.timeout", 301),
     "slb-mtls:listener.healthCheck.timeout: 301 is not allowed; expected an integer 1-300"),
    ("hc-healthy", put("listener.healthCheck.healthyThreshold", 1),
     "slb-mtls:listener.healthCheck.healthyThreshold: 1 is not allowed; expected an integer 2-10"),
    ("hc-unhealthy", put("listener.healthCheck.unhealthyThreshold", 11),
     "slb-mtls:listener.healthCheck.unhealthyThreshold: 11 is not allowed; expected an integer 2-10"),
    ("hc-uri", put("listener.healthCheck.uri", "health"),
     "slb-mtls:listener.healthCheck.uri: 'health' is not allowed; expected a path of 1-80 printable characters starting with /"),
    ("hc-port", put("listener.healthCheck.connectPort", 65536),
     "slb-mtls:listener.healthCheck.connectPort: 65536 is not allowed; expected an integer 1-65535"),
    ("bandwidth-zero", put("listener.bandwidth", 0),
     "slb-mtls:listener.bandwidth: 0 is not allowed; expected an integer 1-5120 or -1"),
    ("bandwidth-high", put("listener.bandwidth", 6000), "slb-mtls:listener.bandwidth: 6000 is not allowed"),
    ("idle-timeout", put("listener.idleTimeout", 61), "slb-mtls:listener.idleTimeout: 61 is not allowed; expected an integer 1-60"),
    ("weight", put("backends", [{"instanceId": "i-bp1x", "weight": 101}]),
     "slb-mtls:backends[0].weight: 101 is not allowed; expected an integer 0-100"),
    ("backend-type", put("backends", [{"instanceId": "i-bp1x", "type": "vm"}]),
     "slb-mtls:backends[0].type: 'vm' is not allowed; expected one of ecs, eni, eci"),
    ("backend-dup", put("backends", [{"instanceId": "i-bp1x"}, {"instanceId": "i-bp1x"}]),
     "slb-mtls:backends: instance 'i-bp1x' is listed more than once"),
    ("all-weights-zero", lambda raw: (raw.pop("demoBackends"), raw.update(backends=[{"instanceId": "i-1", "weight": 0}])),
     "slb-mtls:backends: every weight is 0, so no backend would get traffic"),
    ("no-backends", lambda raw: raw.pop("demoBackends"),
     "slb-mtls:backends: no backends; list existing instances in slb-mtls:backends or set slb-mtls:demoBackends"),
    ("intranet-no-vswitch", put("loadBalancer.addressType", "intranet"),
     "slb-mtls:loadBalancer.vswitchId: required when addressType is intranet"),
    ("address-type", put("loadBalancer.addressType", "public"),
     "slb-mtls:loadBalancer.addressType: 'public' is not allowed; expected one of internet, intranet"),
    ("charge-type", put("loadBalancer.instanceChargeType", "PayByHour"),
     "slb-mtls:loadBalancer.instanceChargeType: 'PayByHour' is not allowed; expected one of PayByCLCU, PayBySpec"),
    ("delete-protection", put("loadBalancer.deleteProtection", "yes"),
     "slb-mtls:loadBalancer.deleteProtection: 'yes' is not allowed; expected true or false"),
    ("unknown-key", put("listener.schedular", "rr"), "slb-mtls:listener.schedular: unknown setting; known: frontendPort"),
    ("unknown-top", put("clientz", []), "slb-mtls:clientz: unknown setting"),
    ("client-dup", put("clients", [{"name": "alice"}, {"name": "alice"}]),
     "slb-mtls:clients[1].name: 'alice' is used by another client; names must be unique"),
    ("client-name", put("clients", [{"name": "alice smith"}]),
     "slb-mtls:clients[0].name: 'alice smith' is not allowed; expected 1-63 letters, digits"),
    ("key-type", put("clients", [{"name": "alice", "keyType": "dsa-1024"}]),
     "slb-mtls:clients[0].keyType: 'dsa-1024' is not allowed; expected one of rsa-2048, rsa-3072, ec-p256"),
    ("email", put("clients", [{"name": "alice", "email": "alice"}]),
     "slb-mtls:clients[0].email: 'alice' is not allowed; expected an email address"),
    ("revoked-unknown", put("revoked", ["mallory"]),
     "slb-mtls:revoked[0]: 'mallory' is not a configured client; known clients: alice, bob, build-agent"),
    ("revoked-reason", put("revoked", [{"name": "bob", "reason": "grumpy"}]),
     "slb-mtls:revoked[0].reason: 'grumpy' is not allowed; expected one of unspecified, keyCompromise"),
    ("issued-missing", lambda raw: raw["pki"].pop("issued"), "slb-mtls:pki.issued: required; expected a date YYYY-MM-DD"),
    ("issued-bad", put("pki.issued", "27/11/2026"),
     "slb-mtls:pki.issued: '27/11/2026' is not allowed; expected a date YYYY-MM-DD"),
    ("key-bits", put("pki.keyBits", 1024), "slb-mtls:pki.keyBits: 1024 is not allowed; expected one of 2048, 3072, 4096"),
    ("server-days", put("pki.serverDays", 900), "slb-mtls:pki.serverDays: 900 is not allowed; expected an integer 1-825"),
    ("country", put("pki.subject.country", "China"),
     "slb-mtls:pki.subject.country: 'China' is not allowed; expected a two-letter ISO 3166 country code"),
    ("domain", put("domain", "not a domain"), "slb-mtls:domain: 'not a domain' is not allowed; expected a DNS name"),
    ("byo-half", put("serverCertificate", "-----BEGIN CERTIFICATE-----"),
     "slb-mtls:serverPrivateKey: required with serverCertificate; set it with: pulumi config set --secret serverPrivateKey"),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_reports_key_value_and_allowed(mutate: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(mutate)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_region() -> None:
    with pytest.raises(ConfigError, match="alicloud:region: 'cn-atlantis' is not an Alibaba Cloud region; expected one of"):
        parse(region="cn-atlantis")


@pytest.mark.parametrize(("secrets", "message"), [
    (StackSecrets(seed=None), "slb-mtls:pkiSeed: required and not set; create it once per stack with:  "
                              "pulumi config set --secret pkiSeed $(openssl rand -hex 32)"),
    (StackSecrets(seed="abc"), "slb-mtls:pkiSeed: expected 64 hexadecimal characters"),
    (StackSecrets(seed=TEST_SEED, seed_is_secret=False), "slb-mtls:pkiSeed: stored in plain text"),
])
def test_seed_problems(secrets: StackSecrets, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(secrets=secrets)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems
    assert secrets.seed is None or secrets.seed not in str(info.value)


def test_all_problems_are_reported_at_once() -> None:
    def many(raw: dict[str, Any]) -> None:
        put("listener.frontendPort", 0)(raw)
        put("listener.scheduler", "x")(raw)
        put("pki.keyBits", 1)(raw)
    with pytest.raises(ConfigError) as info:
        parse(many)
    assert len(info.value.problems) == 3


def test_the_dev_and_prod_stacks_are_valid() -> None:
    assert parse().listener.scheduler == "rr"


def test_cli_reports_bad_config_without_traceback(tmp_path: Any) -> None:
    stack = (ROOT / "Pulumi.dev.yaml").read_text().replace("scheduler: rr", "scheduler: fastest")
    result = run_cli("plan", "--stack", "dev", project=project_with(tmp_path, {"dev": stack}))
    assert result.returncode == 2
    assert "slb-mtls:listener.scheduler: 'fastest' is not allowed; expected one of rr, wrr, wlc" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_plain_text_server_key_is_refused() -> None:
    secrets = StackSecrets(seed=TEST_SEED, server_private_key="-----BEGIN RSA PRIVATE KEY-----",
                           server_private_key_is_secret=False)
    with pytest.raises(ConfigError) as info:
        parse(put("serverCertificate", "-----BEGIN CERTIFICATE-----"), secrets=secrets)
    assert any(p.startswith("slb-mtls:serverPrivateKey: stored in plain text") for p in info.value.problems)
    assert "BEGIN RSA PRIVATE KEY" not in str(info.value)
