"""`make bench` stays runnable: its whole-plan measurement plans a generated stack (timings are not
asserted here; performance is judged by `make bench`, side by side, never by a test)."""

from __future__ import annotations

from bench.__main__ import _plan_seconds


def test_the_bench_stack_plans() -> None:
    assert _plan_seconds([{"name": "ec-000", "keyType": "ec-p256"}], 1) > 0
