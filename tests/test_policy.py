"""The policy pack's validate functions, called directly with hand-built arguments (a PolicyPack
blocks waiting for the engine, so it is never constructed here): one pass and one violation each,
and the real dev/prod plans checked against all of them."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import pytest
import rules
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from stackrun import plan_stack

from slbmtls.plan import Plan, reveal


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], None, [])  # type: ignore[arg-type]


def resource_args(token: str, props: dict[str, Any], *, stack: str = "dev", name: str = "r",
                  config: dict[str, Any] | None = None) -> ResourceValidationArgs:
    urn = f"urn:pulumi:{stack}::slb-mtls::{token}::{name}"
    return ResourceValidationArgs(token, props, urn, name, _opts(), None, config or {})


def violations(validate: Any, args: Any) -> list[str]:
    found: list[str] = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def _cert(key: Any, digest: Any = None, days: int = 365) -> str:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.example.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(9).not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .sign(key, digest or hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _openssl_sha1_cert() -> str:
    """cryptography refuses to sign with SHA-1; the openssl command still can."""
    return subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha1", "-nodes", "-subj",
                           "/CN=sha1.example.com", "-days", "365", "-keyout", "/dev/null"],
                          capture_output=True, text=True, check=True).stdout


LISTENER_OK = {"protocol": "https", "frontendPort": 443, "caCertificateId": "ca-1", "serverCertificateId": "cert-1",
               "tlsCipherPolicy": "tls_cipher_policy_1_2_strict"}


@pytest.mark.parametrize(("props", "expected"), [
    (LISTENER_OK, []),
    ({**LISTENER_OK, "caCertificateId": None}, ["HTTPS listener has no caCertificateId"]),
    ({**LISTENER_OK, "tlsCipherPolicy": "tls_cipher_policy_1_0"}, ["tlsCipherPolicy 'tls_cipher_policy_1_0'"]),
    ({k: v for k, v in LISTENER_OK.items() if k != "tlsCipherPolicy"}, ["tlsCipherPolicy 'tls_cipher_policy_1_0'"]),
])
def test_listener_requires_mutual_tls(props: dict[str, Any], expected: list[str]) -> None:
    found = violations(rules.listener_requires_mutual_tls, resource_args(rules.LISTENER, props))
    assert [m[: len(e)] for m, e in zip(found, expected, strict=True)] == expected


def _policy_resource(token: str, name: str, props: dict[str, Any],
                     deps: dict[str, list[PolicyResource]] | None = None) -> PolicyResource:
    return PolicyResource(token, props, f"urn:pulumi:dev::slb-mtls::{token}::{name}", name, _opts(), None, None, [],
                          deps or {})


@pytest.mark.parametrize(("address_type", "listener", "bad"), [
    ("internet", LISTENER_OK, False),
    ("internet", {"protocol": "http", "frontendPort": 80}, True),
    ("internet", {**LISTENER_OK, "caCertificateId": ""}, True),
    ("intranet", {"protocol": "http", "frontendPort": 80}, False),
])
def test_internet_lb_only_mutual_tls(address_type: str, listener: dict[str, Any], bad: bool) -> None:
    lb = _policy_resource(rules.LB, "lb", {"addressType": address_type})
    lst = _policy_resource(rules.LISTENER, "l", listener, {"loadBalancerId": [lb]})
    found = violations(rules.internet_lb_only_mutual_tls, StackValidationArgs([lb, lst]))
    assert bool(found) == bad
    if bad:
        assert "is not a mutual-TLS HTTPS listener" in found[0]


def test_certificates_are_strong() -> None:
    good = _cert(rsa.generate_private_key(65537, 2048))
    assert violations(rules.certificates_are_strong,
                      resource_args(rules.SERVER_CERT, {"serverCertificate": good})) == []
    weak_key = _cert(rsa.generate_private_key(65537, 1024))
    sha1 = _openssl_sha1_cert()
    ec_cert = _cert(ec.generate_private_key(ec.SECP256R1()))
    soon = _cert(rsa.generate_private_key(65537, 2048), days=10)
    cases = {weak_key: "RSA-1024", sha1: "signed with sha1", ec_cert: "CLB accepts RSA certificates only",
             soon: "policy requires at least 30"}
    for pem, message in cases.items():
        found = violations(rules.certificates_are_strong, resource_args(rules.CA_CERT, {"caCertificate": pem}))
        assert any(message in f for f in found), (message, found)
    longer = violations(rules.certificates_are_strong,
                        resource_args(rules.CA_CERT, {"caCertificate": good}, config={"minDaysValid": 400}))
    assert any("policy requires at least 400" in f for f in longer)


def test_backend_weights_not_all_zero() -> None:
    ok = {"backendServers": [{"serverId": "i-1", "weight": 0}, {"serverId": "i-2", "weight": 10}]}
    zero = {"backendServers": [{"serverId": "i-1", "weight": 0}, {"serverId": "i-2", "weight": 0}]}
    assert violations(rules.backend_weights_not_all_zero, resource_args(rules.BACKENDS, ok)) == []
    assert violations(rules.backend_weights_not_all_zero, resource_args(rules.BACKENDS, zero)) == [
        "every backend server has weight 0: the listener would send no traffic anywhere."]


def test_protected_stacks_have_delete_protection() -> None:
    check = rules.protected_stacks_have_delete_protection
    assert violations(check, resource_args(rules.LB, {"deleteProtection": "on"}, stack="prod")) == []
    assert violations(check, resource_args(rules.LB, {"deleteProtection": "off"}, stack="dev")) == []
    found = violations(check, resource_args(rules.LB, {"deleteProtection": "off"}, stack="prod"))
    assert found and "stack 'prod' is protected" in found[0]
    custom = violations(check, resource_args(rules.LB, {"deleteProtection": "off"}, stack="staging",
                                             config={"protectedStacks": ["staging"]}))
    assert custom


def _check_plan(plan: Plan) -> list[str]:
    """Every policy over a plan, as a preview with the pack would run them."""
    found: list[str] = []
    resources = []
    per_resource = [p.validate for p in rules.POLICIES if isinstance(p, ResourceValidationPolicy)]
    per_stack = [p.validate for p in rules.POLICIES if isinstance(p, StackValidationPolicy)]
    assert len(per_resource) + len(per_stack) == len(rules.POLICIES)  # every policy the pack has, and only those
    for r in plan.resources:
        props = reveal(r.inputs, True)
        args = resource_args(r.type, props, stack=plan.stack, name=r.name)
        for validate in per_resource:
            found += violations(validate, args)
        resources.append(_policy_resource(r.type, r.name, {**props, "id": r.id}))
    for validate in per_stack:
        found += violations(validate, StackValidationArgs(resources))
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_planned_stacks_pass_every_policy(stack: str) -> None:
    assert _check_plan(plan_stack(stack)) == []


def test_prod_without_delete_protection_is_caught_in_the_plan() -> None:
    from stackrun import stack_values
    lb = {**stack_values("prod")["slb-mtls:loadBalancer"], "deleteProtection": False}
    assert any("stack 'prod' is protected" in v for v in _check_plan(plan_stack("prod", loadBalancer=lb)))
