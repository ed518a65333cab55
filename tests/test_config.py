"""Every validation rule: one clear message naming the key, the value and what is allowed."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from typing import Any

import pytest
from stackrun import ROOT, TEST_SEED, project_with, run_cli, stack_values

from slbmtls.config import ConfigError, StackSecrets, parse_stack_config

GOOD_SECRETS = StackSecrets(seed=TEST_SEED)
TODAY = dt.date(2026, 11, 27)  # the stacks' pki.issued: "today" in these tests


def parse(mutate: Any = None, *, region: object = "cn-hangzhou", secrets: StackSecrets = GOOD_SECRETS) -> Any:
    raw = {k.removeprefix("slb-mtls:"): v for k, v in stack_values("dev").items() if k.startswith("slb-mtls:")}
    raw = copy.deepcopy(raw)
    if mutate:
        mutate(raw)
    return parse_stack_config(raw, region, project="slb-mtls", stack="dev", secrets=secrets, today=TODAY)


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
    ("port-bool", put("listener.backendPort", True), "slb-mtls:listener.backendPort: True is not allowed"),
    # sch/tch/qch are CLB's TCP/UDP schedulers
    ("scheduler", put("listener.scheduler", "sch"),
     "slb-mtls:listener.scheduler: 'sch' is not allowed; expected one of wrr, rr, wlc"),
    ("tls-policy", put("listener.tlsCipherPolicy", "tls_cipher_policy_custom"),
     "slb-mtls:listener.tlsCipherPolicy: 'tls_cipher_policy_custom' is not allowed; expected one of tls_cipher_policy_1_2,"),
    ("tls-policy-weak", put("listener.tlsCipherPolicy", "tls_cipher_policy_1_0"),
     "slb-mtls:listener.tlsCipherPolicy: 'tls_cipher_policy_1_0' is not allowed"),
    ("hc-method", put("listener.healthCheck.method", "post"),
     "slb-mtls:listener.healthCheck.method: 'post' is not allowed; expected one of head, get"),
    ("hc-code", put("listener.healthCheck.httpCodes", ["http_2xx", "http_200"]),
     "slb-mtls:listener.healthCheck.httpCodes[1]: 'http_200' is not allowed; expected one of http_2xx"),
    ("hc-codes-empty", put("listener.healthCheck.httpCodes", []),
     "slb-mtls:listener.healthCheck.httpCodes: [] is not allowed"),
    ("hc-interval", put("listener.healthCheck.interval", 51),
     "slb-mtls:listener.healthCheck.interval: 51 is not allowed; expected an integer 1-50"),
    ("hc-timeout", put("listener.healthCheck.timeout", 301),
     "slb-mtls:listener.healthCheck.timeout: 301 is not allowed; expected an integer 1-300"),
    # CLB replaces a timeout shorter than the interval by the interval: refuse rather than mislead
    ("hc-timeout-below-interval", lambda raw: (put("listener.healthCheck.interval", 5)(raw),
                                               put("listener.healthCheck.timeout", 3)(raw)),
     "slb-mtls:listener.healthCheck.timeout: 3 is not allowed; expected at least healthCheck.interval (5)"),
    ("hc-healthy", put("listener.healthCheck.healthyThreshold", 1),
     "slb-mtls:listener.healthCheck.healthyThreshold: 1 is not allowed; expected an integer 2-10"),
    ("hc-unhealthy", put("listener.healthCheck.unhealthyThreshold", 11),
     "slb-mtls:listener.healthCheck.unhealthyThreshold: 11 is not allowed; expected an integer 2-10"),
    ("hc-uri", put("listener.healthCheck.uri", "health"),
     "slb-mtls:listener.healthCheck.uri: 'health' is not allowed; expected a path of 1-80 characters"),
    ("hc-uri-chars", put("listener.healthCheck.uri", "/health check"),
     "slb-mtls:listener.healthCheck.uri: '/health check' is not allowed"),
    ("hc-uri-newline", put("listener.healthCheck.uri", "/healthz\n"),
     "slb-mtls:listener.healthCheck.uri: '/healthz\\n' is not allowed"),
    ("hc-domain-wildcard", put("listener.healthCheck.domain", "*.example.com"),
     "slb-mtls:listener.healthCheck.domain: '*.example.com' is not allowed; expected 1-80 letters"),
    ("hc-domain-long", put("listener.healthCheck.domain", "a" * 81),
     "slb-mtls:listener.healthCheck.domain: 'aaaa"),
    ("hc-port", put("listener.healthCheck.connectPort", 65536),
     "slb-mtls:listener.healthCheck.connectPort: 65536 is not allowed; expected an integer 1-65535"),
    ("bandwidth-zero", put("listener.bandwidth", 0),
     "slb-mtls:listener.bandwidth: 0 is not allowed; expected an integer 1-1000 or -1"),
    ("bandwidth-high", put("listener.bandwidth", 5120), "slb-mtls:listener.bandwidth: 5120 is not allowed"),
    ("bandwidth-pay-by-traffic", put("listener.bandwidth", 100),
     "slb-mtls:listener.bandwidth: 100 is not allowed; expected -1 for an internet load balancer billed PayByTraffic"),
    ("idle-timeout", put("listener.idleTimeout", 61), "slb-mtls:listener.idleTimeout: 61 is not allowed; expected an integer 1-60"),
    ("weight", put("backends", [{"instanceId": "i-bp1x", "weight": 101}]),
     "slb-mtls:backends[0].weight: 101 is not allowed; expected an integer 0-100"),
    ("backend-type", put("backends", [{"instanceId": "i-bp1x", "type": "vm"}]),
     "slb-mtls:backends[0].type: 'vm' is not allowed; expected one of ecs, eni, eci"),
    ("backend-id", put("backends", [{"instanceId": "web-1"}]),
     "slb-mtls:backends[0].instanceId: 'web-1' is not allowed; expected an instance, ENI or ECI id"),
    ("backend-dup", put("backends", [{"instanceId": "i-bp1x"}, {"instanceId": "i-bp1x"}]),
     "slb-mtls:backends: instance 'i-bp1x' is listed more than once"),
    # API AddBackendServers: at most 20 per request, and the provider sends them all in one
    ("backends-over-20", put("backends", [{"instanceId": f"i-bp1{n:03d}"} for n in range(19)]),
     "slb-mtls:backends: '21 backends (with demoBackends.count)' is not allowed; expected at most 20"),
    ("all-weights-zero", lambda raw: (raw.pop("demoBackends"), raw.update(backends=[{"instanceId": "i-1", "weight": 0}])),
     "slb-mtls:backends: every weight is 0, so no backend would get traffic"),
    ("no-backends", lambda raw: raw.pop("demoBackends"),
     "slb-mtls:backends: no backends; list existing instances in slb-mtls:backends or set slb-mtls:demoBackends"),
    ("intranet-no-vswitch", put("loadBalancer.addressType", "intranet"),
     "slb-mtls:loadBalancer.vswitchId: required when addressType is intranet"),
    ("address-type", put("loadBalancer.addressType", "public"),
     "slb-mtls:loadBalancer.addressType: 'public' is not allowed; expected one of internet, intranet"),
    ("charge-type", put("loadBalancer.instanceChargeType", "PayBySpec"),
     "slb-mtls:loadBalancer.instanceChargeType: 'PayBySpec' is not allowed; expected one of PayByCLCU"),
    ("clcu-with-bandwidth", put("loadBalancer.internetChargeType", "PayByBandwidth"),
     "slb-mtls:loadBalancer.internetChargeType: 'PayByBandwidth' is not allowed; expected one of PayByTraffic"),
    ("spec-gone", put("loadBalancer.spec", "slb.s1.small"), "slb-mtls:loadBalancer.spec: unknown setting"),
    ("lb-name-digit", put("loadBalancer.name", "1st-lb"),
     "slb-mtls:loadBalancer.name: '1st-lb' is not allowed; expected 1-80 letters, digits, '.', '_' or '-', starting with a letter"),
    ("lb-name-slash", put("loadBalancer.name", "team/lb"), "slb-mtls:loadBalancer.name: 'team/lb' is not allowed"),
    ("lb-name-long", put("loadBalancer.name", "a" * 81), "slb-mtls:loadBalancer.name: 'aaaa"),
    ("tags-over", put("loadBalancer.tags", {f"t{n}": "v" for n in range(9)}),
     "slb-mtls:loadBalancer.tags: '9 tags' is not allowed; expected at most 8"),
    ("tags-ours", put("loadBalancer.tags", {"stack": "x"}), "slb-mtls:loadBalancer.tags: ['stack'] is not allowed"),
    ("tag-key-aliyun", put("loadBalancer.tags", {"aliyun-x": "v"}),
     "slb-mtls:loadBalancer.tags.aliyun-x: 'aliyun-x' is not allowed; expected 1-64 characters, not starting with"),
    ("delete-protection", put("loadBalancer.deleteProtection", "yes"),
     "slb-mtls:loadBalancer.deleteProtection: 'yes' is not allowed; expected true or false"),
    ("unknown-key", put("listener.schedular", "rr"), "slb-mtls:listener.schedular: unknown setting; known: frontendPort"),
    ("unknown-top", put("clientz", []), "slb-mtls:clientz: unknown setting"),
    ("not-an-object", put("listener", "fast"), "slb-mtls:listener: 'fast' is not allowed; expected an object with keys frontendPort"),
    ("client-dup", put("clients", [{"name": "alice"}, {"name": "alice"}]),
     "slb-mtls:clients[1].name: 'alice' is used by another client"),
    ("client-dup-case", put("clients", [{"name": "alice"}, {"name": "Alice"}]),
     "slb-mtls:clients[1].name: 'Alice' is used by another client (clients[0]; names are compared ignoring case)"),
    ("client-name", put("clients", [{"name": "alice smith"}]),
     "slb-mtls:clients[0].name: 'alice smith' is not allowed; expected 1-63 letters, digits"),
    ("client-name-newline", put("clients", [{"name": "alice\n"}]), "slb-mtls:clients[0].name: 'alice\\n' is not allowed"),
    ("client-name-bidi", put("clients", [{"name": "alice\u202e"}]), "slb-mtls:clients[0].name: 'alice\\u202e' is not allowed"),
    ("key-type", put("clients", [{"name": "alice", "keyType": "dsa-1024"}]),
     "slb-mtls:clients[0].keyType: 'dsa-1024' is not allowed; expected one of rsa-2048, rsa-3072, rsa-4096, ec-p256"),
    ("email", put("clients", [{"name": "alice", "email": "alice"}]),
     "slb-mtls:clients[0].email: 'alice' is not allowed; expected an ASCII email address"),
    ("email-non-ascii", put("clients", [{"name": "alice", "email": "älice@example.com"}]),
     "slb-mtls:clients[0].email: 'älice@example.com' is not allowed; expected an ASCII email address"),
    ("revoked-details-while-listed", put("revoked", [{"name": "bob", "keyType": "ec-p256"}]),
     "slb-mtls:revoked[0]: 'bob' is still in slb-mtls:clients, which holds its details; remove keyType here"),
    ("revoked-twice", put("revoked", ["bob", "bob"]), "slb-mtls:revoked[1]: 'bob' is revoked twice"),
    ("crl-days-gone", put("pki.crlDays", 30),
     "slb-mtls:pki.crlDays: 30 is not allowed; expected nothing: CRLs now stay valid until the CA's last day"),
    ("revoked-reason", put("revoked", [{"name": "bob", "reason": "grumpy"}]),
     "slb-mtls:revoked[0].reason: 'grumpy' is not allowed; expected one of unspecified, keyCompromise"),
    ("revoked-future", put("revoked", [{"name": "bob", "date": "2026-12-01"}]),
     "slb-mtls:revoked[0].date: '2026-12-01' is in the future; expected a date on or before 2026-11-27 (dates are UTC days"),
    ("revoked-before-ca", put("revoked", [{"name": "bob", "date": "2026-01-01"}]),
     "slb-mtls:revoked[0].date: '2026-01-01' is before the CA's first day 2026-11-27"),
    ("issued-missing", lambda raw: raw["pki"].pop("issued"), "slb-mtls:pki.issued: required; expected a date YYYY-MM-DD"),
    ("issued-bad", put("pki.issued", "27/11/2026"),
     "slb-mtls:pki.issued: '27/11/2026' is not allowed; expected a date YYYY-MM-DD"),
    ("issued-future", put("pki.issued", "2026-11-28"), "slb-mtls:pki.issued: '2026-11-28' is in the future"),
    ("issued-far-future", put("pki.issued", "9999-12-31"), "slb-mtls:pki.issued: '9999-12-31' is in the future"),
    ("issued-ancient", put("pki.issued", "0001-01-01"),
     "slb-mtls:pki.issued: '0001-01-01' is not allowed; expected a date YYYY-MM-DD from 2000-01-01 on"),
    ("issued-datetime", put("pki.issued", dt.datetime(2026, 11, 1, 8, 0)),
     "slb-mtls:pki.issued: datetime.datetime(2026, 11, 1, 8, 0) is not allowed; expected a date YYYY-MM-DD without a time"),
    ("client-issued-future", put("clients", [{"name": "alice", "issued": "2027-01-01"}]),
     "slb-mtls:clients[0].issued: '2027-01-01' is in the future"),
    # CLB takes uploaded RSA certificates of 1024, 2048 or 4096 bits only (and 1024 is broken)
    ("key-bits", put("pki.keyBits", 3072), "slb-mtls:pki.keyBits: 3072 is not allowed; expected one of 2048, 4096"),
    ("key-bits-1024", put("pki.keyBits", 1024), "slb-mtls:pki.keyBits: 1024 is not allowed; expected one of 2048, 4096"),
    ("ca-days-short-server", put("pki.caDays", 30),
     "slb-mtls:pki.serverDays: 397 is not allowed; expected at most 30: the certificate must end by the CA's last day"),
    ("ca-days-short-client", put("pki.caDays", 30), "slb-mtls:pki.clientDays: 365 is not allowed; expected at most 30"),
    ("client-days-past-ca", lambda raw: (put("pki.caDays", 1000)(raw), put("clients", [{"name": "alice", "days": 3650}])(raw)),
     "slb-mtls:clients[0].days: 3650 is not allowed; expected at most"),
    ("server-days", put("pki.serverDays", 900), "slb-mtls:pki.serverDays: 900 is not allowed; expected an integer 1-825"),
    ("country", put("pki.subject.country", "China"),
     "slb-mtls:pki.subject.country: 'China' is not allowed; expected a two-letter ISO 3166 country code"),
    ("common-name-long", put("pki.subject.commonName", "C" * 49),
     "slb-mtls:pki.subject.commonName: 'CCCC"),
    ("organization-long", put("pki.subject.organization", "O" * 65), "slb-mtls:pki.subject.organization: 'OOOO"),
    ("default-common-name-long", put("pki.subject.organization", "O" * 60),
     "slb-mtls:pki.subject.commonName: required when the default"),
    ("domain", put("domain", "not a domain"), "slb-mtls:domain: 'not a domain' is not allowed; expected a lower-case DNS name"),
    ("domain-wildcard", put("domain", "*.example.com"), "slb-mtls:domain: '*.example.com' is not allowed"),
    ("domain-long", put("domain", "a" * 60 + ".example.com"), "slb-mtls:domain: 'aaaa"),
    ("alt-name", put("pki.serverAltNames", ["ok.example.com", "bad name"]),
     "slb-mtls:pki.serverAltNames[1]: 'bad name' is not allowed; expected a lower-case DNS name"),
    ("byo-half", put("serverCertificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
     "slb-mtls:serverPrivateKey: required with serverCertificate; set it with: pulumi config set --secret serverPrivateKey"),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_reports_key_value_and_allowed(mutate: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(mutate)
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_region_missing() -> None:
    with pytest.raises(ConfigError, match="alicloud:region: not set; expected one of"):
        parse(region=None)


def test_region() -> None:
    with pytest.raises(ConfigError, match="alicloud:region: 'cn-atlantis' is not an Alibaba Cloud region; expected one of"):
        parse(region="cn-atlantis")


@pytest.mark.parametrize(("secrets", "message"), [
    (StackSecrets(seed=None), "slb-mtls:pkiSeed: required and not set; create it once per stack with:  "
                              "openssl rand -hex 32 | pulumi config set --secret pkiSeed"),
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


def test_rules_between_keys_are_reported_with_field_errors() -> None:
    def many(raw: dict[str, Any]) -> None:
        put("pki.keyBits", 3072)(raw)  # a field error in another section
        put("listener.healthCheck.interval", 5)(raw)
        put("listener.healthCheck.timeout", 3)(raw)
        put("clients", [{"name": "alice"}, {"name": "Alice"}, {"name": "bad name"}])(raw)
    with pytest.raises(ConfigError) as info:
        parse(many)
    text = "\n".join(info.value.problems)
    assert "slb-mtls:pki.keyBits: 3072 is not allowed" in text
    assert "slb-mtls:clients[2].name: 'bad name' is not allowed" in text
    assert "slb-mtls:listener.healthCheck.timeout: 3 is not allowed; expected at least healthCheck.interval" in text
    assert "slb-mtls:clients[1].name: 'Alice' is used by another client" in text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_dev_and_prod_stacks_are_valid(stack: str) -> None:
    raw = {k.removeprefix("slb-mtls:"): v for k, v in stack_values(stack).items() if k.startswith("slb-mtls:")}
    config = parse_stack_config(raw, "cn-hangzhou", project="slb-mtls", stack=stack, secrets=GOOD_SECRETS, today=TODAY)
    assert config.load_balancer_name == {"dev": "slb-mtls-dev", "prod": "slb-mtls-prod"}[stack]
    assert config.pki.ca_key_type.rsa_bits in (2048, 4096)  # what CLB accepts for uploads


def test_a_revoked_client_may_leave_clients_keeping_its_details() -> None:
    def departed(raw: dict[str, Any]) -> None:
        raw["clients"] = [c for c in raw["clients"] if c["name"] != "alice"]
        raw["revoked"] = [{"name": "alice", "email": "alice@example.com", "reason": "affiliationChanged"}]
    config = parse(departed)
    (revocation,) = config.pki.revocations
    assert revocation.client is not None and revocation.client.email == "alice@example.com"
    assert revocation.client.validity == config.pki.clients[0].validity  # same defaults as clients
    listed = parse(put("revoked", ["bob"]))
    assert listed.pki.revocations[0].client is None  # clients holds its details


def test_unquoted_yaml_dates_are_dates() -> None:
    config = parse(put("pki.issued", dt.date(2026, 11, 1)))
    assert config.pki.ca_validity.issued == dt.date(2026, 11, 1)


def test_readme_key_table_is_generated_from_the_declaration() -> None:
    from slbmtls.config import reference_markdown

    assert reference_markdown() in (ROOT / "README.md").read_text()


def test_cli_reports_bad_config_without_traceback(tmp_path: Any) -> None:
    stack = (ROOT / "Pulumi.dev.yaml").read_text().replace("scheduler: rr", "scheduler: fastest")
    result = run_cli("plan", "--stack", "dev", project=project_with(tmp_path, {"dev": stack}))
    assert result.returncode == 2
    assert "slb-mtls:listener.scheduler: 'fastest' is not allowed; expected one of wrr, rr, wlc" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_plain_text_passphrase_is_refused() -> None:
    secrets = StackSecrets(seed=TEST_SEED, server_private_key="-----BEGIN RSA PRIVATE KEY-----",
                           server_private_key_passphrase="hunter2-but-longer", server_private_key_passphrase_is_secret=False)
    with pytest.raises(ConfigError) as info:
        parse(put("serverCertificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), secrets=secrets)
    assert any(p.startswith("slb-mtls:serverPrivateKeyPassphrase: stored in plain text") for p in info.value.problems)
    assert "hunter2" not in str(info.value)


def test_plain_text_server_key_is_refused() -> None:
    secrets = StackSecrets(seed=TEST_SEED, server_private_key="-----BEGIN RSA PRIVATE KEY-----",
                           server_private_key_is_secret=False)
    with pytest.raises(ConfigError) as info:
        parse(put("serverCertificate", "-----BEGIN CERTIFICATE-----"), secrets=secrets)
    assert any(p.startswith("slb-mtls:serverPrivateKey: stored in plain text") for p in info.value.problems)
    assert "BEGIN RSA PRIVATE KEY" not in str(info.value)


def test_the_same_values_are_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline tools validate a stack's config for their head start, and the program validates
    it again as the engine hands it over: the same values give the same config without a second
    validation; any difference in what validation reads is validated afresh; a refusal is never kept."""
    import slbmtls.config as config

    validated: list[object] = []
    real = config._parse_stack_config

    def counting(*args: Any, **kwargs: Any) -> Any:
        validated.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(config, "_parse_stack_config", counting)
    monkeypatch.setattr(config, "_ACCEPTED", {})
    raw = {k.split(":", 1)[1]: v for k, v in stack_values().items() if k.startswith("slb-mtls:")}
    first = parse_stack_config(raw, "cn-hangzhou", project="slb-mtls", stack="dev", secrets=GOOD_SECRETS, today=TODAY)
    reordered = dict(reversed(copy.deepcopy(raw).items()))  # the engine's order is not the file's
    # how an unset value would have been stored is not read
    engine_secrets = StackSecrets(seed=TEST_SEED, server_private_key_is_secret=False)
    again = parse_stack_config(reordered, "cn-hangzhou", project="slb-mtls", stack="dev", secrets=engine_secrets,
                               today=TODAY)
    assert again is first and len(validated) == 1
    variants = [
        ({**raw, "domain": "other.example.com"}, "cn-hangzhou", "dev", GOOD_SECRETS, TODAY),
        (raw, "cn-shanghai", "dev", GOOD_SECRETS, TODAY),
        (raw, "cn-hangzhou", "prod", GOOD_SECRETS, TODAY),
        (raw, "cn-hangzhou", "dev", StackSecrets(seed=TEST_SEED, seed_is_secret=False), TODAY),
        (raw, "cn-hangzhou", "dev", GOOD_SECRETS, TODAY + dt.timedelta(days=1)),
        ({**raw, "listener": {**raw["listener"], "frontendPort": "443"}}, "cn-hangzhou", "dev", GOOD_SECRETS, TODAY),
    ]
    for values, region, stack, secrets, today in variants:
        with contextlib.suppress(ConfigError):
            parse_stack_config(values, region, project="slb-mtls", stack=stack, secrets=secrets, today=today)
    assert len(validated) == 1 + len(variants)
    # keys JSON writes alike ("true" and True): a text key is accepted, the others refused, every time
    for key in ("true", True, "1", 1, "null", None):
        tagged = {**raw, "loadBalancer": {**raw["loadBalancer"], "tags": {key: "v"}}}
        with contextlib.nullcontext() if isinstance(key, str) else pytest.raises(ConfigError, match=r"tags"):
            parse_stack_config(tagged, "cn-hangzhou", project="slb-mtls", stack="dev", secrets=GOOD_SECRETS,
                               today=TODAY)
    assert len(validated) == 1 + len(variants) + 6
    refused = StackSecrets(seed=TEST_SEED, seed_is_secret=False)
    for _ in range(2):
        with pytest.raises(ConfigError, match="stored in plain text"):
            parse_stack_config(raw, "cn-hangzhou", project="slb-mtls", stack="dev", secrets=refused, today=TODAY)
    assert len(validated) == 1 + len(variants) + 6 + 2
