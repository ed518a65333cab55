"""`make up` refuses a CA the deployed stack retired: revocation is forever, even past an edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi
import pytest
from conftest import fake_pulumi
from stackrun import ROOT, TEST_SEED, plan_as_the_engine_runs_it, plan_stack

from slbmtls.cli import main
from slbmtls.plan import Plan


def _guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           outputs: dict[str, object] | None) -> tuple[int, str]:
    monkeypatch.setenv("PATH", f"{fake_pulumi(tmp_path, outputs)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    code = main(["--project-dir", str(ROOT), "guard", "--stack", "dev"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_undoing_a_deployed_revocation_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    deployed = plan_stack(revoked=["bob"]).outputs  # bob revoked and deployed
    unrevoked = plan_stack().outputs["caFingerprint"]  # the config edited back: bob's revocation removed
    assert unrevoked in deployed["retiredCaFingerprints"]
    code, text = _guard(tmp_path, monkeypatch, capsys, deployed)
    assert code == 2
    assert "refusing to deploy" in text and f"caFingerprint {unrevoked}" in text and "Traceback" not in text


def test_a_forward_change_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    deployed = plan_stack().outputs  # what the config derives now: nothing retired, nothing forgotten
    code, text = _guard(tmp_path, monkeypatch, capsys, deployed)
    assert code == 0 and "is not among the deployed stack's 0 retired CAs, and none of them is forgotten" in text


def test_forgetting_a_retired_ca_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The first half of a two-step undo: the deployed stack retired a CA this config no longer lists."""
    deployed = {**plan_stack().outputs, "retiredCaFingerprints": ["ab" * 32]}
    code, text = _guard(tmp_path, monkeypatch, capsys, deployed)
    assert code == 2 and "RetiredCaForgotten" in text and "slb-mtls:pki.retiredCaFingerprints" in text


def test_nothing_deployed_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _guard(tmp_path, monkeypatch, capsys, {})
    assert code == 0 and "nothing deployed yet" in text
    seen = (tmp_path / "bin" / "env").read_text()
    assert "PKI_SEED" not in seen and TEST_SEED not in seen  # the pulumi child never sees the seed


def test_an_unreadable_stack_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _guard(tmp_path, monkeypatch, capsys, None)
    assert code == 2 and "pulumi stack output --json --stack dev` failed: no stack named dev" in text


# -- the same check by the program itself, under the Pulumi CLI (a bare `pulumi up`) -------------


def _engine_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs: dict[str, object] | None) -> Plan:
    monkeypatch.setenv("PATH", f"{fake_pulumi(tmp_path, outputs)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"slb-mtls:pkiSeed": TEST_SEED}))  # as the engine sets it
    monkeypatch.chdir(ROOT)
    return plan_as_the_engine_runs_it()


def test_a_bare_pulumi_up_refuses_a_retired_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed = plan_stack(revoked=["bob"]).outputs
    with pytest.raises(pulumi.RunError, match="refusing to deploy stack dev: RetiredCaCertificate"):
        _engine_run(tmp_path, monkeypatch, deployed)
    seen = (tmp_path / "bin" / "env").read_text()
    assert TEST_SEED not in seen and "PULUMI_CONFIG=" not in seen  # the engine's config stays with the program


def test_a_bare_pulumi_up_refuses_forgetting_a_retired_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed = {**plan_stack().outputs, "retiredCaFingerprints": ["ab" * 32]}
    with pytest.raises(pulumi.RunError, match="RetiredCaForgotten"):
        _engine_run(tmp_path, monkeypatch, deployed)


def test_a_bare_pulumi_up_goes_on_forward_or_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _engine_run(tmp_path, monkeypatch, plan_stack().outputs)
    assert plan.outputs["caFingerprint"] == plan_stack().outputs["caFingerprint"]
    assert not [w for w in plan.warnings if "retired" in w]


def test_unreadable_deployed_outputs_are_a_warning_naming_the_check(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _engine_run(tmp_path, monkeypatch, None)
    assert any("not checked against the CAs the deployed stack retired" in w and "make guard STACK=dev" in w
               for w in plan.warnings)
