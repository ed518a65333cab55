"""Imports run one way: cli, then rehearsal and verify, then offline, then program, then infra and
config, then clb and pki. A cycle, or an import against that order, fails here."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from stackrun import ROOT, TEST_SEED, project_with

# lower number = lower layer; a module may import only modules of a lower or its own layer
LAYERS = {
    "slbmtls.cli": 6, "slbmtls.__main__": 7,
    "slbmtls.rehearsal": 5, "slbmtls.verify": 5,
    "slbmtls.offline": 4,
    "slbmtls.plan": 3, "slbmtls.program": 3,
    "slbmtls.infra": 2, "slbmtls.config": 2, "slbmtls.stackfile": 2, "slbmtls.engine": 2,
    "slbmtls.clb": 1, "slbmtls.clock": 1, "pki": 0,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in [*ROOT.glob("slbmtls/**/*.py"), *ROOT.glob("pki/*.py")]}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                # `from pkg import sub` depends on the submodule; `from mod import name` on the module
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            # a package is initialised before its submodules run: importing it from one is no edge
            deps |= {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
        graph[name] = deps
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_imports_run_one_way() -> None:
    against = []
    for module, deps in _graph().items():
        for dep in deps:
            own, theirs = _layer(module), _layer(dep)
            package = module.rsplit(".", 1)[0]
            if own is not None and theirs is not None and theirs > own and not dep.startswith(package + "."):
                against.append(f"{module} -> {dep}")
    assert against == []


def test_nothing_imports_the_cli() -> None:
    assert [m for m, deps in _graph().items() if "slbmtls.cli" in deps and m != "slbmtls.__main__"] == []


def test_nothing_writes_the_environment() -> None:
    offenders = []
    for path in ROOT.glob("slbmtls/**/*.py"):
        text = path.read_text()
        for needle in ("os.environ[", "os.putenv", "os.environ.update", "os.environ.setdefault"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_pki_lazy_exports_list_each_name_once_in_all_three_places() -> None:
    """pki/__init__.py names its exports three times (imports for type checkers, the lazy map,
    __all__): a name missing from the map would pass mypy and fail at run time."""
    import pki

    tree = ast.parse(Path(pki.__file__).read_text())
    typed = {alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
             for stmt in node.body if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    assert typed == set(pki._MODULE_OF) == set(pki.__all__)
    assert len(pki.__all__) == len(set(pki.__all__))
    for name in pki.__all__:
        assert getattr(pki, name) is getattr(importlib.import_module(pki._MODULE_OF[name]), name)


_HEAD_START = """
import json, sys
from pathlib import Path
import slbmtls.cli  # what `python -m slbmtls plan` has loaded when it starts deriving
from slbmtls.offline import OfflineStack
stack = OfflineStack.load("light", project_dir=Path(sys.argv[1]))
started = stack._start_deriving()
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"cryptography", "gmpy2", "pulumi", "grpc"})
from pki import stop_deriving
stop_deriving()
print(json.dumps({"started": started, "loaded": loaded}))
"""


def test_the_head_start_reaches_the_helper_before_cryptography_loads(tmp_path: Path) -> None:
    """`make plan` reads the stack, validates its config and hands the clients to the issuing helper
    with only the standard library, PyYAML and pydantic loaded (~0.1 s sooner than after
    cryptography and ~0.3 s before the program asks): pki.model, pki.seed, pki.headstart,
    pki.keypool and pki.sharedqueue stay light, and the CLI loads the rest where a command needs it."""
    clients = "\n".join(f"    - {{name: ec-{i:02d}, keyType: ec-p256}}" for i in range(24))
    text = ("config:\n  alicloud:region: cn-hangzhou\n  slb-mtls:domain: light.example.com\n"
            "  slb-mtls:backends: [{instanceId: i-light0, weight: 100}]\n"
            "  slb-mtls:pki: {issued: '2026-01-05'}\n  slb-mtls:clients:\n" + clients + "\n")
    project = project_with(tmp_path, {"light": text})
    env = {**os.environ, "PKI_SEED": TEST_SEED, "SLB_MTLS_PKI_WORKERS": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _HEAD_START, str(project)], capture_output=True, text=True,
                         env=env, check=True, cwd=ROOT).stdout
    assert json.loads(out) == {"started": True, "loaded": []}


def test_a_ca_without_history_never_has_enough_rsa_keys_for_the_key_helper() -> None:
    """pki.headstart skips the key helper (and the cryptography its labels need) for a CA without
    revocations or rotations: there are then at most two RSA keys to derive, the CA's and the server's."""
    from conftest import SEED, spec

    from pki import keypool
    from pki.model import KeyType
    from pki.revocation import rsa_requests

    for key_type in (KeyType.RSA_2048, KeyType.RSA_4096):
        plain = spec(ca_key_type=key_type)
        assert not plain.revocations and plain.ca_generation == 1
        assert len(rsa_requests(SEED, plain)) == 2 < keypool.MIN_PARALLEL
