"""Makefile and CI: user values reach commands through the environment, stack names are checked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from stackrun import ROOT, TEST_SEED

from slbmtls import cli


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PKI_SEED", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["PKI_SEED"] = TEST_SEED
    return subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def make_recorded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    """`make ARGS` with the interpreter replaced by a stub that records the arguments the recipe gave
    it (None: the recipe stopped before running Python). Injection would happen in make or the
    recipe's shell, before the interpreter; what the real command does with those exact arguments is
    then checked in-process (`cli_main`), which saves a Python start-up and a key derivation per value.
    test_cli's smoke tests run make with the real interpreter."""
    calls = tmp_path / "interpreter-argv"
    stub = tmp_path / "stub-python"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{calls}'\n")
    stub.chmod(0o755)
    result = make(*args, f"PY={stub}")
    if not calls.exists():
        return result, None
    argv = calls.read_bytes().decode().split("\0")[:-1]
    assert argv[:2] == ["-m", "slbmtls"], argv
    return result, argv[2:]


def cli_main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The command as the recipe would have run it, in this process: exit status and stderr."""
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.usefixtures("cheap_bundle_kdf")  # the OUT case writes a bundle; the profile is not the point
@pytest.mark.parametrize("assignment", [
    "STACK=dev; touch {mark} #",
    "STACK=$(shell touch {mark})",
    "STACK=`touch {mark}`",
    "STACK=--help",
    "CLIENT=alice; touch {mark}",
    "CLIENT=$(shell touch {mark})",
    "OUT={tmp}/$$(touch {mark})",
    "PASSWORD_FILE=x' ; touch {mark} ; '",
])
def test_make_values_never_run_as_commands(tmp_path: Path, assignment: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    mark = tmp_path / "injected"
    target = "bundle" if assignment.split("=")[0] in ("CLIENT", "OUT", "PASSWORD_FILE") else "plan"
    extra = ["CLIENT=alice"] if target == "bundle" and not assignment.startswith("CLIENT") else []
    if not assignment.startswith("OUT"):
        extra.append(f"OUT={tmp_path / 'o'}")
    result, argv = make_recorded(tmp_path, target, assignment.format(mark=mark, tmp=tmp_path), *extra)
    assert not mark.exists(), result.stdout + result.stderr
    if assignment.startswith("STACK"):  # refused by the recipe's stack-name check, before any tool runs
        assert argv is None and result.returncode == 2, result.stdout + result.stderr
        assert "is not a stack name" in result.stderr
        return
    assert argv is not None and result.returncode == 0, result.stdout + result.stderr
    assert argv[0] == target
    code, err = cli_main(argv, monkeypatch, capsys)
    assert not mark.exists()
    if assignment.startswith("OUT"):  # a strange but harmless folder name, taken literally
        assert code == 0 and (tmp_path / f"$$(touch {mark})").is_dir()
        return
    assert code == 2, err


def test_make_plan_diff_and_inspect_take_file_names_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    mark = tmp_path / "injected"
    result, argv = make_recorded(tmp_path, "plan-diff", f"BEFORE=$(shell touch {mark})", f"AFTER=`touch {mark}`")
    assert result.returncode == 0 and argv is not None and not mark.exists(), result.stderr
    assert argv[-2:] == [f"$(shell touch {mark})", f"`touch {mark}`"]
    code, err = cli_main(argv, monkeypatch, capsys)
    assert code == 2 and not mark.exists()
    assert "BEFORE=$(shell touch" in err and "cannot read it" in err
    result, argv = make_recorded(tmp_path, "inspect", "FILE=--help")
    assert result.returncode == 0 and argv is not None, result.stderr
    code, err = cli_main(argv, monkeypatch, capsys)
    assert code == 2 and "FILE=--help: cannot read it" in err


def test_ci_checks_stack_file_names_before_using_them(tmp_path: Path) -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    script = next(s["run"] for s in wf["jobs"]["test"]["steps"] if s.get("name") == "Offline plan of every stack")
    for name, ok in (("dev", True), ("prod-2.eu_x", True), ("x\n::warning::y", False), ("a b", False),
                     ("$(id)", False), ("-x", False)):
        probe = tmp_path / "checkout"
        probe.mkdir()
        (probe / f"Pulumi.{name}.yaml").write_text("config: {}\n")
        # stand in for make: record what it would have been called with
        (probe / "make").write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> calls\n')
        (probe / "make").chmod(0o755)
        result = subprocess.run(["bash", "-e", "-c", script], cwd=probe, capture_output=True, text=True,
                                env={**os.environ, "PATH": f"{probe}:{os.environ['PATH']}"}, check=False)
        called = (probe / "calls").exists()
        assert (result.returncode == 0 and called) if ok else (result.returncode != 0 and not called), (name, result)
        for path in probe.iterdir():
            path.unlink()
        probe.rmdir()
