"""Operator commands: `python -m slbmtls plan|bundle|inspect|rehearse` (the Makefile wraps them).

Every failure the user can fix is printed as one clear message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pki import PkiError, PkiMaterial, Profile, Seed, build_material, write_client_bundle
from pki.files import check_target, read_small_file, write_private_file
from pki.inspect import describe
from slbmtls.clock import ClockError
from slbmtls.config import (
    NAMESPACE,
    SECRET_KEYS,
    SEED_KEY,
    ConfigError,
    StackConfig,
    StackSecrets,
    parse_stack_config,
    seed_of,
)
from slbmtls.program import today
from slbmtls.stackfile import StackFileError, load_stack, resolve_file_secret, resolve_seed

PROJECT_DIR = Path(__file__).resolve().parent.parent  # where Pulumi.yaml lives, unless --project-dir
PLAN_JSON_LIMIT = 64 << 20  # far above any plan (a few hundred KiB with secrets shown)
INSPECT_LIMIT = 16 << 20  # certificates, CRLs and PKCS#12 files are kilobytes


class UserError(Exception):
    """A problem the user fixes; printed without a traceback."""


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """While secret files are written, SIGTERM unwinds like Ctrl-C, so the writer's cleanup removes
    its temporary files (SIGTERM's default would leave them behind). SIGKILL cannot be caught."""
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _read_secret_file(path: str, what: str) -> str:
    """A password from a file, exactly as written except for one final line ending (editors add
    it). Leading or trailing spaces are refused rather than stripped: other tools disagree on
    whether they belong to the password, so a bundle opened elsewhere would not open."""
    data = read_small_file(path, what, limit=4096)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what}={path}: not UTF-8 text; write the password as UTF-8") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise UserError(f"{what}={path}: empty; write the password on the first line")
    if "\n" in text or "\r" in text:
        raise UserError(f"{what}={path}: more than one line; the password is the whole file "
                        "(one final line ending allowed)")
    if text != text.strip():
        raise UserError(f"{what}={path}: the password starts or ends with white space; remove it, or put "
                        "the password in the file exactly, without surrounding spaces")
    if "\0" in text:
        raise UserError(f"{what}={path}: contains a NUL character, which no PKCS#12 tool accepts")
    return text


# -- plan --------------------------------------------------------------------------------------


def make_plan(stack: str, *, project_dir: Path = PROJECT_DIR, ephemeral_ok: bool = True,
              overrides: dict[str, str] | None = None) -> tuple[Any, str]:
    """Run the program for a stack under the mock engine; the plan and where its seed came from.
    `overrides` replace engine config values (full keys, JSON text), e.g. to plan a what-if."""
    import pulumi

    from slbmtls import plan as planner

    stack_file = load_stack(project_dir, stack)
    config = {**stack_file.engine_config(), **(overrides or {})}
    secret_keys = []
    # A secret written in plain text in the stack file goes to the program as the engine would
    # hand it over, not marked secret, so the program refuses it exactly as under `pulumi up`.
    if SEED_KEY in stack_file.values:
        source = "stack file (plain text)"
    else:
        config[SEED_KEY], source = resolve_seed(stack_file, allow_ephemeral=ephemeral_ok)
        secret_keys.append(SEED_KEY)
    # a brought server certificate's key (and passphrase) are secrets the stack file cannot show us
    for key, env_var in (("serverPrivateKey", "SERVER_PRIVATE_KEY_FILE"),
                         ("serverPrivateKeyPassphrase", "SERVER_PRIVATE_KEY_PASSPHRASE_FILE")):
        if f"{NAMESPACE}:{key}" in stack_file.values:
            continue
        value = resolve_file_secret(stack_file, key, env_var)
        if value is not None:
            config[f"{NAMESPACE}:{key}"] = value.strip() if key.endswith("Passphrase") else value
            secret_keys.append(f"{NAMESPACE}:{key}")
    try:
        return planner.run(stack_file.project, stack, config, secret_keys), source
    except pulumi.RunError as exc:
        raise UserError(str(exc)) from None


def _summary(value: Any) -> str:
    if isinstance(value, str) and "-----BEGIN" in value:
        kinds = sorted({line[11:-5] for line in value.splitlines() if line.startswith("-----BEGIN")})
        return f"<PEM {', '.join(kinds)} x{value.count('-----BEGIN')}>"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 100 else text[:97] + "..."


def render_plan(plan: Any, source: str) -> str:
    from slbmtls.plan import reveal

    lines = [f"offline plan for stack {plan.stack!r} (project {plan.project}; seed: {source})", ""]
    for res in plan.resources:
        lines.append(f"+ {res.type}  {res.name}" + (f"  id={res.id}" if res.id else ""))
        for key, value in sorted(reveal(res.inputs, False).items()):
            lines.append(f"      {key:<26} {_summary(value)}")
    lines += ["", f"{len(plan.resources)} resources", "", "outputs:"]
    for key, value in reveal(plan.outputs, False).items():
        lines.append(f"  {key:<30} {_summary(value)}")
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> None:
    if args.json:  # a target that will be refused is reported before the plan is made
        check_target(Path(args.json), overwrite=args.overwrite, what="PLAN_JSON")
    plan, source = make_plan(args.stack, project_dir=args.project_dir)
    if source == "ephemeral":
        print("notice: PKI_SEED is not set; using a throwaway seed, so certificates differ from the "
              "stack's and from run to run", file=sys.stderr)
    print(render_plan(plan, source))
    if args.json:
        document = plan.to_json(show_secrets=os.environ.get("SHOW_SECRETS") == "1")
        # 0600 from creation, no symlink followed, whole or absent (with SHOW_SECRETS it holds keys)
        with _terminate_cleanly():
            write_private_file(Path(args.json), (json.dumps(document, indent=2, sort_keys=True) + "\n").encode(),
                               overwrite=args.overwrite, what="PLAN_JSON")


def cmd_diff(args: argparse.Namespace) -> None:
    from slbmtls.plan import diff_documents

    documents = [read_plan_document(path, what) for path, what in ((args.before, "BEFORE"), (args.after, "AFTER"))]
    print(diff_documents(documents[0], documents[1]).render())
    _replay(documents[0], documents[1], args.steps_json)


def _replay(before: dict[str, Any], after: dict[str, Any], steps_json: str | None) -> None:
    """The update's steps against the CLB emulator. The preview above stays on stdout as the
    README shows it; the replay's verdict goes to stderr, and any refusal fails the command."""
    from slbmtls.replay import replay, write_steps_json

    result = replay(before, after)
    print(result.render(), file=sys.stderr)
    if steps_json:
        try:
            write_steps_json(steps_json, json.dumps(result.to_json(), indent=2) + "\n")
        except OSError as exc:
            reason = {errno.ELOOP: "it is a symbolic link, which is not followed",
                      errno.ENXIO: "it is not a regular file"}.get(exc.errno or 0, exc.strerror or str(exc))
            raise UserError(f"STEPS_JSON={steps_json}: cannot write it: {reason}") from None
    if not result.ok:
        raise SystemExit(1)


def read_plan_document(path: str, what: str) -> dict[str, Any]:
    """A plan JSON file, checked for the shape `diff_documents` relies on."""
    data = read_small_file(path, what, limit=PLAN_JSON_LIMIT)
    hint = "expected a plan written by `make plan PLAN_JSON=...`"
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        problem = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else (
            "nested too deeply" if isinstance(exc, RecursionError) else f"not JSON: {exc}")
        raise UserError(f"{what}={path}: {problem}; {hint}") from None
    shape = plan_shape_problem(document)
    if shape:
        raise UserError(f"{what}={path}: {shape}; {hint}")
    return document  # type: ignore[no-any-return]


def plan_shape_problem(document: Any) -> str | None:
    """Why `document` is not a plan document, or None."""
    if not isinstance(document, dict):
        return f"the top level is a JSON {type(document).__name__}, not an object"
    if not isinstance(document.get("resources"), list):
        return "no 'resources' list"
    if not isinstance(document.get("outputs"), dict):
        return "no 'outputs' object"
    for index, res in enumerate(document["resources"]):
        if not isinstance(res, dict):
            return f"resources[{index}] is not an object"
        for key, kind in (("type", str), ("name", str), ("inputs", dict)):
            if not isinstance(res.get(key), kind):
                return f"resources[{index}].{key} is missing or not a JSON {'string' if kind is str else 'object'}"
        for key in ("id", "parent"):
            if res.get(key) is not None and not isinstance(res[key], str):
                return f"resources[{index}].{key} is not a JSON string"
        options = res.get("options")
        if options is not None:
            if not isinstance(options, dict):
                return f"resources[{index}].options is not a JSON object"
            depends = options.get("dependsOn", [])
            if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
                return f"resources[{index}].options.dependsOn is not a list of resource names"
    return None


# -- bundle ------------------------------------------------------------------------------------


def offline_stack(stack: str, *, project_dir: Path = PROJECT_DIR) -> tuple[StackConfig, Seed]:
    """The stack's validated config and its seed, read without the engine. A brought server
    certificate is left out: its key is a Pulumi secret the offline tools never need."""
    stack_file = load_stack(project_dir, stack)
    raw = stack_file.namespace()
    raw.pop("serverCertificate", None)
    # as the program does: secrets are not settings, and one in plain text is refused as such
    plain_seed = raw.get("pkiSeed")
    if "serverPrivateKey" in raw:  # the program's own message; its brought certificate is not read here
        raise ConfigError([f"{NAMESPACE}:serverPrivateKey: stored in plain text; remove it and store it encrypted "
                           "with: pulumi config set --secret serverPrivateKey < server.key"])
    for key in SECRET_KEYS:
        raw.pop(key, None)
    if plain_seed is not None:
        secrets = StackSecrets(seed=str(plain_seed), seed_is_secret=False)
    else:
        secrets = StackSecrets(seed=resolve_seed(stack_file)[0])
    config = parse_stack_config(raw, stack_file.values.get("alicloud:region"), project=stack_file.project,
                                stack=stack, secrets=secrets)
    return config, seed_of(secrets)


def stack_material(stack: str, *, project_dir: Path = PROJECT_DIR) -> PkiMaterial:
    """The stack's CA and client material, rebuilt offline from its file and seed."""
    config, seed = offline_stack(stack, project_dir=project_dir)
    return build_material(seed, config.pki, today=today())


def cmd_bundle(args: argparse.Namespace) -> None:
    # the password file first: a mistake there is found before the keys are derived
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
    material = stack_material(args.stack, project_dir=args.project_dir)
    client = args.client if len(args.client) <= 80 else args.client[:77] + "..."
    if args.client in material.revoked:
        raise UserError(f"CLIENT={client}: revoked in stack {args.stack}; it gets no bundle")
    issued = material.clients.get(args.client)
    if issued is None:
        raise UserError(f"CLIENT={client}: not a client of stack {args.stack}; clients: "
                        f"{', '.join(material.clients) or '(none)'}")
    if issued.private_key is None:
        raise UserError(f"CLIENT={client}: signed from the client's CSR, so the client holds the key; "
                        f"hand over the certificate from the stack output clientCertificatePems instead")
    with _terminate_cleanly():
        files = write_client_bundle(
            Path(args.out), args.client, issued, material.ca.certificate, material.crl_pem,
            password=password, profile=Profile.LEGACY if args.legacy else Profile.MODERN, plain_key=args.plain_key,
        )
    for path in files.paths:
        print(f"wrote {path} (0600)")
    if files.password_path is not None:
        print(f"the PKCS#12 password was generated and written to {files.password_path}; "
              "send it by a different channel than the bundle")


# -- inspect -----------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> None:
    data = read_small_file(args.file, "FILE", limit=INSPECT_LIMIT)
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
    print(describe(data, today=today(), password=password, source=args.file))


# -- entry -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slbmtls", description=__doc__)
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR,
                        help="the directory with Pulumi.yaml and the Pulumi.<stack>.yaml files")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="offline preview under the mock engine")
    p.add_argument("--stack", default="dev")
    p.add_argument("--json", help="also write the plan as JSON to this file (0600; an existing one is kept)")
    p.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    p.set_defaults(func=cmd_plan)
    d = sub.add_parser("diff", help="what changes between two plan JSON files, as a preview shows it")
    d.add_argument("before")
    d.add_argument("after")
    d.add_argument("--steps-json", help="also write the replayed steps as JSON to this file (0600)")
    d.set_defaults(func=cmd_diff)
    b = sub.add_parser("bundle", help="write a client's PKCS#12 and PEM files")
    b.add_argument("--stack", default="dev")
    b.add_argument("--client", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--legacy", action="store_true", help="3DES/SHA-1 PKCS#12 for old Windows/macOS")
    b.add_argument("--password-file")
    b.add_argument("--plain-key", action="store_true", help="also write NAME.plain.key, unencrypted (0600)")
    b.set_defaults(func=cmd_bundle)
    i = sub.add_parser("inspect", help="summarise a certificate, CSR, CRL or PKCS#12 file")
    i.add_argument("file")
    i.add_argument("--password-file")
    i.set_defaults(func=cmd_inspect)
    r = sub.add_parser("rehearse", help="serve the planned listener with HAProxy and check it")
    r.add_argument("--stack", default="dev")
    r.add_argument("--report-json")
    r.add_argument("--keep", action="store_true")
    r.set_defaults(func=_rehearse)
    args = parser.parse_args(argv)
    try:
        today()  # SLB_MTLS_TODAY is the environment's, not the stack's: report it as such, first
    except ClockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except (UserError, ConfigError, PkiError, StackFileError) as exc:
        prefix = "invalid stack configuration:\n" if isinstance(exc, ConfigError) else ""
        print(f"error: {prefix}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _rehearse(args: argparse.Namespace) -> None:
    from slbmtls.rehearse import cli as rehearse_cli

    if rehearse_cli(args.stack, project_dir=args.project_dir, report_json=args.report_json, keep=args.keep) != 0:
        raise SystemExit(1)


