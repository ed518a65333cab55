"""Update replay: the steps `pulumi up` would take from one plan to the next, tried against the
CLB emulator started from the first plan's state.

The engine's order, as Pulumi runs an update: resources in dependency order, each created,
updated in place, or replaced (create-first by default; delete-first when the resource was
declared with `delete_before_replace`); then the resources that left the program, and the
originals of create-first replacements, deleted last, dependents first. A change to a ForceNew
input (slbmtls.clb.FORCE_NEW) replaces; a replaced resource gets a new id in the cloud, so what
refers to it changes too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pki.files import write_private_file
from slbmtls import clb
from slbmtls.emulator import ClbError, Emulator
from slbmtls.plan import SECRET_MARK, deletes_first
from slbmtls.retired import retired_error

# Ids CLB derives from other resources: a listener is <lb id>:https:<port>, the backend set uses
# the load balancer's id. Neither gets an id of its own when replaced.
_DERIVED_IDS = (clb.LISTENER, clb.BACKEND_SERVER)
_SYMBOL = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


@dataclass
class Step:
    op: str  # create | update | replace | delete
    type: str
    name: str
    delete_first: bool = False
    accepted: bool = True
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "type": self.type, "name": self.name, "deleteFirst": self.delete_first,
                "accepted": self.accepted, "error": self.error}


@dataclass
class Replay:
    steps: list[Step]

    @property
    def ok(self) -> bool:
        return all(s.accepted for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [s.to_json() for s in self.steps]}

    def render(self) -> str:
        lines = ["replayed against the CLB emulator, from BEFORE's state:"]
        for s in self.steps:
            how = " (delete first)" if s.op == "replace" and s.delete_first else ""
            verdict = "accepted" if s.accepted else "REFUSED "
            lines.append(f"  {verdict}  {_SYMBOL[s.op]:<2} {s.op:<7}  {s.type}  {s.name}{how}")
            if s.error:
                lines.append(f"            {s.error}")
        refused = sum(not s.accepted for s in self.steps)
        if not self.steps:
            lines.append("  no steps")
        lines.append(f"{len(self.steps)} steps, " + (f"{refused} refused" if refused else "all accepted"))
        return "\n".join(lines)


# -- the plan documents as a graph ------------------------------------------------------------


def _by_name(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in document.get("resources", [])}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def _dependencies(resources: Mapping[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Who each resource waits for: recorded dependencies, ids it refers to, its parent."""
    owner = {r["id"]: name for name, r in resources.items() if r.get("id") and r["type"] not in _DERIVED_IDS}
    deps: dict[str, set[str]] = {}
    for name, r in resources.items():
        found = {d for d in (r.get("options") or {}).get("dependsOn", []) if d in resources}
        found |= {owner[s] for s in _strings(r.get("inputs", {})) if s in owner}
        if r.get("parent") in resources:
            found.add(r["parent"])
        found.discard(name)
        deps[name] = found
    return deps


def _topological(names: Iterable[str], deps: Mapping[str, set[str]]) -> list[str]:
    """Dependencies first; ties in name order, so the replay reads the same every time."""
    pending = sorted(names)
    wanted, done, order = set(pending), set[str](), list[str]()
    while pending:
        ready = [n for n in pending if not (deps.get(n, set()) & wanted) - done] or pending[:1]  # cycles: go on
        for n in ready:
            order.append(n)
            done.add(n)
        pending = [n for n in pending if n not in done]
    return order


def _substitute(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    return value


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """Inputs that differ. A redacted secret compares equal to anything: plans written with and
    without SHOW_SECRETS=1 can be compared (certificates change name when their content does)."""
    return {k for k in set(old) | set(new)
            if old.get(k) != new.get(k) and SECRET_MARK not in (old.get(k), new.get(k))}


# -- the replay --------------------------------------------------------------------------------


def replay(before: Mapping[str, Any], after: Mapping[str, Any]) -> Replay:
    old, new = _by_name(before), _by_name(after)
    old_deps, new_deps = _dependencies(old), _dependencies(new)
    kept = {n for n in set(old) & set(new) if old[n]["type"] == new[n]["type"]}

    # What replaces: a ForceNew input changed, or it refers to something replaced (new id).
    live: dict[str, str] = {}  # plan id -> the id the replacement gets in the cloud
    replaced: set[str] = set()
    while True:
        grew = False
        for name in sorted(kept - replaced):
            changed = _changed_keys(old[name]["inputs"], _substitute(new[name]["inputs"], live))
            if changed & clb.FORCE_NEW.get(new[name]["type"], frozenset()):
                replaced.add(name)
                if new[name]["type"] not in _DERIVED_IDS and new[name].get("id"):
                    live[new[name]["id"]] = new[name]["id"] + "-replacement"
                grew = True
        if not grew:
            break

    emu = Emulator()
    for name in _topological(old, old_deps):  # BEFORE's state, as deployed
        r = old[name]
        emu.adopt(r["type"], name, r.get("id", ""), r.get("inputs", {}))

    steps: list[Step] = []
    retired = retired_error(before.get("outputs", {}), after.get("outputs", {}))
    deferred: list[str] = []  # originals of create-first replacements, deleted at the end
    for name in _topological(new, new_deps):
        r = new[name]
        token, inputs = r["type"], _substitute(r.get("inputs", {}), live)
        rid = live.get(r.get("id", ""), r.get("id", ""))
        if name not in kept:
            step = Step("create", token, name)
            if retired and token == clb.CA_CERTIFICATE:
                step.accepted, step.error, retired = False, retired, None
            else:
                _attempt(step, emu.create, token, name, rid, inputs)
        elif name in replaced:
            options = old[name].get("options") or {}
            step = Step("replace", token, name, delete_first=deletes_first(r))
            if options.get("protect"):
                step.accepted, step.error = False, "protected: Pulumi refuses to replace a protected resource"
            elif step.delete_first:
                _attempt(step, emu.delete, token, name, old[name].get("id", ""), old[name]["inputs"])
                if step.accepted:
                    _attempt(step, emu.create, token, name, rid, inputs)
            else:
                _attempt(step, emu.create, token, name, rid, inputs)
                if clb.ERR_LISTENER_EXISTS.code in step.error:
                    step.error += (" - a create-first replacement collides with the listener it replaces; "
                                   "declare the listener with delete_before_replace=True")
                deferred.append(name)
        elif _changed_keys(old[name]["inputs"], inputs):
            step = Step("update", token, name)
            _attempt(step, emu.update, token, name, rid, old[name]["inputs"], inputs)
        else:
            continue
        steps.append(step)

    removed = [n for n in old if n not in kept]
    replacing = {s.name: s for s in steps if s.op == "replace"}
    for name in reversed(_topological(set(removed) | set(deferred), old_deps)):
        r = old[name]
        if name in replacing:  # the original's delete belongs to its replace step
            step = replacing[name]
            if step.accepted:
                _attempt(step, emu.delete, r["type"], name, r.get("id", ""), r["inputs"],
                         prefix="deleting the original: ")
            continue
        step = Step("delete", r["type"], name)
        if (r.get("options") or {}).get("protect"):
            step.accepted, step.error = False, "protected: Pulumi refuses to delete a protected resource"
        else:
            _attempt(step, emu.delete, r["type"], name, r.get("id", ""), r["inputs"])
        steps.append(step)
    if retired:  # AFTER trusts a retired CA without a CA certificate step (a hand-edited plan)
        steps.append(Step("create", clb.CA_CERTIFICATE, str(after.get("outputs", {}).get("caFingerprint")),
                          accepted=False, error=retired))
    return Replay(steps)


def _attempt(step: Step, action: Callable[..., None], *args: Any, prefix: str = "") -> None:
    """One call to the emulator; a refusal marks the step."""
    try:
        action(*args)
    except ClbError as exc:
        step.accepted, step.error = False, prefix + str(exc)


def write_steps_json(path: str, text: str, *, overwrite: bool = False) -> None:
    """Like every file the tools write: 0600 from creation, never through a symlink or over an
    existing file unless asked, whole or absent (pki.files)."""
    write_private_file(Path(path), text.encode(), overwrite=overwrite, what="STEPS_JSON")
