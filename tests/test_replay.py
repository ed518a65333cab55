"""Update replay: every runbook procedure and routine change, as `pulumi up` would carry it out,
tried against the CLB emulator."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from stackrun import ROOT, plan_stack, run_cli, stack_values
from test_runbook import purchased_certificate

from pki.files import FileWriteError
from slbmtls import clb
from slbmtls.replay import Replay, replay, write_steps_json
from slbmtls.retired import retired_error

Doc = dict[str, Any]
_PLANS: dict[str, Doc] = {}


@pytest.fixture(autouse=True, scope="module")
def _today() -> Any:
    """A fixed 'today' a few days after the stacks' issue date, so renewals are not in the future."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLB_MTLS_TODAY", "2026-12-01")
        yield


def plan(stack: str = "dev", **overrides: Any) -> Doc:
    """Plan documents cached per module: a plan costs ~0.5 s."""
    key = json.dumps([stack, overrides], sort_keys=True)
    if key not in _PLANS:
        _PLANS[key] = plan_stack(stack, **overrides).to_json(show_secrets=True)
    return _PLANS[key]


def dev_with(section: str, **changes: Any) -> Doc:
    return plan(**{section: {**stack_values()[f"slb-mtls:{section}"], **changes}})


def ops(result: Replay) -> list[tuple[str, str]]:
    return [(s.op, s.name.rsplit("-", 1)[0] if "-ca-" in s.name or "-server-" in s.name else s.name)
            for s in result.steps]


def assert_accepted(result: Replay) -> None:
    assert result.ok, result.render()


def assert_rotation_order(result: Replay, kinds: tuple[str, ...]) -> None:
    """New certificates first, then the listener moves, then the old certificates go."""
    names = ops(result)
    listener = names.index(("update", "mtls-https-443"))
    for kind in kinds:
        assert names.index(("create", kind)) < listener < names.index(("delete", kind)), names


# -- the runbook -----------------------------------------------------------------------------


def test_first_up_from_nothing() -> None:
    for stack in ("dev", "prod"):
        result = replay({"resources": [], "outputs": {}}, plan(stack))
        assert_accepted(result)
        assert {s.op for s in result.steps} == {"create"}
        names = [s.name for s in result.steps]
        assert names.index("mtls-clb") < names.index("mtls-https-443") and names.index("mtls-clb") < names.index(
            "mtls-backends")


def test_add_and_renew_a_client_take_no_steps() -> None:
    clients = stack_values()["slb-mtls:clients"]
    for after in (plan(clients=[*clients, {"name": "dave", "email": "dave@example.com"}]),
                  plan(clients=[{**clients[0], "issued": "2026-12-01"}, *clients[1:]]),
                  plan(clients=[{**clients[0], "generation": 2}, *clients[1:]])):
        result = replay(plan(), after)
        assert result.steps == [] and result.ok


@pytest.mark.parametrize("change", [{"serverIssued": "2026-12-01"}, {"serverGeneration": 2}])
def test_server_certificate_rotation(change: dict[str, Any]) -> None:
    result = replay(plan(), dev_with("pki", **change))
    assert_accepted(result)
    assert ops(result) == [("create", "mtls-server"), ("update", "mtls-https-443"), ("delete", "mtls-server")]


@pytest.mark.parametrize("change", [{"revoked": ["bob"]}, {"caGeneration": 2}])
def test_revocation_and_ca_rotation(change: dict[str, Any]) -> None:
    after = plan(revoked=["bob"]) if "revoked" in change else dev_with("pki", **change)
    result = replay(plan(), after)
    assert_accepted(result)
    assert_rotation_order(result, ("mtls-ca", "mtls-server"))
    assert [s.op for s in result.steps].count("delete") == 2


def test_bring_a_purchased_server_certificate() -> None:
    chain, key, _ = purchased_certificate("mtls.example.com")
    after = plan_stack(serverCertificate=chain, serverPrivateKey=key,
                       serverPrivateKeyPassphrase="vendor-passphrase").to_json(show_secrets=True)
    result = replay(plan(), after)
    assert_accepted(result)
    assert_rotation_order(result, ("mtls-server",))


# -- routine changes ---------------------------------------------------------------------------


def test_frontend_port_change_is_a_new_listener_and_the_old_one_deleted() -> None:
    result = replay(plan(), dev_with("listener", frontendPort=8443))
    assert_accepted(result)
    assert ("delete", "mtls-https-443") in ops(result) or any(
        s.op == "replace" and s.delete_first for s in result.steps)


def test_backend_port_change_is_accepted() -> None:
    """The listener is declared delete_before_replace: the brief outage instead of a collision."""
    result = replay(plan(), dev_with("listener", backendPort=8080))
    assert_accepted(result)
    step = next(s for s in result.steps if s.name == "mtls-https-443")
    assert (step.op, step.delete_first) == ("replace", True)


def test_backend_port_change_create_first_collides_and_delete_first_is_accepted() -> None:
    after = dev_with("listener", backendPort=8080)
    listener = next(s for s in replay(plan(), after).steps if s.name == "mtls-https-443")
    assert listener.op == "replace"
    if not listener.delete_first:  # until the listener is declared delete_before_replace
        assert not listener.accepted and "ListenerAlreadyExists" in listener.error
    forced = copy.deepcopy(after)
    for r in forced["resources"]:
        if r["type"] == clb.LISTENER:
            r["options"]["deleteBeforeReplace"] = True
    result = replay(plan(), forced)
    assert_accepted(result)
    step = next(s for s in result.steps if s.name == "mtls-https-443")
    assert (step.op, step.delete_first, step.accepted) == ("replace", True, True)


@pytest.mark.parametrize(("section", "change"), [
    ("listener", {"scheduler": "wrr"}),
    ("listener", {"tlsCipherPolicy": "tls_cipher_policy_1_2_strict_with_1_3"}),
    ("listener", {"idleTimeout": 30}),
])
def test_listener_settings_update_in_place(section: str, change: dict[str, Any]) -> None:
    after = dev_with(section, **change)
    for before, later in ((plan(), after), (after, plan())):  # there and back
        result = replay(before, later)
        assert_accepted(result)
        assert ops(result) == [("update", "mtls-https-443")]


@pytest.mark.parametrize("bits", [4096])
def test_key_bits_change_rotates_both_certificates(bits: int) -> None:
    after = dev_with("pki", keyBits=bits)
    for before, later in ((plan(), after), (after, plan())):
        result = replay(before, later)
        assert_accepted(result)
        assert_rotation_order(result, ("mtls-ca", "mtls-server"))


def test_backends_add_reweight_remove() -> None:
    one = [{"instanceId": "i-bp1added0000000001", "weight": 50}]
    added, reweighted = plan(backends=one), plan(backends=[{**one[0], "weight": 80}])
    for before, after in ((plan(), added), (added, reweighted), (reweighted, plan())):
        result = replay(before, after)
        assert_accepted(result)
        assert ops(result) == [("update", "mtls-backends")]


def test_demo_count_two_three_one() -> None:
    two, three, one = plan(), dev_with("demoBackends", count=3), dev_with("demoBackends", count=1)
    grow = replay(two, three)
    assert_accepted(grow)
    assert ops(grow) == [("create", "mtls-demo-3"), ("update", "mtls-backends")]
    shrink = replay(three, one)
    assert_accepted(shrink)
    names = ops(shrink)
    assert names[0] == ("update", "mtls-backends")  # taken out of the load balancer before deleted
    assert sorted(names[1:]) == [("delete", "mtls-demo-2"), ("delete", "mtls-demo-3")]


# -- what must be refused ---------------------------------------------------------------------


def test_hand_edited_after_keeps_a_certificate_it_deletes() -> None:
    before, after = plan(), copy.deepcopy(dev_with("pki", caGeneration=2))
    old_ca = next(r for r in before["resources"] if r["type"] == clb.CA_CERTIFICATE)
    for r in after["resources"]:
        if r["type"] == clb.LISTENER:
            r["inputs"]["caCertificateId"] = old_ca["id"]  # still pointing at the CA AFTER deletes
    result = replay(before, after)
    assert not result.ok
    refused = [s for s in result.steps if not s.accepted]
    assert [(s.op, s.name) for s in refused] == [("delete", old_ca["name"])]
    assert "CertificateAndPrivateKeyIsRefered" in refused[0].error


def test_a_retired_ca_is_refused() -> None:
    current, revoked = plan(), plan(revoked=["bob"])
    before = copy.deepcopy(revoked)
    before["outputs"]["retiredCaFingerprints"] = [current["outputs"]["caFingerprint"].upper()]
    result = replay(before, current)  # un-revoking bob would bring the old CA back
    assert not result.ok
    step = next(s for s in result.steps if not s.accepted)
    assert (step.op, step.type) == ("create", clb.CA_CERTIFICATE) and "RetiredCaCertificate" in step.error


def test_protected_resources_are_not_replaced_or_deleted() -> None:
    before = copy.deepcopy(plan())
    for r in before["resources"]:
        if r["type"] == clb.SERVER_CERTIFICATE:
            r["options"]["protect"] = True
    result = replay(before, dev_with("pki", serverGeneration=2))
    assert [(s.op, s.accepted) for s in result.steps][-1] == ("delete", False)
    assert "protected" in result.steps[-1].error


# -- make plan-diff STEPS_JSON=... ------------------------------------------------------------


def _make_diff(tmp_path: Path, before: Doc, after: Doc, steps: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    return subprocess.run(["make", "-s", "--no-print-directory", "plan-diff", f"BEFORE={tmp_path / 'b.json'}",
                           f"AFTER={tmp_path / 'a.json'}", f"STEPS_JSON={steps}"], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_steps_json_exact_shape(tmp_path: Path) -> None:
    steps = tmp_path / "steps.json"
    result = _make_diff(tmp_path, plan(), dev_with("pki", caGeneration=2), steps)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("+ create  alicloud:slb/caCertificate:CaCertificate")
    document = json.loads(steps.read_text())
    assert set(document) == {"ok", "steps"} and document["ok"] is True
    for step in document["steps"]:
        assert set(step) == {"op", "type", "name", "deleteFirst", "accepted", "error"}
        assert step["op"] in {"create", "update", "replace", "delete"}
        assert isinstance(step["deleteFirst"], bool) and isinstance(step["accepted"], bool)
        assert isinstance(step["error"], str)
    kinds = [(s["op"], s["type"]) for s in document["steps"]]
    assert kinds.index(("create", clb.CA_CERTIFICATE)) < kinds.index(("update", clb.LISTENER)) < kinds.index(
        ("delete", clb.CA_CERTIFICATE))
    assert os.stat(steps).st_mode & 0o777 == 0o600
    assert "5 steps, all accepted" in result.stderr


def test_make_plan_diff_fails_on_a_refused_step(tmp_path: Path) -> None:
    before = plan()
    after = copy.deepcopy(dev_with("pki", serverGeneration=2))
    old = next(r for r in before["resources"] if r["type"] == clb.SERVER_CERTIFICATE)
    for r in after["resources"]:
        if r["type"] == clb.LISTENER:
            r["inputs"]["serverCertificateId"] = old["id"]
    steps = tmp_path / "steps.json"
    (tmp_path / "b.json").write_text(json.dumps(before))
    (tmp_path / "a.json").write_text(json.dumps(after))
    # in-process (test_steps_json_exact_shape runs `make plan-diff` as typed)
    result = run_cli("diff", str(tmp_path / "b.json"), str(tmp_path / "a.json"), "--steps-json", str(steps))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "REFUSED" in result.stderr and "CertificateAndPrivateKeyIsRefered" in result.stderr
    document = json.loads(steps.read_text())
    assert document["ok"] is False
    assert [s["accepted"] for s in document["steps"]] == [True, False]


def test_steps_json_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "link.json").symlink_to(target)
    with pytest.raises(FileWriteError, match="STEPS_JSON="):
        write_steps_json(str(tmp_path / "link.json"), "{}")
    assert target.read_text() == "keep"
    write_steps_json(str(tmp_path / "link.json"), "{}", overwrite=True)  # replaces the link, not its target
    assert target.read_text() == "keep" and not (tmp_path / "link.json").is_symlink()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileWriteError, match="STEPS_JSON="):  # never blocks on a FIFO
        write_steps_json(str(tmp_path / "fifo"), "{}")
    (tmp_path / "kept.json").write_text("precious")
    with pytest.raises(FileWriteError, match="STEPS_JSON="):
        write_steps_json(str(tmp_path / "kept.json"), "{}")
    assert (tmp_path / "kept.json").read_text() == "precious"


def test_plans_record_the_options_the_engine_acts_on() -> None:
    lb = next(r for r in plan("prod")["resources"] if r["type"] == clb.LOAD_BALANCER)
    assert lb["options"]["protect"] is True  # loadBalancer.deleteProtection: true
    listener = next(r for r in plan()["resources"] if r["type"] == clb.LISTENER)
    assert set(listener["options"]) == {"protect", "deleteBeforeReplace", "dependsOn"}
    assert "mtls-clb" in listener["options"]["dependsOn"]


def test_plans_without_recorded_options_order_by_the_ids_they_refer_to() -> None:
    """Plan files written before options were recorded still replay in the engine's order."""
    def bare(doc: Doc) -> Doc:
        doc = copy.deepcopy(doc)
        for r in doc["resources"]:
            r.pop("options", None)
        return doc
    result = replay(bare(plan()), bare(dev_with("pki", caGeneration=2)))
    assert_accepted(result)
    assert_rotation_order(result, ("mtls-ca", "mtls-server"))


def test_plans_with_and_without_secrets_shown_compare() -> None:
    redacted = plan_stack().to_json(show_secrets=False)
    for before, after in ((redacted, plan()), (plan(), redacted)):
        result = replay(before, after)
        assert result.steps == [] and result.ok
    result = replay(redacted, dev_with("pki", serverGeneration=2))
    assert_accepted(result)
    assert ops(result) == [("create", "mtls-server"), ("update", "mtls-https-443"), ("delete", "mtls-server")]


def test_a_retired_ca_without_a_certificate_step_still_gets_a_refused_row() -> None:
    before = copy.deepcopy(plan())
    before["outputs"]["retiredCaFingerprints"] = [before["outputs"]["caFingerprint"]]  # a hand-edited BEFORE
    result = replay(before, plan())
    assert not result.ok
    assert [(s.op, s.type, s.accepted) for s in result.steps] == [("create", clb.CA_CERTIFICATE, False)]
    assert "RetiredCaCertificate" in result.steps[0].error


def test_a_revocation_cannot_be_undone_in_two_edits() -> None:
    """Revoke bob; change the CA's definition (keyBits) so the derived history no longer holds the
    retired CA; then drop the revocation. The middle step must carry the retired CAs forward."""
    revoked = plan_stack(revoked=["bob"]).to_json()
    pki = stack_values()["slb-mtls:pki"]
    forgetful = plan_stack(pki={**pki, "keyBits": 4096}).to_json()
    error = retired_error(revoked["outputs"], forgetful["outputs"])
    assert error is not None and error.startswith("RetiredCaForgotten")
    assert not replay(revoked, forgetful).ok
    carried = plan_stack(pki={**pki, "keyBits": 4096,
                              "retiredCaFingerprints": revoked["outputs"]["retiredCaFingerprints"]}).to_json()
    assert replay(revoked, carried).ok
    undone = plan_stack().to_json()  # back to 2048, the revocation gone: bob's old CA
    assert undone["outputs"]["caFingerprint"] in carried["outputs"]["retiredCaFingerprints"]
    assert not replay(carried, undone).ok
