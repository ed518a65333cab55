"""What the rehearsal does with a served listener: the step-7 checks `verify` runs too, plus what
only a local stand-in can show (health checks, the scheduler's exact order, a backend taken out,
a revocation served on a second listener)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pki import PkiMaterial
from slbmtls.rehearsal import probes
from slbmtls.rehearsal.backends import Backend
from slbmtls.rehearsal.haproxy import HAProxy
from slbmtls.rehearsal.probes import Endpoint, Probes
from slbmtls.rehearsal.processes import Workdir
from slbmtls.rehearsal.report import Report
from slbmtls.rehearsal.spec import ListenerSpec


@dataclass
class Served:
    """One running listener: HAProxy in front of the backends."""

    spec: ListenerSpec
    proxy: HAProxy
    backends: list[Backend]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.proxy.port, self.spec.domain)


def balance_expectation(spec: ListenerSpec, names: Sequence[str], sequence: Sequence[str]) -> tuple[str, bool]:
    """What the scheduler promises over whole cycles: rr alternates evenly, wrr follows the weights,
    wlc (least connections, one request at a time here) only has to use every backend."""
    counts = {n: sequence.count(n) for n in names}
    if spec.scheduler == "wlc":
        return "every backend serves", all(counts.values())
    weights = spec.reduced_weights
    cycles = len(sequence) // sum(weights)
    expected = {n: w * cycles for n, w in zip(names, weights, strict=True)}
    if len(set(weights)) == 1:
        alternates = all(a != b for a, b in itertools.pairwise(sequence)) or len(names) == 1
        return "alternate " + "/".join(names), counts == expected and alternates
    return f"counts {expected}", counts == expected


def check_health(report: Report, served: Served) -> None:
    names = [b.name for b in served.backends]
    states = served.proxy.wait_states(lambda s: all(v == "UP" for v in s.values()), served.spec.check_budget())
    report.add("health checks: all backends up", f"{len(names)} UP",
               ", ".join(f"{k}={v}" for k, v in states.items()), all(v == "UP" for v in states.values()))


def check_step7(report: Report, served: Served, probes_: Probes, material: PkiMaterial,
                previous: PkiMaterial | None, client: str) -> None:
    """The checks `make verify` runs against CLB, here with the scheduler's exact order."""
    spec, endpoint = served.spec, served.endpoint
    names = [b.name for b in served.backends]
    credential = probes_.bundle(client, material.clients[client], material.ca.epoch)
    responses = probes.spread(report, endpoint, credential, sum(spec.reduced_weights) * 2, len(names))
    report.sequence = [r.body.removeprefix("backend ") if r.served else f"error: {r.describe()}" for r in responses]
    expectation, ok = balance_expectation(spec, names, report.sequence)
    report.add(f"{spec.scheduler} with {client}'s certificate", expectation, " ".join(report.sequence), ok)
    probes.check_server_certificate(report, endpoint, material, responses[0])
    probes.check_tls_versions(report, endpoint, spec.tls_versions, credential)
    probes.check_refusals(report, endpoint, probes_)
    probes.check_clients(report, endpoint, probes_, material, probes.current_clients(material))
    if previous is not None:
        probes.check_previous_epoch(report, endpoint, probes_, previous)


def check_what_if(report: Report, spec: ListenerSpec, backends: list[Backend], workdir: Workdir,
                  probes_: Probes, before: PkiMaterial, after: PkiMaterial, revoked: Sequence[str]) -> None:
    """A stack that revokes no one: the one-line change revoking its first client, served on a
    second listener: the revoked bundle and everyone's old bundles refused, the new ones accepted."""
    proxy = HAProxy(spec, backends, workdir, "what-if")
    try:
        endpoint = Endpoint("127.0.0.1", proxy.port, spec.domain)
        label = f"what-if ({', '.join(revoked)} revoked): "
        probes.check_previous_epoch(report, endpoint, probes_, before, label)
        probes.check_clients(report, endpoint, probes_, after, probes.current_clients(after), label)
    finally:
        proxy.stop()


def check_backend_down(report: Report, served: Served, client_credential: probes.Credential) -> Backend | None:
    """A backend that fails its health check is taken out; returns it (stopped) for restoring."""
    if len(served.backends) < 2 or served.spec.health is None:
        return None
    victim = served.backends[-1]
    victim.stop()
    states = served.proxy.wait_states(lambda s: s.get(victim.name, "").startswith("DOWN"), served.spec.check_budget())
    after = [probes.request(served.endpoint, client_credential) for _ in range(len(served.backends) * 2)]
    bodies = [r.body.removeprefix("backend ") if r.served else "error" for r in after]
    report.add(f"{victim.name} stopped: taken out", f"{victim.name} DOWN, no traffic to it",
               f"{states.get(victim.name)}; served by {' '.join(bodies)}",
               states.get(victim.name, "").startswith("DOWN") and victim.name not in bodies and "error" not in bodies)
    return victim


def print_keep(served: Served, credential: probes.Credential) -> None:
    endpoint, folder, client = served.endpoint, served.proxy.folder, credential.label
    cert, key = credential.cert, credential.key
    resolve = f"--resolve {endpoint.sni}:{endpoint.port}:127.0.0.1 --cacert {folder}/ca.pem"
    print(f"\nleft running, every backend up (Ctrl-C to stop and clean up). Try it by hand:\n"
          f"  curl {resolve} --cert {cert} --key {key} https://{endpoint.sni}:{endpoint.port}/\n"
          f"  curl {resolve} https://{endpoint.sni}:{endpoint.port}/   # refused: no client certificate\n"
          f"For a browser: make bundle CLIENT={client} and import the .p12 with the password it prints.")
    sys.stdout.flush()
