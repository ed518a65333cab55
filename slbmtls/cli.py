"""Operator commands: `python -m slbmtls plan|diff|bundle|inspect|rehearse|verify` (the Makefile
wraps them).

Every failure the user can fix is printed as one clear message and exit status 2, never a traceback.
Each command is a small function: the work lives in offline (stack, seed, plan), rehearsal and verify.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pki import PkiError, Profile, write_client_bundle
from pki.inspect import describe
from slbmtls.clock import ClockError, today
from slbmtls.config import ConfigError
from slbmtls.offline import PROJECT_DIR, OfflineStack, UserError
from slbmtls.stackfile import StackFileError

__all__ = ["PROJECT_DIR", "UserError", "main"]

_EPHEMERAL = ("notice: PKI_SEED is not set; using a throwaway seed, so certificates differ from the stack's "
              "and from run to run")


def _read_secret_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise UserError(f"{what}: cannot read {path}: {exc.strerror}") from None


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


# -- commands ----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, ephemeral_ok=True)
    if stack.ephemeral:
        print(_EPHEMERAL, file=sys.stderr)
    plan = stack.plan().plan
    print(render_plan(plan, stack.seed_source))
    if args.json:
        document = plan.to_json(show_secrets=os.environ.get("SHOW_SECRETS") == "1")
        Path(args.json).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        os.chmod(args.json, 0o600)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from slbmtls.plan import diff_documents

    documents = []
    for path in (args.before, args.after):
        try:
            documents.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a plan written by `make plan PLAN_JSON=...` ({exc})") from None
    print(diff_documents(documents[0], documents[1]).render())
    return 0 if _replay(documents[0], documents[1], args.steps_json) else 1


def _replay(before: dict[str, Any], after: dict[str, Any], steps_json: str | None) -> bool:
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
    return bool(result.ok)


def cmd_bundle(args: argparse.Namespace) -> int:
    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, with_server_key=False)
    material = stack.material
    if args.client in material.revoked:
        raise UserError(f"CLIENT={args.client}: revoked in stack {args.stack}; it gets no bundle")
    issued = material.clients.get(args.client)
    if issued is None:
        raise UserError(f"CLIENT={args.client}: not a client of stack {args.stack}; clients: "
                        f"{', '.join(material.clients) or '(none)'}")
    if issued.private_key is None:
        raise UserError(f"CLIENT={args.client}: signed from the client's CSR, so the client holds the key; "
                        f"hand over the certificate from the stack output clientCertificatePems instead")
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
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
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise UserError(f"{args.file}: {exc.strerror}") from None
    password = _read_secret_file(args.password_file, "PASSWORD_FILE") if args.password_file else None
    print(describe(data, today=today(), password=password, source=args.file))
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from slbmtls.rehearsal import rehearse

    stack = OfflineStack.load(args.stack, project_dir=args.project_dir, ephemeral_ok=True)
    if stack.ephemeral:
        print("notice: PKI_SEED is not set; rehearsing with a throwaway seed", file=sys.stderr)
    return rehearse(stack, report_json=args.report_json, keep=args.keep)


def cmd_verify(args: argparse.Namespace) -> int:
    from slbmtls.verify import verify

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
    p.add_argument("--json", help="also write the plan as JSON to this file")
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
    r.set_defaults(func=cmd_rehearse)
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
        return int(args.func(args))
    except (UserError, ConfigError, PkiError, StackFileError, ClockError) as exc:
        prefix = "invalid stack configuration:\n" if isinstance(exc, ConfigError) else ""
        print(f"error: {prefix}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
