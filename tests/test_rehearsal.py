"""The rehearsal end to end: HAProxy serving the planned listener, checked with real TLS clients.
In-process where possible; subprocesses only where a process's death or its children are the test."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stackrun import ROOT, TEST_SEED

from slbmtls import cli
from slbmtls.offline import OfflineStack
from slbmtls.plan import PlannedResource
from slbmtls.rehearsal.spec import SpecError, listener_spec
from slbmtls.stackfile import load_stack

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is installed by .ci/run")


def rehearse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str,
             project: Path = ROOT) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    report = tmp_path / f"{stack}.json"
    code = cli.main(["--project-dir", str(project), "rehearse", "--stack", stack, "--report-json", str(report)])
    assert not report.exists() or report.stat().st_mode & 0o777 == 0o600
    return code, json.loads(report.read_text()) if report.exists() else {}


def test_dev_rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = rehearse(tmp_path, monkeypatch, "dev")
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["passed"] is True
    assert report["sequence"] == ["backend-1", "backend-2", "backend-1", "backend-2"]  # rr alternates (step 7.3)
    names = [c["name"].split(" from CA epoch ")[0] for c in report["checks"]]  # epochs carry a digest
    for expected in ("health checks: all backends up", "rr with alice's certificate", "TLS versions offered",
                     "refused: no client certificate", "accepted: build-agent (EC P-256)",
                     "what-if (alice revoked): refused: alice's bundle",
                     "what-if (alice revoked): accepted: bob", "backend-2 stopped: taken out"):
        assert expected in names
    assert "note: listener.bandwidth=-1 not modelled: bandwidth caps are not emulated" in out
    assert f"{len(names)} passed, 0 failed" in out


def test_wrr_three_backends_ec_client_and_revocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, report = rehearse(tmp_path, monkeypatch, "wrr", ROOT / "tests" / "rehearsal")
    assert code == 0, report
    counts = {b: report["sequence"].count(b) for b in set(report["sequence"])}
    assert counts == {"backend-1": 4, "backend-2": 2, "backend-3": 2}  # weights 100:50:50
    checks = {c["name"].split(" from CA epoch ")[0]: c for c in report["checks"]}
    assert checks["refused: mallory's bundle"]["passed"]
    assert checks["refused: carol's bundle"]["passed"]
    assert checks["accepted: edge-device (EC P-256)"]["passed"]
    assert checks["TLS versions offered"]["observed"] == "TLSv1.2 TLSv1.3"


def _with_listener_input(plan: Any, **inputs: Any) -> Any:
    listener = plan.one("alicloud:slb/listener:Listener")
    index = plan.resources.index(listener)
    plan.resources[index] = PlannedResource(listener.type, listener.name, listener.id, listener.parent,
                                            {**listener.inputs, **inputs})
    return plan


def test_inputs_it_does_not_handle_fail_the_rehearsal() -> None:
    plan = OfflineStack(load_stack(ROOT, "dev"), TEST_SEED, "test", {}).plan().plan
    assert listener_spec(plan, "mtls.example.com").scheduler == "rr"
    for inputs, problem in (({"stickySession": "on", "stickySessionType": "insert"}, "stickySession='on'"),
                            ({"aclStatus": "on"}, "aclStatus='on': not handled by the rehearsal"),
                            ({"healthCheckInterval": None}, "healthCheckInterval: missing")):
        changed = _with_listener_input(copy.deepcopy(plan), **inputs)
        with pytest.raises(SpecError) as caught:
            listener_spec(changed, "mtls.example.com")
        assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_an_unhandled_input_fails_the_report(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    original = OfflineStack.plan

    def sticky(self: OfflineStack, overrides: Any = None) -> Any:
        planned = original(self, overrides)
        _with_listener_input(planned.plan, stickySession="on")
        return planned

    monkeypatch.setattr(OfflineStack, "plan", sticky)
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    assert cli.main(["rehearse", "--stack", "dev"]) == 1
    assert "listener.stickySession='on': the rehearsal handles one of off only" in capsys.readouterr().out


# The process tests rehearse the wrr stack: its 1 s health checks take a backend down and back in ~2 s.
FAST = ["--project-dir", str(ROOT / "tests" / "rehearsal"), "rehearse", "--stack", "wrr"]


def _spawn_keep(seed: str = TEST_SEED) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "slbmtls", *FAST, "--keep"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PKI_SEED": seed})


def _await_keep(proc: subprocess.Popen[str]) -> list[str]:
    """Its output up to the curl lines KEEP prints once everything is checked and restored."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while not any(line.lstrip().startswith("curl") for line in lines) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line)
    return lines


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _workdir(lines: list[str]) -> Path:
    command = next(line.strip() for line in lines if line.lstrip().startswith("curl"))
    return Path(command.split("--cacert ")[1].split()[0]).parent.parent


def test_keep_prints_the_report_restores_backends_then_cleans_up_on_ctrl_c() -> None:
    proc = _spawn_keep()
    try:
        lines = _await_keep(proc)
        text = "".join(lines)
        assert text.index("passed, 0 failed") < text.index("left running")  # the report first
        command = next(line.strip() for line in lines if line.lstrip().startswith("curl"))
        workdir = _workdir(lines)
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in workdir.rglob("*.key"))
        served = {subprocess.run(["bash", "-c", command + " -sS"], capture_output=True, text=True,
                                 timeout=30).stdout.strip() for _ in range(8)}
        assert served == {"backend backend-1", "backend backend-2", "backend backend-3"}  # restored after its check
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert not workdir.exists()
        assert not _processes_mentioning(str(workdir))
    finally:
        if proc.poll() is None:
            proc.kill()


def _gone(workdir: Path, children: list[int]) -> None:
    deadline = time.monotonic() + 20
    while (workdir.exists() or _processes_mentioning(str(workdir))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workdir.exists()
    assert not _processes_mentioning(str(workdir))
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text()]


def test_two_rehearsals_at_once_then_sigterm_and_sigkill_take_haproxy_and_the_folder() -> None:
    """Two KEEP rehearsals side by side (no fixed ports, no port races: both pass every check; this
    was test_two_rehearsals_at_once, which ran two more rehearsal processes), then one is ended by
    SIGTERM and one by SIGKILL (no handler runs). Before, a known seed is looked for in every child's
    environ and cmdline and every written file."""
    seed = "9d41c07be2f35a8816e4d2b9707c3fa1e58b06d24c9f3137ab8e651d0f2c7a94"  # a known, random-looking seed
    procs = [_spawn_keep(seed), _spawn_keep()]  # side by side, so the test waits for the slower only
    try:
        (term, term_lines), (kill, kill_lines) = [(proc, _await_keep(proc)) for proc in procs]
        for lines in (term_lines, kill_lines):
            summary = [line for line in lines if re.fullmatch(r"\d+ passed, \d+ failed\n", line)]
            assert len(summary) == 1 and summary[0].endswith(" passed, 0 failed\n"), "".join(lines)
            assert int(summary[0].split()[0]) >= 10, summary  # the whole wrr scenario, not a stub
        assert term.poll() is None and kill.poll() is None  # both still serving, side by side
        dirs = [_workdir(term_lines), _workdir(kill_lines)]
        children = [_children(term.pid), _children(kill.pid)]
        assert all(len(c) >= 2 for c in children)  # haproxy and the folder's supervisor
        for pid in children[0]:
            for what in ("environ", "cmdline"):
                data = Path(f"/proc/{pid}/{what}").read_bytes()
                assert seed.encode() not in data and b"PKI_SEED" not in data
        for path in dirs[0].rglob("*"):
            if path.is_file():
                assert seed.encode() not in path.read_bytes(), path
        term.send_signal(signal.SIGTERM)
        kill.kill()
        out, err = term.communicate(timeout=30)
        kill.wait(timeout=30)
        assert seed not in "".join(term_lines) + out + err
        for workdir, pids in zip(dirs, children, strict=True):
            _gone(workdir, pids)
    finally:
        for proc in procs:
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
