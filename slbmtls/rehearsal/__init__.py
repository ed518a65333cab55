"""The local rehearsal: the planned listener served by HAProxy in front of local backends, checked
with real TLS clients the way the tutorial's step 7 checks the real CLB (and `make verify` checks
the deployed one).

Everything served comes from the offline plan (the same program `pulumi up` runs), parsed once into a
typed spec (`spec.py`) that refuses any listener input it does not model. Like CLB, no CRLs: a
revocation must hold because the CA rotated.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
from collections.abc import Iterator

from slbmtls.offline import OfflineStack, UserError
from slbmtls.rehearsal import probes, scenarios
from slbmtls.rehearsal.backends import Backend
from slbmtls.rehearsal.haproxy import HAProxy
from slbmtls.rehearsal.processes import Workdir
from slbmtls.rehearsal.report import Report
from slbmtls.rehearsal.spec import SpecError, listener_spec

__all__ = ["rehearse"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_as_exit() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def rehearse(stack: OfflineStack, *, report_json: str | None = None, keep: bool = False) -> int:
    """Serve and check the stack's plan; 0 when every check passed. With `keep`, print the report,
    bring every backend back, then wait for Ctrl-C."""
    if shutil.which("haproxy") is None:
        raise UserError("haproxy is not installed; install it with:  sudo apt-get install -y haproxy")
    planned = stack.plan()
    report = Report("rehearsal", stack.name)
    try:
        spec = listener_spec(planned.plan, planned.config.domain)
    except SpecError as exc:
        for problem in exc.problems:
            report.add("listener input rehearsed", "modelled, or listed as not modelled", problem, False)
        _finish(report, report_json)
        return 1
    report.notes += spec.not_modelled
    material = planned.material
    previous_spec = stack.previous_epoch(planned.config.pki)
    previous = stack.material_for(previous_spec) if previous_spec is not None else None
    clients = probes.current_clients(material)
    what_if = None
    if previous is None and len(clients) > 1:  # revokes no one: rehearse revoking the first client
        what_if = stack.plan({"revoked": [clients[0]]})
    print(f"rehearsing stack {stack.name!r}: HAProxy in front of {len(spec.weights)} local backends, "
          f"scheduler {spec.scheduler}\n")
    sys.stdout.flush()
    with _interrupts_as_exit(), Workdir("slb-mtls-rehearsal-") as workdir:
        backends = [Backend(f"backend-{i + 1}") for i in range(len(spec.weights))]
        proxy, victim = None, None
        try:
            proxy = HAProxy(spec, backends, workdir)
            served = scenarios.Served(spec, proxy, backends)
            pr = probes.Probes(workdir, material)
            scenarios.check_health(report, served)
            if not clients:
                report.add("client bundle available", "at least one generated client", "none", False)
            else:
                scenarios.check_step7(report, served, pr, material, previous, clients[0])
                if what_if is not None:
                    scenarios.check_what_if(report, listener_spec(what_if.plan, spec.domain), backends, workdir,
                                            pr, material, what_if.material, what_if.plan.outputs["revokedClients"])
                credential = pr.bundle(clients[0], material.clients[clients[0]], material.ca.epoch)
                victim = scenarios.check_backend_down(report, served, credential)
            _finish(report, report_json)
            if keep and clients:
                if victim is not None:
                    victim.start()
                    proxy.wait_states(lambda s: all(v == "UP" for v in s.values()), spec.check_budget())
                scenarios.print_keep(served, credential)
                signal.pause()
        finally:
            if proxy is not None:
                proxy.stop()
            for backend in backends:
                backend.stop()
    return 0 if report.passed else 1


def _finish(report: Report, report_json: str | None) -> None:
    print(report.render())
    sys.stdout.flush()
    if report_json:
        report.write_json(report_json)
