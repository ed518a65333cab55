"""The planned listener as HAProxy serves it, and the HAProxy process.

HAProxy gets its listening socket from us (`bind fd@N`): we bind a free port and hand the socket
over, so no other process can take the port in between. It is ready when its own admin socket
answers, never judged by a TCP port another HAProxy might hold.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import time
from collections.abc import Callable, Sequence

from slbmtls import clb
from slbmtls.rehearsal.backends import Backend
from slbmtls.rehearsal.processes import Workdir, spawn, stop
from slbmtls.rehearsal.spec import ListenerSpec


def haproxy_config(spec: ListenerSpec, listen_fd: int, backends: Sequence[Backend], folder: str) -> str:
    """HAProxy configuration for the spec; `folder` holds ca.pem, server.pem and the admin socket."""
    versions = spec.tls_versions
    ssl_opts = f"ssl-min-ver {versions[0]} ssl-max-ver {versions[-1]}"  # HAProxy spells them as we do
    suites = clb.TLS_POLICIES[spec.tls_policy].suites
    tls12 = ":".join(s for s in suites if not s.startswith("TLS_"))
    if versions[0] in ("TLSv1.0", "TLSv1.1"):
        tls12 += ":@SECLEVEL=0"  # OpenSSL 3 offers TLS 1.0/1.1 (and 3DES) at level 0 only
    ssl_opts += f" ciphers {tls12}"
    if tls13 := ":".join(s for s in suites if s.startswith("TLS_")):
        ssl_opts += f" ciphersuites {tls13}"
    lines = [
        "global",
        f"    stats socket {folder}/admin.sock mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        f"    timeout client {spec.idle_timeout}s",
        f"    timeout http-keep-alive {spec.idle_timeout}s",
        f"    timeout server {spec.request_timeout}s",
        "frontend https",
        # client certificates required and verified against the planned CA; no crl-file, as on CLB
        f"    bind fd@{listen_fd} ssl crt {folder}/server.pem ca-file {folder}/ca.pem verify required "
        f"alpn {'h2,http/1.1' if spec.http2 else 'http/1.1'} {ssl_opts}",
        "    option forwardfor",
        *(["    http-request set-header X-Forwarded-Proto https"] if spec.forward_slb_proto else []),
        *(["    http-request set-header SLB-IP %[dst]"] if spec.forward_slb_ip else []),
        *([f"    http-request set-header SLB-ID {spec.load_balancer_id}"] if spec.forward_slb_id else []),
        *(["    compression algo gzip", "    compression type text/html text/plain text/css application/json"
           " application/javascript text/xml application/xml"] if spec.gzip else []),
        "    default_backend app",
        "backend app",
        f"    balance {'leastconn' if spec.scheduler == 'wlc' else 'roundrobin'}",
    ]
    check = ""
    if (h := spec.health) is not None:
        version = f"HTTP/1.1 hdr Host {h.domain}" if h.domain else "HTTP/1.0"
        lines += [
            "    option httpchk",
            f"    http-check send meth {h.method} uri {h.uri} ver {version}",
            f"    http-check expect rstatus ^[{h.codes}]",
            f"    timeout check {h.timeout}s",
        ]
        check = f" check inter {h.interval}s rise {h.rise} fall {h.fall}"
    for backend, weight in zip(backends, spec.reduced_weights, strict=True):
        lines.append(f"    server {backend.name} 127.0.0.1:{backend.port} weight {weight}{check}")
    return "\n".join(lines) + "\n"


class HAProxy:
    """HAProxy serving `spec` from files in `workdir/<sub>`; stopped by `stop()` or by our death."""

    def __init__(self, spec: ListenerSpec, backends: Sequence[Backend], workdir: Workdir,
                 sub: str = "listener", *, edit: Callable[[str], str] | None = None) -> None:
        """`edit` rewrites the generated configuration (tests serve deliberately wrong listeners)."""
        self.folder = workdir.path / sub
        workdir.write(f"{sub}/ca.pem", spec.ca_pem)
        workdir.write(f"{sub}/server.pem", spec.server_pem)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        fd = self._socket.fileno()
        text = haproxy_config(spec, fd, backends, str(self.folder))
        config = workdir.write(f"{sub}/haproxy.cfg", edit(text) if edit else text)
        checked = subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True,
                                 check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, pass_fds=(fd,))
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy rejected the generated configuration:\n{checked.stderr}{checked.stdout}")
        self.process = spawn(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, pass_fds=(fd,))
        self._wait_ready()

    def _wait_ready(self, within: float = 15) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"haproxy exited: {stderr}")
            try:
                self.server_states()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"haproxy's admin socket did not answer within {within:.0f} s")

    def _admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.folder / "admin.sock"))
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def server_states(self) -> dict[str, str]:
        rows = csv.DictReader(io.StringIO(self._admin("show stat").lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "app" and r["svname"] != "BACKEND"}

    def wait_states(self, done: Callable[[dict[str, str]], bool], budget: float) -> dict[str, str]:
        deadline = time.monotonic() + budget
        states = self.server_states()
        while not done(states) and time.monotonic() < deadline:
            time.sleep(0.1)
            states = self.server_states()
        return states

    def stop(self) -> None:
        stop(self.process)
        self._socket.close()
