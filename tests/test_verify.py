"""`make verify` against listeners served locally: the rehearsal's HAProxy (passes), deliberately
wrong HAProxy listeners (each fails), and nginx, software the project does not use, configured
rightly (passes) and wrongly (fails)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fake_pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stackrun import ROOT, TEST_SEED, run_cli

from slbmtls import cli
from slbmtls.offline import OfflineStack, UserError
from slbmtls.rehearsal.backends import Backend
from slbmtls.rehearsal.haproxy import HAProxy
from slbmtls.rehearsal.probes import TLS_VERSIONS, Credential, Endpoint, offered
from slbmtls.rehearsal.processes import Workdir
from slbmtls.rehearsal.spec import ListenerSpec, listener_spec
from slbmtls.stackfile import load_stack

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is installed by .ci/run")


@pytest.fixture(scope="module")
def dev() -> OfflineStack:
    return OfflineStack(load_stack(ROOT, "dev"), TEST_SEED, "test", {})


@pytest.fixture(scope="module", autouse=True)
def _planned_once(dev: OfflineStack) -> Iterator[None]:
    """Each in-process `verify` loads the dev stack with the test seed and plans it: the same plan
    every time (~0.2 s of CPU, ten times here). It is made once and handed to those loads; verify's
    checks, probes and report still run for real, and the smoke test's subprocess plans for itself."""
    original = OfflineStack.plan
    shared = dev.plan()

    def plan(self: OfflineStack, overrides: dict[str, Any] | None = None) -> Any:
        same = self.stack_file == dev.stack_file and self.seed_hex == dev.seed_hex and not self._file_secrets
        return shared if same and not overrides else original(self, overrides)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OfflineStack, "plan", plan)
        yield


@pytest.fixture(scope="module")
def spec(dev: OfflineStack) -> ListenerSpec:
    planned = dev.plan()
    return listener_spec(planned.plan, planned.config.domain)


@pytest.fixture(scope="module")
def served(spec: ListenerSpec) -> Iterator[tuple[Workdir, list[Backend]]]:
    with Workdir("slb-mtls-test-") as workdir:
        backends = [Backend("backend-1"), Backend("backend-2")]
        try:
            yield workdir, backends
        finally:
            for backend in backends:
                backend.stop()


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKI_SEED", TEST_SEED)


def verify(tmp_path: Path, port: int, *extra: str) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report.json"
    code = cli.main(["verify", "--stack", "dev", "--url", f"https://127.0.0.1:{port}", "--report-json", str(report),
                     *extra])
    return code, json.loads(report.read_text()) if report.exists() else {}


def failed(report: dict[str, Any]) -> set[str]:
    return {c["name"] for c in report["checks"] if not c["passed"]}


def haproxy(spec: ListenerSpec, served: tuple[Workdir, list[Backend]], sub: str,
            edit: Callable[[str], str] | None = None) -> HAProxy:
    workdir, backends = served
    return HAProxy(spec, backends, workdir, sub, edit=edit)


def test_smoke_the_rehearsal_listener_passes(tmp_path: Path, spec: ListenerSpec, served: Any) -> None:
    """As a user (and the deploy workflow) runs it: a subprocess, the seed from PKI_SEED."""
    proxy = haproxy(spec, served, "right")
    report = tmp_path / "report.json"
    try:
        result = run_cli("verify", "--stack", "dev", "--url", f"https://127.0.0.1:{proxy.port}", "--report-json",
                         str(report), "--expect-backends", "2", subprocess_=True)
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    names = [c["name"] for c in json.loads(report.read_text())["checks"]]
    assert {"server certificate", "TLS versions offered", "refused: no client certificate",
            "refused: certificate from another CA", "refused: expired client certificate",
            "refused: server certificate as client", "alice's requests spread over backends",
            "accepted: build-agent (EC P-256)"} <= set(names)
    assert "4 served by 2 distinct backends" in result.stdout
    assert TEST_SEED not in result.stdout + result.stderr
    assert report.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("wrong", "caught"), [
    ("client certificate optional", {"refused: no client certificate"}),
    ("another server certificate", {"server certificate"}),
    ("TLS 1.0 allowed", {"TLS versions offered"}),
])
def test_wrong_listeners_fail(tmp_path: Path, spec: ListenerSpec, served: Any, wrong: str, caught: set[str]) -> None:
    edit = None
    if wrong == "client certificate optional":
        edit = lambda text: text.replace("verify required", "verify optional")  # noqa: E731
    elif wrong == "another server certificate":
        other = OfflineStack(load_stack(ROOT, "dev"), "1f9e4c7a2b58d03e6a91c4f7b2e85d106c3fa97e4b21d85c0a6e3f9b17d42c58", "test", {}).plan()
        spec = dataclasses.replace(spec, server_pem=listener_spec(other.plan, other.config.domain).server_pem)
    else:
        spec = dataclasses.replace(spec, tls_policy="tls_cipher_policy_1_0")
    proxy = haproxy(spec, served, wrong.replace(" ", "-"), edit)
    try:
        code, report = verify(tmp_path, proxy.port)
    finally:
        proxy.stop()
    assert code == 1
    assert caught <= failed(report), report


@pytest.mark.usefixtures("seeded")
def test_expect_backends_is_a_check(tmp_path: Path, spec: ListenerSpec, served: Any) -> None:
    proxy = haproxy(spec, served, "three")
    try:
        code, report = verify(tmp_path, proxy.port, "--expect-backends", "3")
    finally:
        proxy.stop()
    assert code == 1
    assert failed(report) == {"alice's requests spread over backends"}


@pytest.mark.usefixtures("seeded")
def test_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert verify(tmp_path, closed)[0] == 2
    assert cli.main(["verify", "--stack", "dev", "--url", "http://x"]) == 2
    assert cli.main(["verify", "--stack", "dev", "--url", "https://[::1"]) == 2  # no traceback
    assert cli.main(["verify", "--stack", "dev", "--url", "https://host:port"]) == 2
    assert cli.main(["verify", "--stack", "dev", "--url", "https://127.0.0.1:1", "--client", "zoe"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to 127.0.0.1" in err and "expected https://host[:port]" in err
    assert "CLIENT=zoe: not a current client" in err and "Traceback" not in err


def test_without_url_or_pulumi_it_asks_for_url(tmp_path: Path) -> None:
    result = run_cli("verify", "--stack", "dev", env={"PATH": "/usr/bin:/bin"})  # no pulumi CLI there
    assert result.returncode == 2
    assert "pass it: make verify STACK=<stack> URL=https://" in result.stderr
    assert "Traceback" not in result.stderr


# -- nginx: not HAProxy, and refusing a cert-less client with HTTP 400 after the handshake -------


def _nginx_config(folder: Path, port: int, backends: list[Backend], domain: str, *, verify: str,
                  protocols: str) -> str:
    upstream = "".join(f"server 127.0.0.1:{b.port}; " for b in backends)
    temp = " ".join(f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
    return (f"daemon off; master_process off; worker_processes 1; pid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log;\nevents {{}}\n"
            f"http {{ access_log off; {temp}\n upstream app {{ {upstream} }}\n"
            f" server {{ listen 127.0.0.1:{port} ssl; server_name {domain};\n"
            f"  ssl_certificate {folder}/server.pem; ssl_certificate_key {folder}/server.pem;\n"
            f"  ssl_client_certificate {folder}/ca.pem; ssl_verify_client {verify}; ssl_protocols {protocols};\n"
            f"  location / {{ proxy_pass http://app; }} }} }}\n")


@pytest.fixture
def nginx(spec: ListenerSpec, served: Any, tmp_path: Path) -> Iterator[Callable[..., int]]:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is installed by .ci/run")
    started: list[subprocess.Popen[bytes]] = []

    def start(*, verify: str = "on", protocols: str = "TLSv1.2") -> int:
        backends = served[1]
        folder = tmp_path / f"nginx-{len(started)}"
        folder.mkdir(mode=0o700)
        (folder / "server.pem").write_text(spec.server_pem)
        (folder / "ca.pem").write_text(spec.ca_pem)
        for _ in range(5):  # a free port, unless someone takes it before nginx binds it
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            (folder / "nginx.conf").write_text(_nginx_config(folder, port, backends, spec.domain, verify=verify,
                                                             protocols=protocols))
            process = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                                       stderr=subprocess.DEVNULL)
            started.append(process)
            for _ in range(100):
                if process.poll() is not None:
                    break
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        return port
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


@pytest.mark.usefixtures("seeded")
def test_nginx_rightly_configured_passes(tmp_path: Path, nginx: Callable[..., int],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, report = verify(tmp_path, nginx(), "--expect-backends", "2")
    assert code == 0, capsys.readouterr().out
    no_cert = next(c for c in report["checks"] if c["name"] == "refused: no client certificate")
    assert no_cert["observed"].startswith("HTTP/1.1 400")  # refused after the handshake, not in it


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("settings", "caught"), [
    ({"verify": "optional"}, "refused: no client certificate"),
    ({"verify": "optional_no_ca"}, "refused: certificate from another CA"),
    ({"protocols": "TLSv1.2 TLSv1.3"}, "TLS versions offered"),
])
def test_nginx_wrongly_configured_fails(tmp_path: Path, nginx: Callable[..., int], settings: dict[str, str],
                                        caught: str) -> None:
    code, report = verify(tmp_path, nginx(**settings))
    assert code == 1
    assert caught in failed(report)


def test_the_deploy_workflow_verifies_after_every_up() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    for job in workflow["jobs"].values():
        steps = job["steps"]
        ups = [i for i, s in enumerate(steps) if s.get("with", {}).get("command") == "up"]
        for i in ups:
            later = " ".join(s.get("run", "") for s in steps[i + 1:])
            assert '-m slbmtls verify --stack="$STACK"' in later  # not make: its exit 2 would mean 'retry'


def test_the_previous_epoch_includes_a_revoked_client_that_left(dev: OfflineStack) -> None:
    from conftest import client, spec

    from pki import Revocation

    now = spec((Revocation("bob", "keyCompromise"), Revocation("zed", client=client("zed"))))
    before = dev.previous_epoch(now)
    assert before is not None
    assert [r.name for r in before.revocations] == ["bob"]
    assert "zed" in [c.name for c in before.clients]  # it had a bundle in that epoch: verify tries it
    first = dev.previous_epoch(spec())
    assert first is None


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("only", ["TLSv1.0", "TLSv1.2"])
def test_offered_sees_the_one_version_a_server_allows(tmp_path: Path, only: str) -> None:
    """Python names TLS 1.0 'TLSv1': a listener offering exactly 1.0 must still be seen offering it."""
    server_cert, server_key = _self_signed(tmp_path, "server")
    client = Credential("client", *_self_signed(tmp_path, "client"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = TLS_VERSIONS[only]
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(str(server_cert), str(server_key))
    listener = socket.create_server(("127.0.0.1", 0))
    endpoint = Endpoint("127.0.0.1", listener.getsockname()[1], "mtls.example.com")

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener is closed under it at the end
            while True:
                conn, _ = listener.accept()
                with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        seen = {v: offered(endpoint, v, client) for v in TLS_VERSIONS}
    finally:
        listener.close()
    if seen[only] is None:
        pytest.skip(f"this machine's OpenSSL cannot try {only}")
    assert seen[only] is True
    assert not any(seen[v] for v in TLS_VERSIONS if v != only)


@pytest.mark.parametrize("args", [["--url", "http://x"], ["--url", "https://host:port"],
                                  ["--url", "https://127.0.0.1:1", "--expect-backends", "0"]])
def test_what_needs_no_plan_is_refused_before_planning(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    def plan(*_: object, **__: object) -> None:
        raise AssertionError("planned")

    monkeypatch.setattr(OfflineStack, "plan", plan)
    assert cli.main(["verify", "--stack", "dev", *args]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_without_url_it_reads_the_stack_url_output(dev: OfflineStack, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `pulumi stack output --json` (stackfile.deployed_outputs), as `make guard` reads it."""
    from slbmtls.verify import stack_url

    for i, (outputs, expected) in enumerate([({"url": "https://203.0.113.7:443\n"}, "https://203.0.113.7:443"),
                                             ({}, "has no `url` output"), (None, "cannot be read")]):
        monkeypatch.setenv("PATH", f"{fake_pulumi(tmp_path / str(i), outputs)}{os.pathsep}/usr/bin:/bin")
        if outputs and "url" in outputs:
            assert stack_url(dev) == expected
        else:
            with pytest.raises(UserError, match=expected) as refused:
                stack_url(dev)
            assert "pass it: make verify STACK=<stack> URL=https://" in str(refused.value)
