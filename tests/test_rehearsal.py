"""The rehearsal end to end: HAProxy serving the planned listener, checked with real TLS clients."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from stackrun import ROOT, TEST_SEED, run_cli

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is installed by .ci/run")


def rehearse(tmp_path: Path, stack: str, project: Path = ROOT) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / f"{stack}.json"
    result = run_cli("rehearse", "--stack", stack, "--report-json", str(report), project=project)
    return result, json.loads(report.read_text()) if report.exists() else {}


def test_dev_rehearsal(tmp_path: Path) -> None:
    result, report = rehearse(tmp_path, "dev")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["passed"] is True
    assert report["sequence"] == ["backend-1", "backend-2", "backend-1", "backend-2"]  # rr alternates (step 7.3)
    names = [c["name"] for c in report["checks"]]
    assert "refused: no client certificate" in names
    assert "backend-2 stopped: taken out" in names
    assert "what-if (alice revoked): revoked alice: old bundle" in names  # revocation as CLB would see it
    assert "12 passed, 0 failed" in result.stdout


def test_wrr_three_backends_ec_client_and_revocation(tmp_path: Path) -> None:
    result, report = rehearse(tmp_path, "wrr", ROOT / "tests" / "rehearsal")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {b: report["sequence"].count(b) for b in set(report["sequence"])}
    assert counts == {"backend-1": 4, "backend-2": 2, "backend-3": 2}  # weights 100:50:50
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["revoked mallory: old bundle"]["passed"]
    assert checks["re-issued edge-device: new bundle"]["passed"]
    assert checks["re-issued carol: new bundle"]["passed"]


def test_two_rehearsals_at_once(tmp_path: Path) -> None:
    """No fixed ports: two run side by side."""
    code = ("import sys; from pathlib import Path; import slbmtls.cli as c; "
            "sys.exit(c.main(['rehearse', '--stack', 'dev']))")
    env = {**os.environ, "PKI_SEED": TEST_SEED}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs


def test_keep_leaves_it_running_for_curl_then_cleans_up_on_ctrl_c() -> None:
    code = "import sys; import slbmtls.cli as c; sys.exit(c.main(['rehearse', '--stack', 'dev', '--keep']))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PKI_SEED": TEST_SEED})
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.lstrip().startswith("curl") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        command = next(line.strip() for line in lines if line.lstrip().startswith("curl"))
        workdir = Path(command.split("--cacert ")[1].split()[0]).parent
        assert (workdir / "alice.key").stat().st_mode & 0o777 == 0o600
        served = subprocess.run(["bash", "-c", command + " -sS"], capture_output=True, text=True, timeout=30)
        assert served.returncode == 0, served.stderr
        assert served.stdout.startswith("backend backend-")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert not workdir.exists()
        assert not _processes_mentioning(str(workdir))
    finally:
        if proc.poll() is None:
            proc.kill()


def _processes_mentioning(text: str) -> list[Path]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline)
        except OSError:  # the process ended while we looked
            continue
    return found
