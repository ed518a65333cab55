"""Shared fixtures: a small PKI built once per session (RSA keys cost ~20 ms each)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pki import (
    ClientSpec,
    KeyType,
    PkiMaterial,
    PkiSpec,
    Revocation,
    Seed,
    ServerSpec,
    Subject,
    Validity,
    build_material,
    headstart,
    keypool,
    pkcs12_bytes,
    sharedqueue,
)
from pki.bundle import Profile
from pki.issued import Issued

ISSUED = dt.date(2026, 11, 27)
TODAY = dt.date(2026, 12, 1)
SEED = Seed(bytes.fromhex("5e" * 32))
SUBJECT = Subject("Example client CA", country="CN", state="Zhejiang", organization="Example Corp",
                  organizational_unit="IT")
# -attime for openssl: a moment inside every test certificate's lifetime
AT_TIME = str(int(dt.datetime(2027, 1, 15, tzinfo=dt.UTC).timestamp()))
# ... and inside the CRLs' 30-day validity
CRL_TIME = str(int(dt.datetime(2026, 12, 10, tzinfo=dt.UTC).timestamp()))


def client(name: str, **kwargs: object) -> ClientSpec:
    kwargs.setdefault("validity", Validity(ISSUED, 365))
    return ClientSpec(name, **kwargs)  # type: ignore[arg-type]


def spec(revocations: tuple[Revocation, ...] = (), **kwargs: object) -> PkiSpec:
    base: dict[str, object] = {
        "subject": SUBJECT,
        "ca_validity": Validity(ISSUED, 3650),
        "server": ServerSpec(("mtls.example.com", "www.mtls.example.com"), Validity(ISSUED, 397)),
        "clients": (client("alice", email="alice@example.com"), client("bob"),
                    client("edge", key_type=KeyType.EC_P256)),
        "revocations": revocations,
    }
    base.update(kwargs)
    return PkiSpec(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def material() -> PkiMaterial:
    return build_material(SEED, spec(), today=TODAY)


@pytest.fixture(scope="session")
def revoked_material() -> PkiMaterial:
    return build_material(SEED, spec((Revocation("bob", "keyCompromise"),)), today=TODAY)


def material_pems(m: PkiMaterial) -> str:
    """Every PEM of a material, keys included: what must be byte-identical across processes."""
    return (m.ca.issued.certificate_pem + m.server.chain_pem + m.server.private_key_pem()
            + "".join(c.certificate_pem + c.private_key_pem() for c in m.clients.values()) + m.crl_pem)


_PKCS12: dict[tuple[str, str, str, str, str], bytes] = {}


def pkcs12_once(name: str, issued: Issued, ca_certificate: x509.Certificate, password: str,
                profile: Profile) -> bytes:
    """pki.pkcs12_bytes, built once per process for each client, CA, password and profile: a
    modern-profile file costs ~0.65 s to build (600,000 rounds, three times), and the tests that use
    it are about what openssl, NSS and GnuTLS read from it. A rebuilt file would differ only in its
    random salts."""
    key = (name, issued.fingerprint, ca_certificate.fingerprint(hashes.SHA256()).hex(), password, profile.value)
    if key not in _PKCS12:
        _PKCS12[key] = pkcs12_bytes(name, issued, ca_certificate, password, profile)
    return _PKCS12[key]


def openssl(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], input=input.decode() if input else None, capture_output=True,
                          text=True, cwd=cwd, check=False)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# -- RSA keys derived once per test session, not once per xdist worker --------------------------
# pki.keypool memoises derived keys per process; every worker used to derive the same stack keys
# again (prod's RSA-4096 pair alone costs ~1.5 s). Here a key derived by real det-keygen in any
# worker is kept, as DER, in the session's temporary folder (0700, test seeds only) and loaded by the
# others. CLI subprocesses never see it: the cross-process tests still compare fresh derivations.
_REAL_RSA_KEY = keypool.rsa_key
_REAL_PREFETCH = keypool.prefetch
_REAL_START = keypool.start


def _shared_key_path(folder: Path, dk_seed: bytes, bits: int) -> Path:
    return folder / f"{bits}-{hashlib.sha256(dk_seed).hexdigest()}.der"


def _load_shared(folder: Path, dk_seed: bytes, bits: int) -> rsa.RSAPrivateKey | None:
    try:
        data = _shared_key_path(folder, dk_seed, bits).read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits
    keypool._CACHE[(dk_seed, bits)] = key
    return key


@pytest.fixture(scope="session", autouse=True)
def _session_rsa_keys(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[None]:
    base = tmp_path_factory.getbasetemp()  # an xdist worker's is <this run's folder>/popen-gwN
    folder = (base.parent if hasattr(pytestconfig, "workerinput") else base) / "derived-rsa-keys"
    folder.mkdir(mode=0o700, exist_ok=True)

    def rsa_key(dk_seed: bytes, bits: int) -> rsa.RSAPrivateKey:
        key = keypool._CACHE.get((dk_seed, bits)) or _load_shared(folder, dk_seed, bits)
        if key is None:
            key = _REAL_RSA_KEY(dk_seed, bits)
            path = _shared_key_path(folder, dk_seed, bits)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
            partial.replace(path)  # whole or absent for the other workers
        return key

    def prefetch(requests: Iterable[tuple[bytes, int]]) -> None:
        # keys another worker derived are loaded, so the helper process starts only for new ones
        _REAL_PREFETCH(_not_shared(requests))

    def start(requests: Iterable[tuple[bytes, int]], *, minimum: int = keypool.MIN_PARALLEL) -> None:
        _REAL_START(_not_shared(requests), minimum=minimum)  # the offline tools' head start, likewise

    def _not_shared(requests: Iterable[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
        return [r for r in requests if r not in keypool._CACHE and _load_shared(folder, *r) is None]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keypool, "rsa_key", rsa_key)
        patch.setattr(keypool, "prefetch", prefetch)
        patch.setattr(keypool, "start", start)
        yield


# The issuing helper (pki.headstart) derives its CA key afresh (~0.3 s of CPU with its start-up) for every
# plan with enough clients (16+ EC or CSR, or one RSA): off by default here, on for the tests about it
# (`issuing_helper`).
# Whoever issues, the certificates are the same (tests/test_issuing.py).
_REAL_ISSUING_START = headstart.start


@pytest.fixture(autouse=True)
def _no_issuing_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headstart, "start", lambda *args, **kwargs: None)
    monkeypatch.setattr(keypool, "_OFFERED", {})  # no helper's key offered in one test is left for the next


@pytest.fixture
def issuing_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headstart, "start", _REAL_ISSUING_START)


@pytest.fixture
def own_rsa_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests about deriving keys (the helper process): pki.keypool as it is, nothing shared."""
    monkeypatch.setattr(keypool, "rsa_key", _REAL_RSA_KEY)
    monkeypatch.setattr(keypool, "prefetch", _REAL_PREFETCH)
    monkeypatch.setattr(keypool, "start", _REAL_START)


@pytest.fixture
def cheap_bundle_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles with 1,000 KDF and MAC iterations instead of the modern profile's 600,000, for tests
    about where and how files are written (paths, links, modes, secrets in output), not about the
    profile: a modern bundle costs ~0.65 s of CPU at full strength, a legacy one ~0.15 s (its
    encrypted .key). The profile itself is tested at full strength (test_pki_bundle's 600k test,
    test_pki_openssl, test_pki_inspect, test_conformance) and by test_cli's `make bundle` smoke test."""
    from functools import partial

    from pki import bundle, issued

    iterations = 1000
    monkeypatch.setattr(bundle, "MODERN_ITERATIONS", iterations)
    monkeypatch.setattr(bundle, "remac_pkcs12", partial(bundle.remac_pkcs12, iterations=iterations))
    real = issued.Issued.encrypted_private_key_pem
    monkeypatch.setattr(issued.Issued, "encrypted_private_key_pem",
                        lambda self, password, iterations=iterations: real(self, password, iterations))


# Tests that mostly wait (on HAProxy's health checks, on child processes) go first, so they overlap
# the CPU-bound rest instead of running alone at the end: under `make unit` (worksteal) they open the
# first worker's share, and the other workers take the tests queued behind them.
_WAITING_FIRST = ("test_rehearsal.py", "test_verify.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in _WAITING_FIRST)


def replace_helper(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Run `python -c script` instead of the helper process (same pipes, same environment)."""
    real = sharedqueue.subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> Any:
        assert args[1:] == ["-m", "pki.worker"]
        return real([sys.executable, "-c", script], **kwargs)

    monkeypatch.setattr(sharedqueue.subprocess, "Popen", popen)


@dataclass
class StartedHelper:
    process: subprocess.Popen[bytes]
    args: list[str]
    env: dict[str, str]


def record_helpers(monkeypatch: pytest.MonkeyPatch,
                   then: Callable[[subprocess.Popen[bytes]], None] | None = None) -> list[StartedHelper]:
    """Every helper process pki.sharedqueue starts from now on, with its command line and
    environment (`then` adjusts each one as it starts)."""
    started: list[StartedHelper] = []
    real = sharedqueue.subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> Any:
        process = real(args, **kwargs)
        if then is not None:
            then(process)
        started.append(StartedHelper(process, list(args), dict(kwargs.get("env") or os.environ)))
        return process

    monkeypatch.setattr(sharedqueue.subprocess, "Popen", popen)
    return started


def fake_pulumi(tmp_path: Path, outputs: dict[str, object] | None) -> Path:
    """A `pulumi` on PATH whose `stack output --json` prints `outputs` (None: the command fails)."""
    tools = tmp_path / "bin"
    tools.mkdir(parents=True)
    script = tools / "pulumi"
    body = f"cat <<'JSON'\n{json.dumps(outputs)}\nJSON" if outputs is not None else "echo 'no stack named dev' >&2; exit 255"
    script.write_text(f"#!/bin/sh\nenv > '{tools}/env'\n[ \"$1 $2 $3\" = 'stack output --json' ] || exit 3\n{body}\n")
    script.chmod(0o755)
    return tools
