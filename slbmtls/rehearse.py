"""The local rehearsal: the planned listener served by HAProxy in front of local backends, checked
with real TLS clients the way the tutorial's step 7 checks the real CLB.

Everything it serves comes from the offline plan (the same program `pulumi up` runs): the CA and
server certificates the plan uploads, the listener's scheduler, weights, health check and timeouts.
Like CLB it does not check CRLs: revocation must hold because the CA rotated.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import itertools
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import CertificateAuthority, ClientSpec, KeyType, PkiMaterial, Seed, Validity, build_material
from pki.issued import certificate_pem
from slbmtls.plan import Plan, reveal

LISTENER = "alicloud:slb/listener:Listener"
CA_CERT = "alicloud:slb/caCertificate:CaCertificate"
SERVER_CERT = "alicloud:slb/serverCertificate:ServerCertificate"
BACKENDS = "alicloud:slb/backendServer:BackendServer"


# -- backends ------------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # health checks and probes hang up early; that is not an error worth printing


class Backend:
    """A local HTTP server standing in for one ECS instance: it answers with its own name."""

    def __init__(self, name: str) -> None:
        self.name = name
        body = f"backend {name}\n".encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, with_body: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.running = False


# -- the HAProxy side ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ListenerSpec:
    """What the plan asks of the listener, in the plan's own (engine) property names."""

    domain: str
    scheduler: str
    weights: list[int]
    health: dict[str, Any]
    idle_timeout: int
    request_timeout: int
    tls_policy: str

    @property
    def reduced_weights(self) -> list[int]:
        """The same proportions in the smallest integers, so one scheduling cycle is short."""
        divisor = math.gcd(*self.weights) or 1
        return [w // divisor for w in self.weights]


def listener_spec(plan: Plan, domain: str) -> ListenerSpec:
    listener = reveal(plan.one(LISTENER).inputs, True)
    servers = reveal(plan.one(BACKENDS).inputs, True)["backendServers"]
    return ListenerSpec(
        domain=domain,
        scheduler=listener["scheduler"],
        weights=[int(s["weight"]) for s in servers],
        health={k: listener.get(k) for k in ("healthCheck", "healthCheckUri", "healthCheckMethod",
                                             "healthCheckHttpCode", "healthCheckInterval", "healthCheckTimeout",
                                             "healthyThreshold", "unhealthyThreshold")},
        idle_timeout=int(listener.get("idleTimeout", 15)),
        request_timeout=int(listener.get("requestTimeout", 60)),
        tls_policy=listener["tlsCipherPolicy"],
    )


# CLB policy -> the TLS versions it admits (the suites differ in detail; versions are what clients see)
_MIN_TLS = {"tls_cipher_policy_1_0": "TLSv1.0", "tls_cipher_policy_1_1": "TLSv1.1"}
_MAX_TLS_1_2 = {"tls_cipher_policy_1_0", "tls_cipher_policy_1_1", "tls_cipher_policy_1_2",
                "tls_cipher_policy_1_2_strict"}


def haproxy_config(spec: ListenerSpec, port: int, backends: list[Backend], workdir: Path) -> str:
    """The planned listener as HAProxy configuration."""
    balance = "leastconn" if spec.scheduler == "wlc" else "roundrobin"
    weights = spec.reduced_weights if spec.scheduler != "rr" else [1] * len(spec.weights)  # rr ignores weights
    ssl_opts = f"ssl-min-ver {_MIN_TLS.get(spec.tls_policy, 'TLSv1.2')}"
    if spec.tls_policy in _MAX_TLS_1_2:
        ssl_opts += " ssl-max-ver TLSv1.2"
    if spec.tls_policy.startswith("tls_cipher_policy_1_2_strict"):
        ssl_opts += " ciphers ECDHE+AESGCM:ECDHE+CHACHA20"
    h = spec.health
    lines = [
        "global",
        f"    stats socket {workdir}/admin.sock mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        f"    timeout client {spec.idle_timeout}s",
        f"    timeout http-keep-alive {spec.idle_timeout}s",
        f"    timeout server {spec.request_timeout}s",
        "frontend https",
        # client certificates required and verified against the planned CA; no crl-file, as on CLB
        f"    bind 127.0.0.1:{port} ssl crt {workdir}/server.pem ca-file {workdir}/ca.pem verify required "
        f"alpn h2,http/1.1 {ssl_opts}",
        "    default_backend app",
        "backend app",
        f"    balance {balance}",
    ]
    check = ""
    if h.get("healthCheck") == "on":
        codes = "".join(c[5] for c in (h.get("healthCheckHttpCode") or "http_2xx").split(","))
        method = (h.get("healthCheckMethod") or "head").upper()
        lines += [
            f"    option httpchk {method} {h.get('healthCheckUri') or '/'}",
            f"    http-check expect rstatus ^[{codes}]",
            f"    timeout check {h.get('healthCheckTimeout') or 5}s",
        ]
        check = (f" check inter {h.get('healthCheckInterval') or 2}s rise {h.get('healthyThreshold') or 3}"
                 f" fall {h.get('unhealthyThreshold') or 3}")
    for backend, weight in zip(backends, weights, strict=True):
        lines.append(f"    server {backend.name} 127.0.0.1:{backend.port} weight {weight}{check}")
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, config: str, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        path = workdir / "haproxy.cfg"
        path.write_text(config)
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected the generated configuration:\n{check.stderr}{check.stdout}")
        self.process = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"haproxy exited: {stderr}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("haproxy did not start listening within 10 s")

    def server_states(self) -> dict[str, str]:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.workdir / "admin.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "app" and r["svname"] != "BACKEND"}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


# -- clients -------------------------------------------------------------------------------------


@dataclass
class Response:
    ok: bool
    backend: str | None = None
    error: str | None = None
    peer_der: bytes | None = None


def https_get(port: int, domain: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> Response:
    """One request on a fresh connection, verifying the server as a browser would."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=domain) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            peer = tls.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        reason = (exc.reason or str(exc)).lower()
        for prefix in ("sslv3_alert_", "tlsv1_alert_", "tlsv13_alert_"):
            reason = reason.removeprefix(prefix)
        return Response(False, error=f"TLS alert: {reason.replace('_', ' ')}")
    except OSError as exc:
        return Response(False, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].split(b" ")
    if len(status) < 2 or status[1] != b"200":
        return Response(False, error=(head.split(b"\r\n")[0].decode() or "no HTTP response"), peer_der=peer)
    text = body.decode().strip()
    return Response(True, backend=text.removeprefix("backend "), peer_der=peer)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    passed: bool


@dataclass
class Report:
    stack: str
    checks: list[Check] = field(default_factory=list)
    sequence: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, expected: str, observed: str, passed: bool) -> None:
        self.checks.append(Check(name, expected, observed, passed))

    def table(self) -> str:
        widths = [max(len(getattr(c, f)) for c in self.checks) for f in ("name", "expected", "observed")]
        widths = [max(w, len(h)) for w, h in zip(widths, ("check", "expected", "observed"), strict=True)]
        row = "{:<%d}  {:<%d}  {:<%d}  {}" % tuple(widths)  # noqa: UP031
        lines = [row.format("check", "expected", "observed", "result")]
        lines += [row.format(c.name, c.expected, c.observed, "pass" if c.passed else "FAIL") for c in self.checks]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "passed": self.passed, "sequence": self.sequence,
                "checks": [c.__dict__ for c in self.checks]}


def _write(path: Path, text: str | bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)
    return path


def _expired_probe(material: PkiMaterial, workdir: Path) -> tuple[Path, Path]:
    """A client certificate from the planned CA that expired yesterday (the pki refuses to make one,
    so it is built here, against the real clock HAProxy checks)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(material.ca.subject.to_name("expired-probe"))
            .issuer_name(material.ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(material.ca.private_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return _write(workdir / "expired.crt", certificate_pem(cert)), _write(workdir / "expired.key", key_pem)


def _balance_expectation(spec: ListenerSpec, names: list[str], sequence: list[str]) -> tuple[str, bool]:
    """What the scheduler promises over whole cycles: rr alternates evenly, wrr follows the weights,
    wlc (least connections, one request at a time here) only has to use every backend."""
    counts = {n: sequence.count(n) for n in names}
    if spec.scheduler == "wlc":
        return "every backend serves", all(counts.values())
    weights = [1] * len(names) if spec.scheduler == "rr" else spec.reduced_weights
    cycles = len(sequence) // sum(weights)
    expected = {n: w * cycles for n, w in zip(names, weights, strict=True)}
    if spec.scheduler == "rr" or len(set(weights)) == 1:
        alternates = all(a != b for a, b in itertools.pairwise(sequence)) or len(names) == 1
        return "alternate " + "/".join(names), counts == expected and alternates
    return f"counts {expected}", counts == expected


def _listener_files(plan: Plan, directory: Path) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """The planned CA and server certificate (as HAProxy reads them) and every client bundle."""
    directory.mkdir(mode=0o700, exist_ok=True)
    ca = _write(directory / "ca.pem", reveal(plan.one(CA_CERT).inputs, True)["caCertificate"])
    server = reveal(plan.one(SERVER_CERT).inputs, True)
    _write(directory / "server.pem", server["serverCertificate"] + server["privateKey"])
    keys = reveal(plan.outputs["clientPrivateKeyPems"], True)
    bundles = {n: (_write(directory / f"{n}.crt", pem), _write(directory / f"{n}.key", keys[n]))
               for n, pem in plan.outputs["clientCertificatePems"].items() if n in keys}
    return ca, bundles


def _check_revocation(report: Report, port: int, domain: str, ca: Path, workdir: Path, revoked: Sequence[str],
                      before: PkiMaterial, new_bundles: dict[str, tuple[Path, Path]], label: str = "") -> None:
    """After a planned revocation: the revoked client's old bundle is refused, the others' new ones work."""
    for name in revoked:
        old = before.clients.get(name)
        if old is None or old.private_key is None:
            continue
        old_cert = _write(workdir / f"old-{name}.crt", old.certificate_pem)
        old_key = _write(workdir / f"old-{name}.key", old.private_key_pem())
        response = https_get(port, domain, ca, old_cert, old_key)
        report.add(f"{label}revoked {name}: old bundle", "refused (CA rotated)",
                   "accepted!" if response.ok else "refused", not response.ok)
    for name, (cert, key) in new_bundles.items():
        response = https_get(port, domain, ca, cert, key)
        report.add(f"{label}re-issued {name}: new bundle", "accepted", "accepted" if response.ok else "refused",
                   response.ok)


def rehearse(plan: Plan, material: PkiMaterial, previous: PkiMaterial | None, domain: str,
             *, simulated_revocation: Plan | None = None, keep: bool = False) -> Report:
    """Serve and check the plan. `previous` is the material before this stack's revocations."""
    spec = listener_spec(plan, domain)
    report = Report(plan.stack)
    workdir = Path(tempfile.mkdtemp(prefix="slb-mtls-rehearsal-"))
    backends = [Backend(f"backend-{i + 1}") for i in range(len(spec.weights))]
    proxy: HAProxy | None = None
    try:
        ca, bundles = _listener_files(plan, workdir)
        server = reveal(plan.one(SERVER_CERT).inputs, True)
        port = _free_port()
        proxy = HAProxy(haproxy_config(spec, port, backends, workdir), workdir, port)
        names = [b.name for b in backends]

        # 7.1: health checks bring every backend up
        states = _wait_states(proxy, lambda s: all(v == "UP" for v in s.values()), spec)
        report.add("health checks: all backends up", f"{len(names)} UP",
                   ", ".join(f"{k}={v}" for k, v in states.items()), all(v == "UP" for v in states.values()))

        if not bundles:
            report.add("client bundle available", "at least one generated client", "none", False)
            return report
        client = next(iter(bundles))
        cert, key = bundles[client]
        # 7.3: balanced requests with a valid bundle
        rounds = sum(spec.reduced_weights) if spec.scheduler == "wrr" else len(names)
        responses = [https_get(port, domain, ca, cert, key) for _ in range(rounds * 2)]
        report.sequence = [r.backend or f"error: {r.error}" for r in responses]
        expectation, ok = _balance_expectation(spec, names, report.sequence)
        report.add(f"{spec.scheduler} with {client}'s certificate", expectation, " ".join(report.sequence),
                   ok and all(r.ok for r in responses))

        # the server certificate clients see: the planned one, valid for the domain, chaining to the CA
        peer = responses[0].peer_der
        planned = x509.load_pem_x509_certificate(server["serverCertificate"].encode())
        same = peer is not None and x509.load_der_x509_certificate(peer) == planned
        report.add("server certificate", f"planned cert for {domain}, chains to CA",
                   "matches plan" if same else "differs", same)

        refused = [
            ("no client certificate", https_get(port, domain, ca)),
            ("certificate from another CA", https_get(port, domain, ca, *_foreign(material, workdir))),
            ("expired client certificate", https_get(port, domain, ca, *_expired_probe(material, workdir))),
            ("server certificate as client", https_get(port, domain, ca, workdir / "server.pem")),
        ]
        for name, response in refused:
            report.add(f"refused: {name}", "handshake refused",
                       "accepted!" if response.ok else (response.error or "refused")[:60], not response.ok)

        if previous is not None:  # the stack revokes: this listener already trusts only the new CA
            _check_revocation(report, port, domain, ca, workdir, material.revoked, previous, bundles)
        elif simulated_revocation is not None:  # show what revoking would do, on a second listener
            after_dir = workdir / "after-revocation"
            after_ca, after_bundles = _listener_files(simulated_revocation, after_dir)
            after_port = _free_port()
            after_proxy = HAProxy(haproxy_config(spec, after_port, backends, after_dir), after_dir, after_port)
            try:
                revoked = simulated_revocation.outputs["revokedClients"]
                label = f"what-if ({', '.join(revoked)} revoked): "
                _check_revocation(report, after_port, domain, after_ca, after_dir, revoked, material, after_bundles,
                                  label)
                old_cert, old_key = next((b for n, b in bundles.items() if n not in revoked), (cert, key))
                response = https_get(after_port, domain, after_ca, old_cert, old_key)
                report.add(f"{label}others' old bundles", "refused: new bundles needed",
                           "accepted!" if response.ok else "refused", not response.ok)
            finally:
                after_proxy.stop()

        if len(backends) > 1:  # a backend that fails its health check is taken out
            victim = backends[-1]
            victim.stop()
            states = _wait_states(proxy, lambda s: s.get(victim.name) == "DOWN", spec)
            after = [https_get(port, domain, ca, cert, key).backend or "error" for _ in range(len(names) * 2)]
            report.add(f"{victim.name} stopped: taken out", f"{victim.name} DOWN, no traffic to it",
                       f"{states.get(victim.name)}; served by {' '.join(after)}",
                       states.get(victim.name, "").startswith("DOWN") and victim.name not in after
                       and "error" not in after)
        if keep:
            _print_keep(port, domain, workdir, client)
            signal.pause()
        return report
    finally:
        if proxy is not None:
            proxy.stop()
        for backend in backends:
            backend.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _foreign(material: PkiMaterial, workdir: Path) -> tuple[Path, Path]:
    """A valid-looking client certificate from a CA with the same subject but another seed."""
    foreign = CertificateAuthority(Seed(b"\x01" * 32), material.ca.subject, material.ca.validity)
    issued = foreign.issue_client(ClientSpec("foreign-probe", Validity(material.ca.validity.issued, 30),
                                             key_type=KeyType.EC_P256))
    return (_write(workdir / "foreign.crt", issued.certificate_pem),
            _write(workdir / "foreign.key", issued.private_key_pem()))


def _wait_states(proxy: HAProxy, done: Any, spec: ListenerSpec) -> dict[str, str]:
    h = spec.health
    budget = 5 + (int(h.get("healthCheckInterval") or 2) + int(h.get("healthCheckTimeout") or 5)) * (
        max(int(h.get("healthyThreshold") or 3), int(h.get("unhealthyThreshold") or 3)) + 1)
    deadline = time.monotonic() + budget
    states = proxy.server_states()
    while not done(states) and time.monotonic() < deadline:
        time.sleep(0.2)
        states = proxy.server_states()
    return states


def _print_keep(port: int, domain: str, workdir: Path, client: str) -> None:
    print(f"\nleft running (Ctrl-C to stop and clean up). Try it by hand:\n"
          f"  curl --resolve {domain}:{port}:127.0.0.1 --cacert {workdir}/ca.pem "
          f"--cert {workdir}/{client}.crt --key {workdir}/{client}.key https://{domain}:{port}/\n"
          f"  curl --resolve {domain}:{port}:127.0.0.1 --cacert {workdir}/ca.pem https://{domain}:{port}/"
          "   # refused: no client certificate\n"
          f"For a browser: make bundle CLIENT={client} and import the .p12 with the password it prints.")
    sys.stdout.flush()


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


def cli(stack: str, *, project_dir: Path, report_json: str | None = None, keep: bool = False) -> int:
    from slbmtls.cli import UserError, make_plan, offline_stack
    from slbmtls.program import today
    from slbmtls.stackfile import load_stack, resolve_seed

    if shutil.which("haproxy") is None:
        raise UserError("haproxy is not installed; install it with:  sudo apt-get install -y haproxy")
    seed_hex, source = resolve_seed(load_stack(project_dir, stack), allow_ephemeral=True)
    if source == "ephemeral":
        print("notice: PKI_SEED is not set; rehearsing with a throwaway seed", file=sys.stderr)
    os.environ["PKI_SEED"] = seed_hex  # the plan and the checks below must use the same seed
    plan, _ = make_plan(stack, project_dir=project_dir)
    # derived once more outside the engine: the probes need the CA's private key, which the plan never exposes
    config, seed = offline_stack(stack, project_dir=project_dir)
    material = build_material(seed, config.pki, today=today())
    previous, simulated = None, None
    if config.pki.revocations:
        previous = build_material(seed, replace(config.pki, revocations=()), today=today())
    elif (generated := [n for n, c in material.clients.items() if c.private_key is not None]) and len(
            material.clients) > 1:
        # the stack revokes no one: rehearse revoking its first client, as a one-line change would
        simulated, _ = make_plan(stack, project_dir=project_dir,
                                 overrides={"slb-mtls:revoked": json.dumps([generated[0]])})
    print(f"rehearsing stack {stack!r}: HAProxy in front of {len(plan.one(BACKENDS).inputs['backendServers'])} "
          f"local backends, scheduler {plan.one(LISTENER).inputs['scheduler']}\n")
    with _interrupts_as_exit():
        report = rehearse(plan, material, previous, config.domain, simulated_revocation=simulated, keep=keep)
    print(report.table())
    print(f"\n{sum(c.passed for c in report.checks)} passed, {sum(not c.passed for c in report.checks)} failed")
    if report_json:
        Path(report_json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.passed else 1
