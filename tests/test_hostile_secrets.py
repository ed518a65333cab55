"""A known seed through plan and bundle: found in no written file, no output, no environment change,
no child's arguments or environment. (The KEEP=1 rehearsal part belongs with the rehearsal.)"""

from __future__ import annotations

import base64
import os
import stat
import sys
from pathlib import Path

import pytest
from stackrun import ROOT, TEST_SEED, project_with

from slbmtls import cli

SEED_BYTES = bytes.fromhex(TEST_SEED)
FORMS = [TEST_SEED, TEST_SEED.upper(), base64.b64encode(SEED_BYTES).decode(), base64.b32encode(SEED_BYTES).decode()]


def assert_no_seed(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert SEED_BYTES not in data, f"the seed's bytes in {where}"
    for form in FORMS:
        assert form.encode() not in data and form.lower().encode() not in data.lower(), f"the seed in {where}"


def assert_no_seed_in_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    for path in files:
        assert_no_seed(path.read_bytes(), str(path))
    return files


@pytest.mark.usefixtures("cheap_bundle_kdf")  # about secrets in files and output, not the profile
@pytest.mark.parametrize("show_secrets", ["0", "1"])
def test_plan_and_bundle_never_write_or_print_the_seed(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, show_secrets: str) -> None:
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    monkeypatch.setenv("SHOW_SECRETS", show_secrets)
    project = project_with(tmp_path, {"dev": (ROOT / "Pulumi.dev.yaml").read_text()})
    environment = dict(os.environ)
    out = tmp_path / "written"
    out.mkdir()
    assert cli.main(["--project-dir", str(project), "plan", "--json", str(out / "plan.json")]) == 0
    assert cli.main(["--project-dir", str(project), "bundle", "--client", "alice", "--out", str(out / "alice")]) == 0
    assert cli.main(["--project-dir", str(project), "bundle", "--client", "build-agent", "--legacy",
                     "--out", str(out / "agent")]) == 0
    assert cli.main(["--project-dir", str(project), "inspect", str(out / "alice" / "alice.p12"),
                     "--password-file", str(out / "alice" / "alice.password")]) == 0
    captured = capfd.readouterr()
    assert_no_seed(captured.out + captured.err, "the output")
    password = (out / "alice" / "alice.password").read_text().strip()
    assert password not in captured.out + captured.err
    assert "PRIVATE KEY-----" not in captured.out + captured.err
    files = assert_no_seed_in_files(tmp_path)
    written = [p for p in files if out in p.parents]
    assert len(written) == 1 + 6 + 6
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    if show_secrets == "0":
        assert "PRIVATE KEY" not in (out / "plan.json").read_text()
    assert dict(os.environ) == environment  # nothing added: children would inherit it


@pytest.mark.usefixtures("cheap_bundle_kdf")
def test_a_seed_from_the_pulumi_cli_stays_in_memory(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PKI_SEED the seed comes from `pulumi config get`: the child gets nothing secret in its
    arguments or environment, and the seed it returns is written and printed nowhere."""
    stack = (ROOT / "Pulumi.dev.yaml").read_text() + "  slb-mtls:pkiSeed:\n    secure: v1:AAAA\n"
    project = project_with(tmp_path, {"dev": stack})
    tools = tmp_path / "bin"
    tools.mkdir()
    record = tmp_path / "pulumi-calls"
    (tools / "pulumi").write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f: json.dump({{'argv': sys.argv, 'env': dict(os.environ)}}, f)\n"
        f"print({TEST_SEED[:32]!r} + {TEST_SEED[32:]!r})\n"  # in halves, so the file scan below passes
    )
    (tools / "pulumi").chmod(0o755)
    monkeypatch.delenv("PKI_SEED", raising=False)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "written"
    out.mkdir()
    assert cli.main(["--project-dir", str(project), "plan", "--json", str(out / "plan.json")]) == 0
    assert cli.main(["--project-dir", str(project), "bundle", "--client", "bob", "--legacy",
                     "--out", str(out / "bob")]) == 0
    captured = capfd.readouterr()
    assert "seed: pulumi config (dev)" in captured.out
    assert_no_seed(captured.out + captured.err, "the output")
    assert "PKI_SEED" not in os.environ
    calls = record.read_text()
    assert calls.count('"argv"') == 2  # one call per command
    record.unlink()
    assert_no_seed(calls, "the pulumi child's arguments and environment")
    assert_no_seed_in_files(tmp_path)


@pytest.mark.usefixtures("own_rsa_keys")
def test_the_key_helper_process_gets_no_seed_in_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans with many RSA keys derive half of them in a helper process: it must not inherit PKI_SEED."""
    from conftest import record_helpers

    from pki import keypool

    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    seen = record_helpers(monkeypatch)
    seeds = [bytes([i]) * 16 + os.urandom(16) for i in range(keypool.MIN_PARALLEL)]
    keypool.prefetch((seed, 2048) for seed in seeds)
    assert len(seen) == 1, "the helper process did not start"
    assert "PKI_SEED" not in seen[0].env and TEST_SEED not in " ".join(seen[0].env.values())
    assert all(keypool.rsa_key(seed, 2048).key_size == 2048 for seed in seeds)  # its keys came back
