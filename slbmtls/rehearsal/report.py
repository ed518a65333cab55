"""The report both `make rehearse` and `make verify` print: one row per check, plus notes (what
the rehearsal does not model, and why), and the same as JSON for REPORT_JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pki.files import write_private_file


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    passed: bool


@dataclass
class Report:
    title: str
    stack: str
    checks: list[Check] = field(default_factory=list)
    sequence: list[str] = field(default_factory=list)  # which backend served each balanced request
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, expected: str, observed: str, passed: bool) -> bool:
        self.checks.append(Check(name, expected, observed, passed))
        return passed

    def table(self) -> str:
        heads = ("check", "expected", "observed")
        widths = [max([len(h), *(len(getattr(c, f)) for c in self.checks)])
                  for h, f in zip(heads, ("name", "expected", "observed"), strict=True)]
        row = "{:<%d}  {:<%d}  {:<%d}  {}" % tuple(widths)  # noqa: UP031
        lines = [row.format(*heads, "result")]
        lines += [row.format(c.name, c.expected, c.observed, "pass" if c.passed else "FAIL") for c in self.checks]
        return "\n".join(lines)

    def render(self) -> str:
        failed = sum(not c.passed for c in self.checks)
        lines = [self.table(), ""]
        lines += [f"note: {n}" for n in self.notes]
        lines += ([""] if self.notes else []) + [f"{len(self.checks) - failed} passed, {failed} failed"]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "passed": self.passed, "sequence": self.sequence, "notes": self.notes,
                "checks": [asdict(c) for c in self.checks]}

    def write_json(self, path: str) -> None:
        """0600, never over an existing file: a report names which clients were tried."""
        write_private_file(Path(path), (json.dumps(self.to_json(), indent=2) + "\n").encode(), what="REPORT_JSON")
