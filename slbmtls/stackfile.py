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
from typing import Any, Final

import yaml

from pki import PkiError
from pki.files import read_small_file
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


STACK_FILE_LIMIT: Final = 1 << 20  # a stack file with a brought certificate chain is ~20 KiB
MAX_DEPTH: Final = 32  # nesting of mappings and lists; the deepest real setting is 4
MAX_NODES: Final = 20_000  # a real stack file has a few hundred; thousands of clients take minutes to plan
MAX_SCALAR: Final = 64 << 10  # the longest real value is a brought certificate chain, a few KiB
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # as the Makefile checks it
# settings that are YAML mappings or lists: given as a string (e.g. JSON text) the program would
# decode it and `bundle` would not, so both refuse it here
STRUCTURED_KEYS: Final = {"loadBalancer": "mapping", "listener": "mapping", "demoBackends": "mapping",
                          "pki": "mapping", "backends": "list", "clients": "list", "revoked": "list"}

# PyYAML's libyaml parser is ~10x faster than the pure-Python one; use it when it was built.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StackLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that keeps to what a Pulumi stack file can mean: text keys, each once; dates
    stay text (the config layer decides what a date is); no binary, sets or ordered maps."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, "expected a mapping", node.start_mark)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node.value, str) else "(a mapping or list)"
                kind = key_node.tag.rsplit(":", 1)[-1]
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {_clip(shown)!r} is not text (YAML reads it as {kind}); quote it",
                    key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {_clip(key)!r} appears twice; keep one", key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _refuse(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"YAML {node.tag.rsplit(':', 1)[-1]} values are not accepted in a stack file", node.start_mark)


def _integer(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)  # type: ignore[arg-type]
    except ValueError:  # Python refuses to convert integers of more than 4300 digits
        raise yaml.constructor.ConstructorError(
            None, None, f"a number of {len(str(node.value))} digits", node.start_mark) from None


_StackLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_StackLoader.add_constructor("tag:yaml.org,2002:int", _integer)
for _tag in ("binary", "set", "omap", "pairs"):
    _StackLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_OPENING: Final = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSING: Final = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _scan(text: str) -> str | None:
    """Refuse what would make building the document costly, before building it: aliases (a few
    lines of them expand to gigabytes), deep nesting, too many nodes, huge values. One pass over
    the parser's events (~5 per client), so it keeps to the cheapest checks on each."""
    loader = _StackLoader(text)
    try:
        depth = nodes = 0
        check_event, get_event = loader.check_event, loader.get_event
        while check_event():
            event = get_event()
            kind = type(event)
            if kind is yaml.AliasEvent or getattr(event, "anchor", None) is not None:
                return (f"line {_line(event)}: YAML anchors and aliases (&name, *name) are not accepted in a "
                        "stack file; write the values out")
            if kind is yaml.ScalarEvent:
                if len(event.value) > MAX_SCALAR:
                    return (f"line {_line(event)}: a value of {len(event.value)} characters; no setting needs "
                            f"more than {MAX_SCALAR}")
            elif kind in _OPENING:
                depth += 1
                if depth > MAX_DEPTH:
                    return f"line {_line(event)}: nested more than {MAX_DEPTH} levels deep"
            elif kind in _CLOSING:
                depth -= 1
            nodes += 1
            if nodes > MAX_NODES:
                return f"more than {MAX_NODES} YAML nodes; not a stack file"
    finally:
        loader.dispose()
    return None


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A parser error as `line L, column C: problem`, without quoting the file's text (which may
    hold a secret pasted in the wrong place)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    context = getattr(exc, "context", None)
    if context and context != problem:
        problem = f"{context}, {problem}"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character {exc.position + 1}: a control character or byte YAML does not allow (a binary file?)"
    return f"{where}{problem}"


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file whose document is a mapping (or empty), within the limits above, or a
    StackFileError naming the file."""
    try:
        data = read_small_file(path, what, limit=STACK_FILE_LIMIT)
    except PkiError as exc:
        raise StackFileError(str(exc)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StackFileError(f"{path}: not UTF-8 text (byte {exc.start + 1}); a stack file is UTF-8 YAML") from None
    try:
        problem = _scan(text)
        if problem is None:
            loader = _StackLoader(text)
            try:
                document = loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as exc:
        problem = _yaml_problem(exc)
    except RecursionError:
        problem = "nested too deeply"
    except (ValueError, OverflowError) as exc:  # a constructor's own failure; no value is quoted
        problem = exc.__class__.__name__
    if problem is not None:
        raise StackFileError(f"{path}: cannot read it as YAML: {problem}")
    if document is None:
        return {}
    if not isinstance(document, dict):
        kind = "list" if isinstance(document, list) else "plain value"
        raise StackFileError(f"{path}: the document is a {kind}; a Pulumi stack file is a mapping "
                             "with a 'config:' mapping inside")
    return document


def load_stack(project_dir: Path, stack: str) -> StackFile:
    if not _STACK_NAME.fullmatch(stack):
        raise StackFileError(f"STACK={_clip(stack)!r}: a stack name is 1-100 letters, digits, '_', '.', '-', "
                             "starting with a letter or digit")
    project_file = project_dir / "Pulumi.yaml"
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml")
                       for p in project_dir.glob("Pulumi.*.yaml"))
        raise StackFileError(f"{stack_file}: no such stack file; stacks here: {', '.join(known) or '(none)'}")
    project = read_yaml_mapping(project_file, "Pulumi.yaml").get("name")
    if not isinstance(project, str) or not project:
        raise StackFileError(f"{project_file}: 'name' must be the project's name as text")
    document = read_yaml_mapping(stack_file, f"Pulumi.{stack}.yaml")
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(f"{stack_file}: 'config' must be a mapping of key: value")
    values: dict[str, Any] = {}
    secure: set[str] = set()
    written: dict[str, str] = {}
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if full in written:  # `domain` and `slb-mtls:domain` are one key: which would win?
            raise StackFileError(f"{stack_file}: {full} is given twice, as {_clip(written[full])!r} and "
                                 f"{_clip(key)!r}; keep one")
        written[full] = key
        if isinstance(value, dict) and set(value) == {"secure"}:
            secure.add(full)
        else:
            values[full] = value
    for key, kind in STRUCTURED_KEYS.items():
        if isinstance(values.get(f"{NAMESPACE}:{key}"), str):
            raise StackFileError(f"{stack_file}: {NAMESPACE}:{key} is given as a string; write it as a YAML "
                                 f"{kind} (JSON text inside a string is not read as structure)")
    passphrase = f"{NAMESPACE}:serverPrivateKeyPassphrase"
    if passphrase in values:
        # refused here too, before anything runs; the seed and key are refused by the program
        # itself, with its messages (see `OfflineStack`)
        raise StackFileError(f"{stack_file}: {passphrase}: stored in plain text; remove it and store it "
                             "encrypted with:  pulumi config set --secret serverPrivateKeyPassphrase < passphrase.txt")
    return StackFile(project, stack, stack_file, values, frozenset(secure))


# What the Pulumi engine hands a running program: its whole config, secrets decrypted.
_PROGRAM_CONFIG_VARIABLES: Final = ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS")


def run_pulumi(stack: str, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`pulumi ARGS --stack S --cwd DIR` with only what the CLI needs to reach the state backend:
    never our PKI_SEED, the config a running program holds, or anything else the caller's
    environment has."""
    keep = ("PATH", "HOME", "PULUMI_", "AWS_", "ALIBABA_CLOUD_")
    env = {k: v for k, v in os.environ.items()
           if k.startswith(keep) and k != "PKI_SEED" and k not in _PROGRAM_CONFIG_VARIABLES}
    # no stdin: a CLI that would prompt (e.g. for a passphrase) fails instead of waiting for an answer
    return subprocess.run(["pulumi", *args, "--stack", stack, "--cwd", str(cwd)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, env=env,
                          timeout=timeout)


def deployed_outputs(stack: str, cwd: Path, *, timeout: float = 300) -> dict[str, Any]:
    """The deployed stack's public outputs (`pulumi stack output --json`, run in the project
    directory `cwd`); {} for a stack with none yet. StackFileError when they cannot be read."""
    if not shutil.which("pulumi"):
        raise StackFileError("the pulumi CLI is not installed: it is needed to read the deployed stack's outputs "
                             "(https://www.pulumi.com/docs/install/)")
    try:
        result = run_pulumi(stack, cwd, "stack", "output", "--json", timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StackFileError(f"`pulumi stack output --json --stack {stack}` took over {timeout:.0f} s") from None
    if result.returncode != 0:
        raise StackFileError(f"`pulumi stack output --json --stack {stack}` failed: "
                             f"{result.stderr.strip()[:300] or 'no message'}")
    try:
        outputs = json.loads(result.stdout or "{}")
    except ValueError:
        raise StackFileError(f"`pulumi stack output --json --stack {stack}` did not print JSON") from None
    return outputs if isinstance(outputs, dict) else {}


def _from_pulumi_cli(stack: StackFile, key: str) -> str | None:
    """A secret through the `pulumi` CLI, when one is installed and the stack's backend is logged in."""
    if f"{NAMESPACE}:{key}" not in stack.secure_keys or not shutil.which("pulumi"):
        return None
    result = run_pulumi(stack.stack, stack.path.parent, "config", "get", key)
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
            data = read_small_file(path, env_var, limit=1 << 20)
        except PkiError as exc:
            raise StackFileError(str(exc)) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StackFileError(f"{env_var}={path}: not UTF-8 text") from None
    return _from_pulumi_cli(stack, key)
