"""Reading a stack's settings without the Pulumi CLI: `Pulumi.yaml` and `Pulumi.<stack>.yaml`.

Encrypted (`secure:`) values cannot be read here; the seed comes from PKI_SEED instead, or from the
`pulumi` CLI when one is installed and logged in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slbmtls.config import NAMESPACE, SEED_COMMAND, SEED_KEY


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    path: Path
    values: dict[str, Any]  # full key -> plain value, as written in the file
    secure_keys: frozenset[str]  # full keys stored encrypted in the file

    def namespace(self, ns: str = NAMESPACE) -> dict[str, Any]:
        prefix = f"{ns}:"
        return {k.removeprefix(prefix): v for k, v in self.values.items() if k.startswith(prefix)}

    def engine_config(self) -> dict[str, str]:
        """Config as the engine hands it to a program: objects and lists as JSON text."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.values.items()}


def load_stack(project_dir: Path, stack: str) -> StackFile:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", stack):
        raise StackFileError(f"STACK={stack!r}: a stack name is letters, digits, '_', '.', '-'")
    project_file = project_dir / "Pulumi.yaml"
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                       for p in project_dir.glob("Pulumi.*.yaml"))
        raise StackFileError(f"{stack_file}: no such stack file; stacks here: {', '.join(known) or '(none)'}")
    try:
        project = yaml.safe_load(project_file.read_text())["name"]
        document = yaml.safe_load(stack_file.read_text()) or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        problem = exc.__class__.__name__
        raise StackFileError(f"{stack_file}: cannot read it as a Pulumi stack file ({problem})") from None
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(f"{stack_file}: 'config' must be a mapping of key: value")
    values: dict[str, Any] = {}
    secure: set[str] = set()
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure.add(full)
        else:
            values[full] = value
    return StackFile(project, stack, stack_file, values, frozenset(secure))


def _from_pulumi_cli(stack: StackFile, key: str) -> str | None:
    """A secret through the `pulumi` CLI, when one is installed and the stack's backend is logged in."""
    if f"{NAMESPACE}:{key}" not in stack.secure_keys or not shutil.which("pulumi"):
        return None
    result = subprocess.run(
        ["pulumi", "config", "get", key, "--stack", stack.stack, "--cwd", str(stack.path.parent)],
        capture_output=True, text=True, check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def resolve_seed(stack: StackFile, *, allow_ephemeral: bool = False) -> tuple[str, str]:
    """The seed as hex, and where it came from. PKI_SEED wins; then the pulumi CLI; else an error
    (or, for previews only, a throwaway seed)."""
    from_env = os.environ.get("PKI_SEED")
    if from_env:
        return from_env, "PKI_SEED"
    from_cli = _from_pulumi_cli(stack, "pkiSeed")
    if from_cli:
        return from_cli, f"pulumi config ({stack.stack})"
    if allow_ephemeral:
        return os.urandom(32).hex(), "ephemeral"
    raise StackFileError(
        f"{SEED_KEY}: no seed available. Export it for this shell, e.g. "
        f"`export PKI_SEED=$(pulumi config get pkiSeed --stack {stack.stack})`, "
        f"or create one with `{SEED_COMMAND}`"
    )


def resolve_file_secret(stack: StackFile, key: str, env_var: str) -> str | None:
    """A secret setting for offline tools: from the file named by `env_var`, else the pulumi CLI."""
    path = os.environ.get(env_var)
    if path:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise StackFileError(f"{env_var}={path}: cannot read it ({exc.strerror})") from None
    return _from_pulumi_cli(stack, key)
