"""The offline plan: run the real program under Pulumi's mock engine and record what it declares.

No CLI and no cloud: a recording monitor captures every resource registration (type token, name,
parent, inputs with secrets still marked) and the program's outputs are resolved in-process. Mock
ids are derived from resource names, so plans compare byte for byte across runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
from google.protobuf import json_format

from slbmtls import clb, engine, program
from slbmtls.emulator import ClbError, Emulator

SECRET_MARK = "[secret]"


@dataclass(frozen=True)
class Secret:
    """A value the engine would store encrypted."""

    value: Any


@dataclass(frozen=True)
class PlannedResource:
    type: str
    name: str
    id: str
    parent: str | None
    inputs: dict[str, Any]
    # resource options the engine acts on: deleteBeforeReplace, protect, dependsOn (names)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    project: str
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str) -> PlannedResource:
        found = self.of_type(token)
        if len(found) != 1:
            raise LookupError(f"expected one {token}, found {len(found)}")
        return found[0]

    def to_json(self, *, show_secrets: bool = False) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [
                {"type": r.type, "name": r.name, "id": r.id, "parent": r.parent,
                 "inputs": reveal(r.inputs, show_secrets), "options": r.options}
                for r in self.resources
            ],
            "outputs": reveal(self.outputs, show_secrets),
        }


def reveal(value: Any, show: bool) -> Any:
    """Plain JSON, with secrets either shown or replaced by a marker."""
    if isinstance(value, Secret):
        return reveal(value.value, show) if show else SECRET_MARK
    if isinstance(value, dict):
        return {k: reveal(v, show) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, show) for v in value]
    return value


def _from_wire(value: Any) -> Any:
    """Engine wire values to Python: secrets marked, integral numbers as int."""
    if isinstance(value, dict):
        if value.get(engine.SECRET_SIG_KEY) == engine.SECRET_SIG:
            return Secret(_from_wire(value.get("value")))
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _on_the_wire_as_is(value: Any) -> bool:
    """Whether the engine's JSON wire would hand `value` back unchanged: text, integers, booleans
    and None in lists and text-keyed maps (no tuples, floats or secret markers). Such outputs skip
    the round trip through JSON text (every client's certificate PEM is in one of them)."""
    kind = type(value)
    if kind in (str, int, bool) or value is None:
        return True
    if kind is list:
        return all(_on_the_wire_as_is(v) for v in value)
    if kind is dict:
        return (engine.SECRET_SIG_KEY not in value and all(type(k) is str for k in value)
                and all(_on_the_wire_as_is(v) for v in value.values()))
    return False


def mock_id(token: str, name: str) -> str:
    prefix = {
        "ApplicationLoadBalancer": "lb", "CaCertificate": "ca", "ServerCertificate": "cert",
        "Network": "vpc", "Switch": "vsw", "SecurityGroup": "sg", "SecurityGroupRule": "sgr",
        "Instance": "i",
    }.get(token.rsplit(":", 1)[-1], "id")
    return f"{prefix}-{hashlib.sha256(f'{token}/{name}'.encode()).hexdigest()[:20]}"


class PlanMocks(pulumi.runtime.Mocks):
    """Deterministic stand-ins for what the provider would return."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.emulator = Emulator()
        self.refusals: list[ClbError] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:
            return None, {}
        rid, state = self._mock(args)
        try:  # what CLB would answer; collected, and raised once the program has run
            self.emulator.create(args.typ, args.name, str(rid), reveal(_from_wire(dict(args.inputs)), True),
                                 keep_refused=True)
        except ClbError as refusal:
            self.refusals.append(refusal)
        return rid, state

    def _mock(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        kind = args.typ.rsplit(":", 1)[-1]
        if kind == "Listener":  # CLB's own format: <lb id>:<protocol>:<port>
            rid = f"{args.inputs['loadBalancerId']}:{args.inputs['protocol']}:{int(args.inputs['frontendPort'])}"
        elif kind == "BackendServer":  # the provider uses the load balancer's id
            rid = str(args.inputs["loadBalancerId"])
        else:
            rid = mock_id(args.typ, args.name)
        if kind == "ApplicationLoadBalancer":  # a documentation address (RFC 5737), never routable
            octet = int(hashlib.sha256(args.name.encode()).hexdigest(), 16) % 254 + 1
            state["address"] = f"203.0.113.{octet}"
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "alicloud:index/getZones:getZones":
            zone = f"{self.region}-h"
            return {"ids": [zone], "zones": [{"id": zone, "localName": zone}]}, []
        if args.token == "alicloud:ecs/getImages:getImages":
            image = "aliyun_3_x64_20G_alibase_20251030.vhd"
            return {"ids": [image], "images": [{"id": image, "name": image}]}, []
        return {}, []


class RecordingMonitor(engine.MockMonitor):
    """The mock monitor, also keeping each registration as the engine would see it."""

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[PlannedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            inputs = _from_wire(json_format.MessageToDict(request.object))
            parent = request.parent.rsplit("::", 1)[-1] if request.parent else None
            options = {"protect": bool(request.protect), "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                       "dependsOn": sorted({urn.rsplit("::", 1)[-1] for urn in request.dependencies})}
            self.recorded.append(PlannedResource(request.type, request.name, response.id or "", parent, inputs,
                                                 options))
        return response


def run(project: str, stack: str, config: dict[str, str], secret_keys: list[str], *,
        program_fn: Callable[[], dict[str, Any]] = program.build, mocks: PlanMocks | None = None) -> Plan:
    """One fresh program run. Raises pulumi.RunError for invalid configuration, or for a plan the
    emulated CLB refuses. `program_fn` declares the resources and returns the outputs (the real
    program unless a caller wraps it); `mocks` answer for the provider (the emulator's seam)."""
    mocks = mocks or PlanMocks(config.get("alicloud:region", ""))
    monitor = RecordingMonitor(mocks)
    engine.reset_root_stack()  # a new root stack for every run
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    plan = Plan(project, stack)

    async def resolve(exported: dict[str, Any]) -> None:
        for key, value in exported.items():
            settled, secret = await _settle(value)
            resolved = settled if _on_the_wire_as_is(settled) else _from_wire(json.loads(json.dumps(settled)))
            plan.outputs[key] = Secret(resolved) if secret else resolved

    def body() -> None:
        with _capture_warnings(plan.warnings):
            exported = program_fn()
        engine.sync_await(resolve(exported))

    engine.run_program(body)
    if mocks.refusals:
        raise pulumi.RunError("CLB would refuse this plan:\n" + "\n".join(f"  {r}" for r in mocks.refusals))
    # registrations arrive in whatever order their inputs resolve: sort, so plans compare stably
    plan.resources = sorted(monitor.recorded, key=lambda r: (r.parent is not None and r.parent != stack_name(plan),
                                                              r.type, r.name))
    return plan


_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


async def _settle(value: Any) -> tuple[Any, bool]:
    """An output's value with every Output in it awaited, and whether any of them is secret: what
    `Output.from_input(value)` resolves to for the values a mock-engine run has (all known: no
    unknowns under `set_mocks(preview=False)`; no Output as a dict key or input type among the
    program's outputs), without an Output for every plain leaf (a per-client map would otherwise
    cost ~0.5 ms per client), nor a coroutine. tests/test_engine.py holds the two side by side."""
    if type(value) in _PLAIN:
        return value, False
    if isinstance(value, pulumi.Output):
        inner, inner_secret = await _settle(await value.future())
        return inner, inner_secret or await value.is_secret()
    if isinstance(value, dict | list | tuple):
        items = value.values() if isinstance(value, dict) else value
        settled, secret = [], False
        for item in items:
            if type(item) in _PLAIN:  # most leaves: no coroutine for them
                settled.append(item)
            else:
                item, item_secret = await _settle(item)
                settled.append(item)
                secret = secret or item_secret
        return (dict(zip(value, settled, strict=True)) if isinstance(value, dict) else settled), secret
    if inspect.isawaitable(value):
        return await _settle(await value)
    return value, False


def stack_name(plan: Plan) -> str:
    """The root stack resource's name, the parent of top-level resources."""
    return f"{plan.project}-{plan.stack}"


@contextlib.contextmanager
def _capture_warnings(sink: list[str]) -> Iterator[None]:
    """Keep the program's `pulumi.log.warn` messages for the report (the mock engine drops them)."""
    original = pulumi.log.warn

    def warn(msg: str, *args: Any, **kwargs: Any) -> None:
        sink.append(msg)

    pulumi.log.warn = warn
    try:
        yield
    finally:
        pulumi.log.warn = original


@dataclass(frozen=True)
class PlanDiff:
    """What a preview would show between two plans: resources by name, and changed outputs."""

    create: list[tuple[str, str]]
    delete: list[tuple[str, str]]
    update: list[tuple[str, str, list[str]]]  # (type, name, changed input keys)
    outputs: list[str]
    # updates that CLB cannot make in place (ForceNew inputs): name -> (those inputs, delete first)
    replacements: dict[str, tuple[list[str], bool]] = field(default_factory=dict)

    @property
    def resource_changes(self) -> dict[str, list[str]]:
        return {"create": [n for _, n in self.create], "delete": [n for _, n in self.delete],
                "update": [n for _, n, _ in self.update]}

    def render(self) -> str:
        lines = [f"+ create  {t}  {n}" for t, n in self.create]
        for t, n, keys in self.update:
            if n not in self.replacements:
                lines.append(f"~ update  {t}  {n}  (in place: {', '.join(keys)})")
                continue
            forcing, delete_first = self.replacements[n]
            order = ("delete first: it is down until its replacement is created" if delete_first
                     else "the replacement is created first")
            lines.append(f"+- replace  {t}  {n}  (forced by {', '.join(forcing)}; {order})")
        lines += [f"- delete  {t}  {n}" for t, n in self.delete]
        if not lines:
            lines.append("no resource changes")
        if self.outputs:
            lines.append("outputs changed: " + ", ".join(self.outputs))
        return "\n".join(lines)


def _output_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Outputs flattened one level into maps (clients.alice), so a diff names what changed."""
    if isinstance(value, dict) and prefix.count(".") < 1:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_output_paths(inner, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def deletes_first(resource: dict[str, Any]) -> bool:
    """Whether a planned resource is replaced delete-first (its deleteBeforeReplace option)."""
    return bool((resource.get("options") or {}).get("deleteBeforeReplace"))


def diff_documents(before: dict[str, Any], after: dict[str, Any]) -> PlanDiff:
    """Compare two plan documents (`Plan.to_json`); resources are matched by name."""
    old = {r["name"]: r for r in before["resources"]}
    new = {r["name"]: r for r in after["resources"]}
    update: list[tuple[str, str, list[str]]] = []
    for name in sorted(set(old) & set(new)):
        keys = sorted(k for k in set(old[name]["inputs"]) | set(new[name]["inputs"])
                      if old[name]["inputs"].get(k) != new[name]["inputs"].get(k))
        if keys:
            update.append((new[name]["type"], name, keys))
    replacements: dict[str, tuple[list[str], bool]] = {}
    for kind, name, keys in update:
        forcing = sorted(set(keys) & clb.FORCE_NEW.get(kind, frozenset()))
        if forcing:
            replacements[name] = (forcing, deletes_first(new[name]))
    # A replaced resource gets a new id: whatever holds that id in a ForceNew input is replaced too
    # (the load balancer's replacement takes the listener and backends with it).
    cascade = True
    while cascade:
        cascade = False
        replaced_ids = {new[n].get("id"): n for n in replacements if new[n].get("id")}
        for name in sorted(set(old) & set(new)):
            if name in replacements:
                continue
            kind = new[name]["type"]
            held = sorted(k for k, v in new[name]["inputs"].items()
                          if k in clb.FORCE_NEW.get(kind, frozenset()) and v in replaced_ids)
            if held:
                reason = [f"{k} (its {replaced_ids[new[name]['inputs'][k]]} is replaced)" for k in held]
                replacements[name] = (reason, deletes_first(new[name]))
                if not any(n == name for _, n, _ in update):
                    update.append((kind, name, held))
                cascade = True
    old_out, new_out = _output_paths(before["outputs"]), _output_paths(after["outputs"])
    return PlanDiff(
        create=[(new[n]["type"], n) for n in sorted(set(new) - set(old))],
        delete=[(old[n]["type"], n) for n in sorted(set(old) - set(new))],
        update=update,
        outputs=sorted(k for k in set(old_out) | set(new_out) if old_out.get(k) != new_out.get(k)),
        replacements=replacements,
    )
