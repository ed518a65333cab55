"""Run the real program under the mock engine with a stack file plus overrides."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from slbmtls.config import NAMESPACE, SEED_KEY
from slbmtls.plan import Plan, diff_documents, run
from slbmtls.program import build
from slbmtls.stackfile import load_stack

ROOT = Path(__file__).resolve().parent.parent
# random (a repeated pattern such as "c0ffee"*10 is refused as a seed)
TEST_SEED = "c8d50b8b479600fe973837da48e9f72e4a6c2f67331c32c927a872649f71d9a2"


def stack_values(stack: str = "dev") -> dict[str, Any]:
    return copy.deepcopy(load_stack(ROOT, stack).values)


_PLANS: dict[str, Plan] = {}


def plan_stack(stack: str = "dev", *, seed: str | None = TEST_SEED, seed_secret: bool = True,
               **overrides: Any) -> Plan:
    """`overrides` replace `slb-mtls:<key>` values; None removes the key. A plan is a pure function
    of its inputs (and the pinned clock, for warnings): each is run once per test process, and every
    caller gets its own copy."""
    key = json.dumps([stack, seed, seed_secret, overrides, os.environ.get("SLB_MTLS_TODAY")], sort_keys=True,
                     default=str)
    if key not in _PLANS:
        _PLANS[key] = _plan_stack(stack, seed=seed, seed_secret=seed_secret, **overrides)
    return copy.deepcopy(_PLANS[key])


def plan_as_the_engine_runs_it(stack: str = "dev", *, seed: str = TEST_SEED) -> Plan:
    """The program as `__main__.py` runs it under the Pulumi CLI (the deployed-stack check
    included), not cached: what it sees of the deployed stack is up to each test."""
    return _plan_stack(stack, seed=seed, seed_secret=True, program_fn=lambda: build(against_deployed=True))


def _plan_stack(stack: str, *, seed: str | None, seed_secret: bool,
                program_fn: Callable[[], dict[str, Any]] = build, **overrides: Any) -> Plan:
    stack_file = load_stack(ROOT, stack)
    values = copy.deepcopy(stack_file.values)
    for key, value in overrides.items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    if seed is not None:
        config[SEED_KEY] = seed
    secret_keys = [SEED_KEY] if seed_secret else []
    secret_keys += [k for k in (f"{NAMESPACE}:serverPrivateKey", f"{NAMESPACE}:serverPrivateKeyPassphrase") if k in config]
    return run(stack_file.project, stack, config, secret_keys, program_fn=program_fn)


def diff(before: Plan, after: Plan) -> dict[str, list[str]]:
    """Names created, deleted and updated in place between two plans, as a preview would show."""
    return diff_documents(before.to_json(show_secrets=True), after.to_json(show_secrets=True)).resource_changes


def run_cli(*args: str, project: Path = ROOT, env: dict[str, str] | None = None,
            seed: str | None = TEST_SEED, subprocess_: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m slbmtls ARGS` against the stack files in `project`: in this process (fast: no
    interpreter and Pulumi start-up per call), or as a user runs it with `subprocess_=True`."""
    full_env = {k: v for k, v in os.environ.items() if k != "PKI_SEED"} | (env or {})
    if seed is not None:
        full_env["PKI_SEED"] = seed
    argv = ["--project-dir", str(project), *args]
    if subprocess_:
        return subprocess.run([sys.executable, "-m", "slbmtls", *argv], cwd=ROOT, env=full_env,
                              capture_output=True, text=True, check=False, timeout=300)
    from slbmtls.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, full_env, clear=True), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["slbmtls", *argv], code, out.getvalue(), err.getvalue())


def project_with(tmp: Path, stacks: dict[str, str]) -> Path:
    """A project directory with Pulumi.yaml and the given Pulumi.<stack>.yaml texts."""
    project = tmp / "project"
    project.mkdir(exist_ok=True)
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    for name, text in stacks.items():
        (project / f"Pulumi.{name}.yaml").write_text(text)
    return project
