"""Makefile and CI: user values reach commands through the environment, stack names are checked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from stackrun import ROOT, TEST_SEED


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PKI_SEED", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["PKI_SEED"] = TEST_SEED
    return subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


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
def test_make_values_never_run_as_commands(tmp_path: Path, assignment: str) -> None:
    mark = tmp_path / "injected"
    target = "bundle" if assignment.split("=")[0] in ("CLIENT", "OUT", "PASSWORD_FILE") else "plan"
    extra = ["CLIENT=alice"] if target == "bundle" and not assignment.startswith("CLIENT") else []
    if not assignment.startswith("OUT"):
        extra.append(f"OUT={tmp_path / 'o'}")
    result = make(target, assignment.format(mark=mark, tmp=tmp_path), *extra)
    assert not mark.exists(), result.stdout + result.stderr
    if assignment.startswith("OUT"):  # a strange but harmless folder name, taken literally
        assert result.returncode == 0 and (tmp_path / f"$$(touch {mark})").is_dir()
        return
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_make_plan_diff_and_inspect_take_file_names_as_they_are(tmp_path: Path) -> None:
    mark = tmp_path / "injected"
    result = make("plan-diff", f"BEFORE=$(shell touch {mark})", f"AFTER=`touch {mark}`")
    assert result.returncode == 2 and not mark.exists()
    assert "BEFORE=$(shell touch" in result.stderr and "cannot read it" in result.stderr
    result = make("inspect", "FILE=--help")
    assert result.returncode == 2 and "FILE=--help: cannot read it" in result.stderr


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
