"""The Pulumi program: read config once, validate it, derive the PKI, declare the component.

`build()` returns the stack outputs so both `__main__.py` (which exports them) and the offline plan
(which resolves them under the mock engine) run exactly this code.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pulumi

from pki import KeyType, PkiError, PkiMaterial, build_material, days_left
from slbmtls.clock import ClockError, today
from slbmtls.config import (
    KNOWN_KEYS,
    NAMESPACE,
    SECRET_KEYS,
    ConfigError,
    StackConfig,
    StackSecrets,
    parse_stack_config,
    seed_of,
)
from slbmtls.retired import retired_error
from slbmtls.stackfile import StackFileError, deployed_outputs


def _configured_keys() -> set[str]:
    """Every `slb-mtls:*` key the stack sets, so a misspelt one is reported rather than ignored."""
    from slbmtls.engine import configured_keys

    return {k.split(":", 1)[1] for k in configured_keys() if k.startswith(f"{NAMESPACE}:")}


def read_config() -> tuple[StackConfig, StackSecrets]:
    """Read every `slb-mtls:*` key through the runtime and validate it as a whole.

    Secrets are read as plain values here, on purpose: keys are derived while the program runs so
    that validation happens before any resource and public certificates stay public. Everything
    derived from them is wrapped with `Output.secret` before it reaches a resource or an output."""
    raw: dict[str, Any] = {}
    for key in sorted((_configured_keys() | set(KNOWN_KEYS)) - set(SECRET_KEYS)):
        value = pulumi.runtime.get_config(f"{NAMESPACE}:{key}")
        if value is not None:
            raw[key] = _decode(value)
    secrets = StackSecrets(
        seed=pulumi.runtime.get_config(f"{NAMESPACE}:pkiSeed"),
        seed_is_secret=pulumi.runtime.is_config_secret(f"{NAMESPACE}:pkiSeed"),
        server_private_key_is_secret=pulumi.runtime.is_config_secret(f"{NAMESPACE}:serverPrivateKey"),
        server_private_key=pulumi.runtime.get_config(f"{NAMESPACE}:serverPrivateKey"),
        server_private_key_passphrase=pulumi.runtime.get_config(f"{NAMESPACE}:serverPrivateKeyPassphrase"),
        server_private_key_passphrase_is_secret=pulumi.runtime.is_config_secret(
            f"{NAMESPACE}:serverPrivateKeyPassphrase"),
    )
    region = pulumi.runtime.get_config("alicloud:region")
    config = parse_stack_config(raw, region, project=pulumi.get_project(), stack=pulumi.get_stack(),
                                secrets=secrets)
    return config, secrets


def _decode(value: str) -> Any:
    """Structured config arrives as JSON text; plain strings stay strings."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def prepare() -> tuple[StackConfig, PkiMaterial]:
    """Config and material, or one RunError (shown without a traceback) listing every problem."""
    try:
        config, secrets = read_config()
        material = build_material(seed_of(secrets), config.pki, today=today())
    except ConfigError as exc:
        raise pulumi.RunError(f"invalid stack configuration:\n{exc}") from None
    except PkiError as exc:
        raise pulumi.RunError(f"invalid stack configuration:\n{NAMESPACE}: {exc}") from None
    except ClockError as exc:
        raise pulumi.RunError(str(exc)) from None
    current = material.ca.issued.fingerprint
    if current in config.carried_retired_fingerprints:
        raise pulumi.RunError(f"invalid stack configuration:\n{NAMESPACE}:pki.retiredCaFingerprints: lists "
                              f"{current!r}, the CA this configuration derives: that CA was retired. Bump "
                              f"{NAMESPACE}:pki.caGeneration to a generation never deployed")
    return config, material


def report(config: StackConfig, material: PkiMaterial, on: dt.date) -> None:
    """Say what a reviewer must act on: expiring certificates, and bundles a revocation voided."""
    renew = config.renew_before_days
    checks = [("CA certificate", material.ca.certificate,
               f"set slb-mtls:pki.issued: \"{on.isoformat()}\" and bump slb-mtls:pki.caGeneration "
               "(every client then needs a new bundle)")]
    if material.server_generated:
        checks.append(("server certificate", material.server.certificate,
                       f"set slb-mtls:pki.serverIssued: \"{on.isoformat()}\""))
    else:
        checks.append(("server certificate", material.server.certificate,
                       "pulumi config set serverCertificate < renewed-fullchain.pem (and serverPrivateKey)"))
    for name, issued in material.clients.items():
        checks.append((f"client {name!r}", issued.certificate,
                       f"set issued: \"{on.isoformat()}\" on client {name!r} in slb-mtls:clients"))
    for what, cert, fix in checks:
        left = days_left(cert, on)
        if left <= renew:
            state = "expired" if left < 0 else f"expires in {left} days"
            pulumi.log.warn(f"{what} {state} ({cert.not_valid_after_utc:%Y-%m-%d}); to renew: {fix}")
    ec_clients = [c.name for c in config.pki.clients
                  if c.key_type is KeyType.EC_P256 and c.csr_pem is None and c.name in material.clients]
    if ec_clients:
        # CLB documents RSA for the certificates it holds; for client certificates it says nothing.
        pulumi.log.warn(
            f"clients {', '.join(ec_clients)} use EC P-256 keys: whether CLB's mutual TLS accepts EC client "
            "certificates is not documented; treat them as unverified until `make verify` passes its EC row "
            "against the live listener (keyType: rsa-2048 is the safe choice)")
    departed = [r.name for r in config.pki.revocations if r.client is not None]
    if departed:
        pulumi.log.warn(
            f"revoked {', '.join(departed)} not in slb-mtls:clients: the CRLs list the certificate made from the "
            "details in its revoked entry; check the name is not a typo")
    if material.revoked:
        pulumi.log.warn(
            f"CA epoch {material.ca.epoch}: revoked {', '.join(material.revoked)}. CLB does not check CRLs, "
            f"so the CA was rotated; clients {', '.join(material.clients) or '(none)'} need new bundles "
            "(make bundle CLIENT=<name>) once this is applied"
        )


def retired_fingerprints(config: StackConfig, material: PkiMaterial) -> list[str]:
    """Retired CAs: those the seed and the revocation history derive, then those the config carries
    from earlier CA definitions (slb-mtls:pki.retiredCaFingerprints)."""
    derived = list(material.retired_ca_fingerprints)
    return derived + [f for f in config.carried_retired_fingerprints if f not in derived]


def refuse_a_retired_ca(config: StackConfig, material: PkiMaterial) -> None:
    """Under the Pulumi CLI (`pulumi preview` / `up`): refuse a CA the deployed stack retired, or a
    change that forgets one, as `make guard` does: revocation is forever, even past an edit. The
    deployed outputs come from `pulumi stack output --json` (the last completed update); if they
    cannot be read the run goes on with a warning that names the check to run."""
    stack = pulumi.get_stack()
    try:
        deployed = deployed_outputs(stack, Path.cwd(), timeout=120)  # the engine runs the program in the project
    except StackFileError as exc:
        pulumi.log.warn(f"the CA was not checked against the CAs the deployed stack retired ({exc}); "
                        f"run `make guard STACK={stack}` before this update")
        return
    problem = retired_ca_problem(config, material, deployed)
    if problem is not None:
        raise pulumi.RunError(f"refusing to deploy stack {stack}: {problem}")


def retired_ca_problem(config: StackConfig, material: PkiMaterial, deployed: dict[str, Any]) -> str | None:
    """Why this config must not be deployed over the deployed stack's outputs (a CA it retired, or
    a retired CA forgotten), or None: `make guard`'s check and the program's own."""
    return retired_error(deployed, {"caFingerprint": material.ca.issued.fingerprint,
                                    "retiredCaFingerprints": retired_fingerprints(config, material)})


def build(name: str = "mtls", *, against_deployed: bool = False) -> dict[str, Any]:
    """Declare everything; return the stack outputs (secrets wrapped as such). `against_deployed`
    (the real engine's run, `__main__.py`) first checks the deployed stack's retired CAs."""
    config, material = prepare()
    if against_deployed:
        refuse_a_retired_ca(config, material)
    return declare(config, material, name=name)


def declare(config: StackConfig, material: PkiMaterial, name: str = "mtls") -> dict[str, Any]:
    """The resources and outputs for prepared config and material (the offline tools call this
    with what `prepare()` gave them, so they reuse the one derivation)."""
    from slbmtls.infra import MutualTlsLoadBalancer  # the provider SDK is heavy: load it only here

    report(config, material, today())
    lb = MutualTlsLoadBalancer(name, config, material)
    clients = {
        n: {"fingerprint": c.fingerprint, "serial": c.serial_hex, "notAfter": c.not_after.isoformat()}
        for n, c in material.clients.items()
    }
    return {
        "loadBalancerId": lb.load_balancer.id,
        "address": lb.load_balancer.address,
        "url": lb.url,
        "listenerId": lb.listener.id,
        "caEpoch": material.ca.epoch,
        "caCertificatePem": material.ca.issued.certificate_pem,
        "caFingerprint": material.ca.issued.fingerprint,
        "caNotAfter": material.ca.issued.not_after.isoformat(),
        "serverCertificateFingerprint": material.server.fingerprint,
        "serverCertificateSerial": material.server.serial_hex,
        "serverCertificateNotAfter": material.server.not_after.isoformat(),
        "clients": clients,
        "clientCertificatePems": {n: c.certificate_pem for n, c in material.clients.items()},
        "revokedClients": list(material.revoked),
        "crlPem": material.crl_pem,
        # every CA certificate this stack trusted and must never trust again: plan-diff and `make up`
        # refuse a plan whose caFingerprint is here. Client keys are not outputs: `make bundle`
        # re-derives them, so only the server key (which CLB must hold) is in state.
        "retiredCaFingerprints": retired_fingerprints(config, material),
    }
