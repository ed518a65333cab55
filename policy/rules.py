"""The policies, as plain validate functions so they are unit-tested without a PolicyPack.

They read the engine's property names (camelCase), exactly as `pulumi preview` hands them over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from slbmtls import clb
from slbmtls.engine import UNKNOWN

LB = clb.LOAD_BALANCER
LISTENER = clb.LISTENER
CA_CERT = clb.CA_CERTIFICATE
SERVER_CERT = clb.SERVER_CERTIFICATE
BACKENDS = clb.BACKEND_SERVER

TLS12_POLICIES = frozenset(p for p in clb.TLS_POLICIES if p not in clb.WEAK_TLS_POLICIES)
_WEAK_HASHES = (hashes.MD5, hashes.SHA1, hashes.SHA224)


def _known(value: Any) -> bool:
    """During a preview, ids of resources not yet created are unknown: do not judge those."""
    return value is not None and value != UNKNOWN


def listener_requires_mutual_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LISTENER or args.props.get("protocol") != "https":
        return
    if not args.props.get("caCertificateId"):
        report("HTTPS listener has no caCertificateId: clients are not asked for certificates (one-way TLS). "
               "Set the CA certificate to turn on two-way authentication.", None)
    if not args.props.get("serverCertificateId") and not args.props.get("sslCertificateId"):
        report("HTTPS listener has no serverCertificateId.", None)
    policy = args.props.get("tlsCipherPolicy", "tls_cipher_policy_1_0")
    if policy not in TLS12_POLICIES:
        report(f"tlsCipherPolicy {policy!r} admits TLS below 1.2; use one of {', '.join(sorted(TLS12_POLICIES))}.",
               None)


def _load_balancer_of(listener: PolicyResource, resources: Iterable[PolicyResource]) -> PolicyResource | None:
    linked = listener.property_dependencies.get("loadBalancerId") or []
    for dependency in linked:
        if dependency.resource_type == LB:
            return dependency
    lb_id = listener.props.get("loadBalancerId")
    return next((r for r in resources if r.resource_type == LB and _known(lb_id) and r.props.get("id") == lb_id),
                None)


def internet_lb_only_mutual_tls(args: StackValidationArgs, report: ReportViolation) -> None:
    for listener in args.resources:
        if listener.resource_type != LISTENER:
            continue
        lb = _load_balancer_of(listener, args.resources)
        if lb is None or lb.props.get("addressType", "internet") != "internet":
            continue
        props = listener.props
        if props.get("protocol") != "https" or not props.get("caCertificateId"):
            report(f"listener {listener.name!r} ({props.get('protocol')}:{props.get('frontendPort')}) on "
                   f"internet-facing load balancer {lb.name!r} is not a mutual-TLS HTTPS listener.", listener.urn)


def _certificates(pem: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def certificates_are_strong(args: ResourceValidationArgs, report: ReportViolation) -> None:
    field = {CA_CERT: "caCertificate", SERVER_CERT: "serverCertificate"}.get(args.resource_type)
    if field is None or not isinstance(args.props.get(field), str):
        return
    config: Mapping[str, Any] = args.get_config()
    min_days = int(config.get("minDaysValid", 30))
    today = dt.datetime.now(dt.UTC).date()  # a policy judges the present; the program never does
    certificates = _certificates(args.props[field])
    if not certificates:
        report(f"{field} is not a PEM certificate.", None)
    for cert in certificates:
        subject = cert.subject.rfc4514_string()
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            report(f"{subject}: {type(key).__name__} key; CLB accepts RSA certificates only.", None)
        elif key.key_size not in clb.UPLOAD_RSA_BITS:
            allowed = " or ".join(map(str, clb.UPLOAD_RSA_BITS))
            report(f"{subject}: RSA-{key.key_size}; CLB takes RSA {allowed} ({clb.UPLOAD_RSA_BITS_SOURCE}).", None)
        if cert.signature_hash_algorithm is None or isinstance(cert.signature_hash_algorithm, _WEAK_HASHES):
            name = cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else "none"
            report(f"{subject}: signed with {name}; SHA-256 or better is required.", None)
        left = (cert.not_valid_after_utc.date() - today).days
        if left < min_days:
            report(f"{subject}: expires {cert.not_valid_after_utc:%Y-%m-%d} ({left} days left, "
                   f"policy requires at least {min_days}).", None)


def backend_weights_not_all_zero(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != BACKENDS:
        return
    servers = args.props.get("backendServers") or []
    weights = [s.get("weight") for s in servers]
    if servers and all(_known(w) for w in weights) and not any(weights):
        report("every backend server has weight 0: the listener would send no traffic anywhere.", None)


def _stack_of(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<type>::<name>
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


def protected_stacks_have_delete_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != LB:
        return
    stacks = args.get_config().get("protectedStacks", ["prod"])
    stack = _stack_of(args.urn)
    if any(stack == s or stack.startswith(f"{s}-") for s in stacks) and args.props.get("deleteProtection") != "on":
        report(f"stack {stack!r} is protected: its load balancer needs deleteProtection 'on' "
               "(slb-mtls:loadBalancer.deleteProtection: true).", None)


POLICIES = [
    ResourceValidationPolicy(
        name="https-listener-mutual-tls",
        description="HTTPS CLB listeners carry a CA certificate (two-way authentication) and a TLS 1.2+ policy.",
        validate=listener_requires_mutual_tls,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="internet-clb-mutual-tls-only",
        description="An internet-facing CLB exposes only mutual-TLS HTTPS listeners.",
        validate=internet_lb_only_mutual_tls,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="certificates-rsa2048-sha256-valid",
        description="Uploaded certificates are RSA 2048 or 4096, SHA-256 or better, and not about to expire.",
        validate=certificates_are_strong,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema({"minDaysValid": {"type": "integer", "default": 30}}),
    ),
    ResourceValidationPolicy(
        name="backend-weights-not-all-zero",
        description="At least one backend server has a non-zero weight.",
        validate=backend_weights_not_all_zero,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="protected-stacks-delete-protection",
        description="Load balancers in protected stacks (prod by default) have delete protection on.",
        validate=protected_stacks_have_delete_protection,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema({"protectedStacks": {"type": "array", "items": {"type": "string"},
                                                              "default": ["prod"]}}),
    ),
]
