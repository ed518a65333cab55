"""Operator commands: `python -m slbmtls plan|diff|bundle|inspect|rehearse|verify` (the Makefile
wraps them).

Every failure the user can fix is printed as one clear message and exit status 2, never a traceback.
Each command is a small function: the work lives in offline (stack, seed, plan), rehearsal and verify.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pki import PkiError
from pki.files import check_target, read_small_file, write_private_file
from slbmtls.clock import ClockError, today
from slbmtls.config import ConfigError
from slbmtls.offline import PROJECT_DIR, OfflineStack, UserError
from slbmtls.stackfile import StackFileError

__all__ = ["PROJECT_DIR", "UserError", "exit_without_teardown", "main"]

PLAN_JSON_LIMIT = 64 << 20  # far above any plan (a few hundred KiB with secrets shown)
INSPECT_LIMIT = 16 << 20  # certificates, CRLs and PKCS#12 files are kilobytes

_EPHEMERAL = ("notice: PKI_SEED is not set; using a throwaway seed, so certificates differ from the stack's "
              "and from run to run")


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
    if text.endswith("\r\n") or text.endswith("\r"):
        raise UserError(f"{what}={path}: ends with a Windows line ending (CR LF); openssl and other tools would "
                        "read the CR as part of the password: save the file with a plain LF ending")
    text = text.removesuffix("\n")
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


SUMMARY_WIDTH = 100  # characters of a value the plan table shows


def _summary(value: Any) -> str:
    if isinstance(value, str) and "-----BEGIN" in value:
        kinds = sorted({line[11:-5] for line in value.splitlines() if line.startswith("-----BEGIN")})
        return f"<PEM {', '.join(kinds)} x{value.count('-----BEGIN')}>"
    # json.dumps(value, sort_keys=True), cut at SUMMARY_WIDTH: encoded only as far as shown (a map of
    # every client's certificate is ~1 KB per client)
    text = ""
    for chunk in json.JSONEncoder(sort_keys=True).iterencode(value):
        text += chunk
        if len(text) > SUMMARY_WIDTH:
            return text[: SUMMARY_WIDTH - 3] + "..."
    return text


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


# -- commands ----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    if args.json:  # a target that will be refused is reported before the plan is made
        check_target(Path(args.json), overwrite=args.overwrite, what="PLAN_JSON")
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, ephemeral_ok=True)
    if stack.ephemeral:
        print(_EPHEMERAL, file=sys.stderr)
    plan = stack.plan().plan
    print(render_plan(plan, stack.seed_source))
    if args.json:
        document = plan.to_json(show_secrets=os.environ.get("SHOW_SECRETS") == "1")
        # 0600 from creation, no symlink followed, whole or absent (with SHOW_SECRETS it holds keys)
        with _terminate_cleanly():
            write_private_file(Path(args.json), (json.dumps(document, indent=2, sort_keys=True) + "\n").encode(),
                               overwrite=args.overwrite, what="PLAN_JSON")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from slbmtls.plan import diff_documents

    if args.steps_json:  # a target that will be refused is reported before any work
        check_target(Path(args.steps_json), overwrite=args.overwrite, what="STEPS_JSON")
    documents = [read_plan_document(path, what) for path, what in ((args.before, "BEFORE"), (args.after, "AFTER"))]
    print(diff_documents(documents[0], documents[1]).render())
    return 0 if _replay(documents[0], documents[1], args.steps_json, overwrite=args.overwrite) else 1


def _replay(before: dict[str, Any], after: dict[str, Any], steps_json: str | None, *, overwrite: bool) -> bool:
    """The update's steps against the CLB emulator. The preview above stays on stdout as the
    README shows it; the replay's verdict goes to stderr, and any refusal fails the command."""
    from slbmtls.replay import replay, write_steps_json

    result = replay(before, after)
    print(result.render(), file=sys.stderr)
    if steps_json:
        with _terminate_cleanly():
            write_steps_json(steps_json, json.dumps(result.to_json(), indent=2) + "\n", overwrite=overwrite)
    return bool(result.ok)


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


def cmd_bundle(args: argparse.Namespace) -> int:
    from pki.bundle import Profile, write_client_bundle

    # the password file first: a mistake there is found before the keys are derived
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, with_server_key=False)
    material = stack.material
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
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from pki.inspect import describe

    data = read_small_file(args.file, "FILE", limit=INSPECT_LIMIT)
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
    print(describe(data, today=today(), password=password, source=args.file))
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from slbmtls.rehearsal import rehearse

    if args.report_json:  # refused up front, not after the rehearsal ran
        check_target(Path(args.report_json), what="REPORT_JSON")
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, ephemeral_ok=True)
    if stack.ephemeral:
        print("notice: PKI_SEED is not set; rehearsing with a throwaway seed", file=sys.stderr)
    return rehearse(stack, report_json=args.report_json, keep=args.keep)


def cmd_guard(args: argparse.Namespace) -> int:
    from slbmtls.guard import guard

    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, with_server_key=False)
    print(guard(stack))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from slbmtls.verify import verify

    if args.report_json:  # refused up front, not after the checks ran
        check_target(Path(args.report_json), what="REPORT_JSON")
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir)
    return verify(stack, url=args.url, client=args.client, report_json=args.report_json,
                  expect_backends=args.expect_backends)


# -- entry -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
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
    d.add_argument("--overwrite", action="store_true", help="replace the --steps-json file if it exists")
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
    r.set_defaults(func=cmd_rehearse)
    g = sub.add_parser("guard", help="before pulumi up: refuse a CA the deployed stack retired")
    g.add_argument("--stack", default="dev")
    g.set_defaults(func=cmd_guard)
    v = sub.add_parser("verify", help="check a deployed listener the way the tutorial's step 7 does")
    v.add_argument("--stack", default="dev")
    v.add_argument("--url", help="https://host[:port]; default: the stack's `url` output (pulumi CLI)")
    v.add_argument("--client", help="the client whose bundle is accepted; default: the first one")
    v.add_argument("--report-json")
    v.add_argument("--expect-backends", type=int, help="how many distinct backends must answer")
    v.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        today()  # SLB_MTLS_TODAY is the environment's, not the stack's: report it as such, first
    except ClockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (UserError, ConfigError, PkiError, StackFileError, ClockError) as exc:
        prefix = "invalid stack configuration:\n" if isinstance(exc, ConfigError) else ""
        print(f"error: {prefix}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def exit_without_teardown(status: int) -> NoReturn:
    """Exit as the interpreter would, minus its teardown: freeing every object Pulumi, gRPC and
    pydantic made takes ~0.2 s after each plan, more with many clients, and nothing depends on it.
    What an exit must still do is done first: atexit handlers (tempfile cleanup, the spare helper)
    and flushing the output. Other threads still running (none after a command) get the usual exit."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # e.g. a closed pipe: the interpreter's own exit status for it
            status = status or 120
    os._exit(status)
