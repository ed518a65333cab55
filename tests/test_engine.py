"""Pulumi's private runtime API, used only through slbmtls.engine: when an upgrade moves a name,
this is the test that fails, and it names what moved."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
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


def test_outputs_settle_as_output_from_input_resolves_them() -> None:
    """The plan settles exported values without an Output per leaf: the values and their secrecy
    are what Output.from_input gives (for the known values of a mock-engine run)."""
    import pulumi

    from slbmtls.plan import Secret, run

    def exported() -> dict[str, object]:
        return {
            "plain": {"a": {"b": 1, "c": ["x", 2.0]}},
            "nested_secret": {"a": {"b": pulumi.Output.secret("s"), "c": 1}},
            "listed": [pulumi.Output.from_input(2), {"k": pulumi.Output.secret(["v"])}],
            "output_of_a_dict": pulumi.Output.from_input({"a": 1}),
            "awaited": pulumi.Output.from_input("x").apply(lambda v: v + "y"),
        }

    def program() -> dict[str, object]:
        mine, theirs = exported(), exported()
        return {**mine, **{f"{k}_from_input": pulumi.Output.from_input(v) for k, v in theirs.items()}}

    outputs = run("p", "s", {}, [], program_fn=program).outputs
    for key in ("plain", "nested_secret", "listed", "output_of_a_dict", "awaited"):
        assert outputs[key] == outputs[f"{key}_from_input"], key
    assert outputs["nested_secret"] == Secret({"a": {"b": "s", "c": 1}})
    assert outputs["listed"] == Secret([2, {"k": ["v"]}]) and outputs["plain"] == {"a": {"b": 1, "c": ["x", 2]}}


def test_a_run_closes_the_event_loops_its_registration_threads_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mock monitor gives each executor thread an event loop; left open, one was collected at
    exit after its self-pipe and printed "Exception ignored in BaseEventLoop.__del__"."""
    import asyncio
    import threading

    import pulumi

    from slbmtls.plan import run

    made: list[tuple[str, asyncio.AbstractEventLoop]] = []
    new_event_loop = asyncio.new_event_loop

    def recording_new_event_loop() -> asyncio.AbstractEventLoop:
        loop = new_event_loop()
        made.append((threading.current_thread().name, loop))
        return loop

    monkeypatch.setattr(asyncio, "new_event_loop", recording_new_event_loop)

    def program() -> dict[str, object]:
        for i in range(8):  # registrations, answered on the executor's threads
            pulumi.ComponentResource("test:index:Thing", f"thing-{i}")
        return {}

    run("p", "s", {}, [], program_fn=program)
    in_threads = [(name, loop) for name, loop in made if name != "MainThread"]
    assert in_threads, "the mock monitor no longer makes loops in its threads: this test needs a new probe"
    assert all(loop.is_closed() for _, loop in in_threads)


def test_the_cli_closes_the_engine_loop_before_it_exits(tmp_path: Path) -> None:
    """`python -m slbmtls` closes the loop the engine ran on, so nothing is left to collect at exit."""
    import subprocess
    import sys

    probe = tmp_path / "probe.py"
    probe.write_text(
        "import asyncio, runpy, sys\n"
        "from slbmtls import cli, engine\n"
        "cli.exit_without_teardown = sys.exit  # so that this probe goes on after the CLI's exit\n"
        "engine.run_program(lambda: None)\n"
        "loop = asyncio.get_event_loop()\n"
        "sys.argv = ['slbmtls', 'inspect', '/nonexistent/file.pem']  # fails at once, exit 2\n"
        "try:\n"
        "    runpy.run_module('slbmtls', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(loop.is_closed())\n")
    done = subprocess.run([sys.executable, str(probe)], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip().splitlines()[-1] == "True", done.stderr
    assert "Exception ignored" not in done.stderr


def test_after_a_run_the_engine_loop_still_has_a_working_executor() -> None:
    """A run retires its executor (its threads end, their loops close) and leaves a fresh one."""
    import asyncio

    from slbmtls.plan import run

    run("p", "s", {}, [], program_fn=dict)
    loop = asyncio.get_event_loop()
    assert engine.sync_await(loop.run_in_executor(None, lambda: 42)) == 42
    run("p", "s", {}, [], program_fn=dict)  # and the next run retires that one's thread too
    assert engine._thread_loops == []


# What a program's outputs hold, and what the JSON wire changes: tuples, floats, non-text keys
_OUTPUT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4)),
    max_leaves=12)


@given(_OUTPUT_VALUES)
@example(0.0)
@example([1.0])
@example((1, 2))
@example({1: "a"})
@example({"a": [True, None, "x", {"b": 2}]})
@example({"s": {engine.SECRET_SIG_KEY: engine.SECRET_SIG, "value": "x"}})  # a secret, in its wire form
def test_outputs_that_skip_the_json_round_trip_are_the_ones_it_leaves_unchanged(value: object) -> None:
    """Compared by repr, which tells 1 from 1.0, True from 1, a tuple from a list and 1 from "1" as
    a key, at any depth."""
    import json

    from slbmtls.plan import _from_wire, _on_the_wire_as_is

    through_the_wire = _from_wire(json.loads(json.dumps(value)))
    if _on_the_wire_as_is(value):
        assert repr(value) == repr(through_the_wire)
