"""Shared fixtures: a small PKI built once per session (RSA keys cost ~20 ms each)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

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
)

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


def openssl(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], input=input.decode() if input else None, capture_output=True,
                          text=True, cwd=cwd, check=False)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# Tests that mostly wait (on HAProxy's health checks, on child processes) go first: with `-n 2` they
# then overlap the CPU-bound rest instead of running alone at the end.
_WAITING_FIRST = ("test_rehearsal.py", "test_verify.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in _WAITING_FIRST)
