"""`make verify`: the tutorial's step 7 against a deployed listener (or anything serving it).

The expected listener comes from the offline plan with the stack's seed: the served certificate must
be the planned one, the TLS versions those of the planned policy, and every refusal and acceptance
must hold for bundles re-derived from the seed (kept in a private temporary folder, removed after).
"""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

from pki import PkiMaterial
from slbmtls.offline import OfflineStack, UserError
from slbmtls.rehearsal import probes
from slbmtls.rehearsal.probes import Endpoint, Probes
from slbmtls.rehearsal.processes import Workdir
from slbmtls.rehearsal.report import Report
from slbmtls.rehearsal.spec import ECDHE_ONLY, POLICY_TLS_VERSIONS
from slbmtls.stackfile import StackFileError, deployed_outputs

__all__ = ["verify"]


def stack_url(stack: OfflineStack) -> str:
    """The stack's `url` output, through the pulumi CLI."""
    ask = "pass it: make verify STACK=<stack> URL=https://<address>:<port>"
    try:
        url = deployed_outputs(stack.name, stack.stack_file.path.parent).get("url")
    except StackFileError as exc:
        raise UserError(f"no URL given and the stack's `url` output cannot be read ({exc}); {ask}") from None
    if not isinstance(url, str) or not url.strip():
        raise UserError(f"no URL given and stack {stack.name} has no `url` output (not deployed yet?); {ask}")
    return url.strip()


def host_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        port = parts.port or 443
    except ValueError:  # e.g. an unclosed [IPv6 address, or a port that is not a number
        raise UserError(f"URL={url[:200]}: expected https://host[:port]") from None
    if parts.scheme != "https" or not parts.hostname or not 0 < port < 65536:
        raise UserError(f"URL={url[:200]}: expected https://host[:port]")
    return parts.hostname, port


def verify(stack: OfflineStack, *, url: str | None = None, client: str | None = None,
           report_json: str | None = None, expect_backends: int | None = None) -> int:
    # what can be refused without the plan is refused before it is made
    host, port = host_port(url or stack_url(stack))
    if expect_backends is not None and expect_backends < 1:
        raise UserError(f"EXPECT_BACKENDS={expect_backends}: at least 1")
    planned = stack.plan()
    config, material = planned.config, planned.material
    endpoint = Endpoint(host, port, config.domain)
    clients = probes.current_clients(material)
    if client is None and not clients:
        raise UserError(f"stack {stack.name} has no client whose key the seed derives; nothing can be accepted")
    if client is not None and client not in clients:
        raise UserError(f"CLIENT={client}: not a current client of stack {stack.name} with a derived key; "
                        f"clients: {', '.join(clients) or '(none)'}")
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=10).close()
    except OSError as exc:
        raise UserError(f"URL={url or endpoint.host}: cannot connect to {endpoint.host}:{endpoint.port} "
                        f"({exc.strerror or exc})") from None
    previous_spec = stack.previous_epoch(config.pki)
    previous = stack.material_for(previous_spec) if previous_spec is not None else None
    print(f"verifying stack {stack.name!r} at {endpoint}\n")
    sys.stdout.flush()
    report = _check(Report("verify", stack.name), endpoint, material, previous, client or clients[0],
                    config.listener.tls_cipher_policy, expect_backends)
    print(report.render())
    if report_json:
        report.write_json(report_json)
    return 0 if report.passed else 1


def _check(report: Report, endpoint: Endpoint, material: PkiMaterial, previous: PkiMaterial | None, client: str,
           policy: str, expect_backends: int | None) -> Report:
    """The step-7 rows, with every bundle and probe in a private folder removed afterwards."""
    with Workdir("slb-mtls-verify-") as workdir:
        pr = Probes(workdir, material)
        credential = pr.bundle(client, material.clients[client], material.ca.epoch)
        responses = probes.spread(report, endpoint, credential, 2 * (expect_backends or 2), expect_backends)
        report.sequence = [r.body if r.served else f"error: {r.describe()}" for r in responses]
        probes.check_server_certificate(report, endpoint, material, responses[0])
        probes.check_tls_versions(report, endpoint, POLICY_TLS_VERSIONS[policy], credential)
        probes.check_refusals(report, endpoint, pr)
        probes.check_clients(report, endpoint, pr, material,
                             [n for n in probes.current_clients(material) if n != client])
        if previous is not None:
            probes.check_previous_epoch(report, endpoint, pr, previous)
        else:
            report.notes.append(f"CA epoch {material.ca.epoch} is the first: no older bundles to refuse")
    if policy in ECDHE_ONLY:
        report.notes.append(f"{policy} offers ECDHE suites only; cipher suites are not checked here")
    return report
