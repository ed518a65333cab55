"""Pulumi's private runtime API, used only through slbmtls.engine: when an upgrade moves a name,
this is the test that fails, and it names what moved."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from stackrun import ROOT

from slbmtls import engine


@pytest.mark.parametrize(("module", "name"), engine.PRIVATE_NAMES)
def test_each_private_name_is_where_engine_takes_it(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"pulumi moved {module}.{name}: update slbmtls/engine.py"


def test_secret_wire_form_round_trips_through_the_plan_reader() -> None:
    from slbmtls.plan import Secret, _from_wire

    assert _from_wire({engine.SECRET_SIG_KEY: engine.SECRET_SIG, "value": "x"}) == Secret("x")


def test_nothing_else_reaches_into_pulumi_internals() -> None:
    private = {m for m, _ in engine.PRIVATE_NAMES}
    offenders = []
    for path in [*ROOT.glob("slbmtls/**/*.py"), *ROOT.glob("policy/*.py"), ROOT / "__main__.py"]:
        if path.name == "engine.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {f"{node.module}.{a.name}" for a in node.names}
                if node.module in private or names & private or any(a.name.startswith("_") for a in node.names):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            elif isinstance(node, ast.Import) and any(a.name in private for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}: import {node.names[0].name}")
    assert offenders == []


def test_policy_rules_take_the_unknown_sentinel_from_engine() -> None:
    import rules

    assert rules.UNKNOWN is engine.UNKNOWN
    assert Path(rules.__file__).read_text().count(engine.UNKNOWN) == 0
