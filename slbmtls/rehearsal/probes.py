"""TLS clients and the checks of the tutorial's step 7, shared by `make rehearse` (against HAProxy)
and `make verify` (against the deployed listener, or anything else serving it).

A request counts as served only when an HTTP response with a 2xx or 3xx status comes back: a listener
may refuse a client in the handshake, or after it with HTTP 400 (as nginx and CLB's Tengine do).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import Issued, PkiMaterial, fingerprint
from pki.issued import certificate_pem
from slbmtls.rehearsal.processes import Workdir
from slbmtls.rehearsal.report import Report

TLS_VERSIONS = {"TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
REFUSED = "refused (TLS or 4xx)"


@dataclass(frozen=True)
class Endpoint:
    """Where to connect, and the name sent as SNI and Host (the stack's domain)."""

    host: str
    port: int
    sni: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (SNI {self.sni})"


@dataclass(frozen=True)
class Credential:
    label: str
    cert: Path
    key: Path


@dataclass
class Response:
    served: bool
    status: int | None = None
    body: str = ""
    error: str | None = None
    peer_der: bytes | None = None

    def describe(self) -> str:
        return self.error or f"HTTP {self.status}"


def _context(credential: Credential | None, version: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the served certificate is compared with the plan instead
    if version is not None:
        with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: probing that they are refused
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        if version in ("TLSv1.0", "TLSv1.1"):
            context.set_ciphers("ALL:@SECLEVEL=0")  # else this OpenSSL will not even offer them
    if credential is not None:
        context.load_cert_chain(str(credential.cert), str(credential.key))
    return context


def _alert(exc: ssl.SSLError) -> str:
    reason = (exc.reason or str(exc)).lower()
    for prefix in ("sslv3_alert_", "tlsv1_alert_", "tlsv13_alert_"):
        reason = reason.removeprefix(prefix)
    return f"TLS alert: {reason.replace('_', ' ')}"


def request(endpoint: Endpoint, credential: Credential | None = None, *, timeout: float = 5) -> Response:
    """GET / on a fresh connection."""
    context = _context(credential)
    peer = None
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=endpoint.sni) as tls:
            peer = tls.getpeercert(binary_form=True)
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {endpoint.sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    except ssl.SSLError as exc:
        return Response(False, error=_alert(exc), peer_der=peer)
    except OSError as exc:
        return Response(False, error=f"{type(exc).__name__}: {exc.strerror or exc}", peer_der=peer)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode(errors="replace")
    parts = status_line.split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        return Response(False, error="no HTTP response", peer_der=peer)
    status = int(parts[1])
    return Response(200 <= status < 400, status, body.decode(errors="replace").strip(),
                    None if status < 400 else status_line, peer)


def offered(endpoint: Endpoint, version: str, credential: Credential, timeout: float = 5) -> bool | None:
    """Whether the listener completes a handshake at exactly this TLS version (with a client
    certificate, so a refusal is about the version); None when this machine cannot try it."""
    try:
        context = _context(credential, version)
    except (ValueError, ssl.SSLError):
        return None
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=endpoint.sni) as tls:
            # Python names TLS 1.0 "TLSv1"; TLS_VERSIONS spells it "TLSv1.0"
            return {"TLSv1": "TLSv1.0"}.get(tls.version() or "", tls.version()) == version
    except ssl.SSLError as exc:
        return None if "no_protocols_available" in (exc.reason or "").lower() else False
    except OSError:
        return False


# -- probe certificates ------------------------------------------------------------------------


def _leaf(cn: str, issuer: x509.Name, issuer_key: object, start: dt.datetime, end: dt.datetime,
          subject: x509.Name | None = None) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(issuer_key, hashes.SHA256()))  # type: ignore[arg-type]
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return certificate_pem(cert), key_pem


class Probes:
    """Client credentials in a private folder: the stack's bundles and the made-up probes. Probe
    certificates are made against the real clock the listener checks (never part of a plan)."""

    def __init__(self, workdir: Workdir, material: PkiMaterial) -> None:
        self.workdir, self.material = workdir, material
        self._now = dt.datetime.now(dt.UTC)
        self._made: dict[str, Credential] = {}

    def _pair(self, label: str, cert_pem: str, key_pem: str, file: str | None = None) -> Credential:
        file = file or label
        if file not in self._made:
            self._made[file] = Credential(label, self.workdir.write(f"probes/{file}.crt", cert_pem),
                                          self.workdir.write(f"probes/{file}.key", key_pem))
        return self._made[file]

    def bundle(self, name: str, issued: Issued, epoch: str) -> Credential:
        """A client's certificate and key as its bundle has them (files named by CA epoch)."""
        return self._pair(name, issued.certificate_pem, issued.private_key_pem(), f"{name}.{epoch}")

    def foreign(self) -> Credential:
        """From a CA with the very same name as ours but another key: refused only if the listener
        checks signatures, not names."""
        foreign_ca = ec.generate_private_key(ec.SECP256R1())
        ca = self.material.ca.certificate
        return self._pair("foreign", *_leaf("foreign-probe", ca.subject, foreign_ca, self._now - dt.timedelta(days=1),
                                            self._now + dt.timedelta(days=30)))

    def expired(self) -> Credential:
        """From our CA, expired yesterday."""
        return self._pair("expired", *_leaf("expired-probe", self.material.ca.certificate.subject,
                                            self.material.ca.private_key, self._now - dt.timedelta(days=30),
                                            self._now - dt.timedelta(days=1)))

    def ec_client(self) -> Credential:
        """An EC P-256 client from our CA, valid now (for stacks that have no EC client)."""
        return self._pair("ec-probe", *_leaf("ec-probe", self.material.ca.certificate.subject,
                                             self.material.ca.private_key, self._now - dt.timedelta(days=1),
                                             self._now + dt.timedelta(days=1)))

    def server_as_client(self) -> Credential | None:
        server = self.material.server
        if server.private_key is None:
            return None
        return self._pair("server-as-client", server.chain_pem, server.private_key_pem())


# -- the checks ----------------------------------------------------------------------------------


def current_clients(material: PkiMaterial) -> list[str]:
    """Clients whose bundles we can make (signed from a CSR: the client holds the key)."""
    return [n for n, c in material.clients.items() if c.has_private_key]


def check_server_certificate(report: Report, endpoint: Endpoint, material: PkiMaterial, response: Response) -> None:
    planned = material.server.fingerprint
    if response.peer_der is None:
        observed = f"no certificate ({response.describe()})"
    else:
        served = fingerprint(x509.load_der_x509_certificate(response.peer_der))
        observed = "matches plan" if served == planned else f"differs: {served[:23]}"
    report.add("server certificate", f"planned {planned[:23]} for {endpoint.sni}", observed,
               observed == "matches plan")


def check_tls_versions(report: Report, endpoint: Endpoint, versions: Sequence[str], credential: Credential) -> None:
    seen = {v: offered(endpoint, v, credential) for v in TLS_VERSIONS}
    observed = " ".join(v if ok else f"({v}: cannot probe here)" for v, ok in seen.items() if ok is not False)
    report.add("TLS versions offered", " ".join(versions), observed or "none",
               all(seen[v] is (v in versions) for v in TLS_VERSIONS))


def check_refusals(report: Report, endpoint: Endpoint, probes: Probes) -> None:
    cases: list[tuple[str, Credential | None]] = [
        ("no client certificate", None),
        ("certificate from another CA", probes.foreign()),
        ("expired client certificate", probes.expired()),
    ]
    server = probes.server_as_client()
    if server is None:
        report.notes.append("server certificate as client: not tried, its key is not available offline")
    else:
        cases.append(("server certificate as client", server))
    for name, credential in cases:
        response = request(endpoint, credential)
        report.add(f"refused: {name}", REFUSED,
                   f"served! HTTP {response.status}" if response.served else response.describe()[:60],
                   not response.served)


def check_clients(report: Report, endpoint: Endpoint, probes: Probes, material: PkiMaterial,
                  names: Sequence[str], label: str = "") -> None:
    """Every named current client accepted; EC clients named as such (whether CLB takes EC client
    certificates is documented nowhere), and an EC probe when the stack has none."""
    has_ec = False
    for name in names:
        ec_client = isinstance(material.clients[name].certificate.public_key(), ec.EllipticCurvePublicKey)
        has_ec |= ec_client
        response = request(endpoint, probes.bundle(name, material.clients[name], material.ca.epoch))
        report.add(f"{label}accepted: {name}{' (EC P-256)' if ec_client else ''}", "served",
                   "served" if response.served else response.describe()[:60], response.served)
    if not has_ec and not label:
        response = request(endpoint, probes.ec_client())
        report.add("accepted: EC P-256 client (probe)", "served",
                   "served" if response.served else response.describe()[:60], response.served)


def check_previous_epoch(report: Report, endpoint: Endpoint, probes: Probes, previous: PkiMaterial,
                         label: str = "") -> None:
    """After a revocation or CA rotation, every bundle of the CA epoch before is refused."""
    for name in current_clients(previous):
        response = request(endpoint, probes.bundle(name, previous.clients[name], previous.ca.epoch))
        report.add(f"{label}refused: {name}'s bundle from CA epoch {previous.ca.epoch}", REFUSED,
                   "served!" if response.served else response.describe()[:60], not response.served)


def spread(report: Report, endpoint: Endpoint, credential: Credential, requests: int,
           expect_backends: int | None) -> list[Response]:
    """Requests with one client's bundle, each on a fresh connection; distinct bodies counted."""
    responses = [request(endpoint, credential) for _ in range(requests)]
    served = [r for r in responses if r.served]
    distinct = len({r.body for r in served})
    expected = f"{requests} served" + (f" by {expect_backends} backends" if expect_backends else "")
    report.add(f"{credential.label}'s requests spread over backends", expected,
               f"{len(served)} served by {distinct} distinct backend{'s' if distinct != 1 else ''}",
               len(served) == requests and (expect_backends is None or distinct == expect_backends))
    return responses
