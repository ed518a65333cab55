"""The pack's entry point wires every policy in, without starting the policy server (which blocks)."""

from __future__ import annotations

import runpy
from typing import Any

import pulumi_policy
import pytest
import rules
from stackrun import ROOT


def test_pack_registers_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: seen.update(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert seen["name"] == "slb-mtls"
    assert [p.name for p in seen["policies"]] == [p.name for p in rules.POLICIES]
    assert len({p.name for p in rules.POLICIES}) == len(rules.POLICIES)  # unique names
    assert all(p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in rules.POLICIES)
