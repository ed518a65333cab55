"""The operator commands: one smoke test per command as a user types it (make, a subprocess), the
rest in-process through `slbmtls.cli.main`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import openssl
from hypothesis import given
from hypothesis import strategies as st
from stackrun import ROOT, TEST_SEED, run_cli

from slbmtls import cli


def make(*args: str, seed: str | None = TEST_SEED, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PKI_SEED", "MAKEFLAGS", "MAKELEVEL")} | extra_env
    if seed is not None:
        env["PKI_SEED"] = seed
    return subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def test_smoke_make_plan_prints_a_readable_table_and_plans_are_identical_across_processes(tmp_path: Path) -> None:
    """`make plan` as a user types it; its JSON (secrets shown, so keys are compared too) is
    byte-identical to the same plan made in this process: another interpreter, another hash seed,
    nothing cached (this was test_stack's cross-process test, which started two more interpreters)."""
    result = make("plan", "STACK=prod", f"PLAN_JSON={tmp_path / 'plan.json'}", SHOW_SECRETS="1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "offline plan for stack 'prod' (project slb-mtls; seed: PKI_SEED)" in out
    assert "+ alicloud:slb/listener:Listener  mtls-https-443  id=lb-" in out
    assert "privateKey                 \"[secret]\"" in out
    assert "PRIVATE KEY" not in out and TEST_SEED not in out  # the table hides keys even with SHOW_SECRETS=1
    assert (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o600
    here = run_cli("plan", "--stack", "prod", "--json", str(tmp_path / "here.json"), env={"SHOW_SECRETS": "1"})
    assert here.returncode == 0, here.stderr
    first, second = (tmp_path / "plan.json").read_text(), (tmp_path / "here.json").read_text()
    assert first == second
    assert "BEGIN RSA PRIVATE KEY" in first and TEST_SEED not in first


def test_plan_without_seed_uses_a_throwaway_one_and_says_so() -> None:
    result = run_cli("plan", seed=None)
    assert result.returncode == 0, result.stderr
    assert "notice: PKI_SEED is not set; using a throwaway seed" in result.stderr
    assert "(project slb-mtls; seed: ephemeral)" in result.stdout


def test_plan_unknown_stack() -> None:
    result = run_cli("plan", "--stack", "staging")
    assert result.returncode == 2
    assert "Pulumi.staging.yaml: no such stack file; stacks here: dev, prod" in result.stderr
    assert "Traceback" not in result.stderr


def test_smoke_make_bundle_and_inspect(tmp_path: Path) -> None:
    out = tmp_path / "alice"
    result = make("bundle", "CLIENT=alice", f"OUT={out}")
    assert result.returncode == 0, result.stderr
    assert f"the PKCS#12 password was generated and written to {out}/alice.password" in result.stdout
    password = (out / "alice.password").read_text().strip()
    assert password not in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["alice.crt", "alice.key", "alice.p12", "alice.password",
                                                     "ca.crt", "crl.pem"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir())
    verify = openssl("verify", "-purpose", "sslclient", "-attime", "1800000000", "-CAfile", str(out / "ca.crt"),
                     str(out / "alice.crt"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    inspected = make("inspect", f"FILE={out / 'alice.p12'}", f"PASSWORD_FILE={out / 'alice.password'}")
    assert inspected.returncode == 0, inspected.stderr
    assert "PKCS#12 certificate:" in inspected.stdout
    assert "SAN:         alice@example.com" in inspected.stdout
    assert "EKU:         clientAuth" in inspected.stdout
    assert "days left:" in inspected.stdout and "sha256:" in inspected.stdout
    again = run_cli("bundle", "--client", "alice", "--out", str(out))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr


@pytest.mark.usefixtures("cheap_bundle_kdf")  # the legacy PKCS#12 is 2048 rounds either way; its .key is not checked
def test_bundle_legacy_with_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("a long bundle password\n")
    out = tmp_path / "b"
    result = run_cli("bundle", "--client", "bob", "--out", str(out), "--legacy", "--password-file", str(secret))
    assert result.returncode == 0, result.stderr
    assert not (out / "bob.password").exists()
    info = openssl("pkcs12", "-legacy", "-info", "-noout", "-in", str(out / "bob.p12"),
                   "-passin", "pass:a long bundle password")
    assert info.returncode == 0
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr + info.stdout


def test_bundle_refusals(tmp_path: Path) -> None:
    never = tmp_path / "never"
    unknown = run_cli("bundle", "--client", "zoe", "--out", str(never))
    assert unknown.returncode == 2
    assert "CLIENT=zoe: not a client of stack dev; clients: alice, bob, build-agent" in unknown.stderr
    no_seed = run_cli("bundle", "--client", "alice", "--out", str(never), seed=None)
    assert no_seed.returncode == 2
    assert "slb-mtls:pkiSeed: no seed available" in no_seed.stderr
    assert "Traceback" not in unknown.stderr + no_seed.stderr
    assert not never.exists()


@pytest.mark.usefixtures("cheap_bundle_kdf")  # inspects the certificate and CRL of the bundle only
def test_inspect_crl_and_certificate(tmp_path: Path) -> None:
    out = tmp_path / "e"
    assert run_cli("bundle", "--client", "build-agent", "--out", str(out)).returncode == 0
    crl = run_cli("inspect", str(out / "crl.pem"))
    assert "CRL from" in crl.stdout and "revoked:     0" in crl.stdout and "state:       current" in crl.stdout
    cert = run_cli("inspect", str(out / "build-agent.crt"))
    assert "key:         EC secp256r1" in cert.stdout
    assert "SAN:         https://slb-mtls.invalid/client/build-agent" in cert.stdout
    assert "EKU:         clientAuth" in cert.stdout


def test_inspect_a_missing_file() -> None:
    result = run_cli("inspect", "/nonexistent/x.pem")
    assert result.returncode == 2
    assert "FILE=/nonexistent/x.pem: cannot read it (No such file or directory)" in result.stderr


def test_an_existing_report_json_is_refused_before_the_rehearsal_runs(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    report.write_text("earlier report")
    assert cli.main(["rehearse", "--stack", "dev", "--report-json", str(report)]) == 2
    err = capsys.readouterr().err
    assert f"REPORT_JSON={report}" in err and "rehearsing" not in err
    assert report.read_text() == "earlier report"


def _exit_probe(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """A process that ends through cli.exit_without_teardown after `body`."""
    probe = tmp_path / "probe.py"
    probe.write_text("import atexit, sys, threading, time\nfrom slbmtls.cli import exit_without_teardown\n" + body)
    return subprocess.run([sys.executable, str(probe)], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_the_exit_without_teardown_still_runs_atexit_and_flushes_with_the_status(tmp_path: Path) -> None:
    """The CLI skips the interpreter's teardown, not what an exit must do: atexit handlers (the
    spare helper, temporary directories) run, buffered output is complete, the status is kept."""
    marker = tmp_path / "atexit-ran"
    done = _exit_probe(tmp_path, f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
                                 "sys.stdout.write('x' * 200000)  # buffered, not flushed\n"
                                 "print('last line', file=sys.stderr)\n"
                                 "exit_without_teardown(3)\n")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "x" * 200000
    assert done.stderr == "last line\n"
    assert marker.read_text() == "yes"


def test_the_exit_without_teardown_waits_for_a_thread_still_working(tmp_path: Path) -> None:
    """A non-daemon thread still running gets the interpreter's usual exit, which waits for it."""
    done = _exit_probe(tmp_path, "def work():\n"
                                 "    time.sleep(0.3)\n"
                                 "    print('thread done', flush=True)\n"
                                 "threading.Thread(target=work).start()\n"
                                 "exit_without_teardown(0)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "thread done\n"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
                    max_leaves=40))
def test_a_plan_summary_is_the_value_as_json_cut_to_100_characters(value: object) -> None:
    import json

    text = json.dumps(value, sort_keys=True)
    assert cli._summary(value) == (text if len(text) <= 100 else text[:97] + "...")
