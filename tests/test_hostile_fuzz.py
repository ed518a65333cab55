"""Fuzzing the command entry points in process (`slbmtls.cli.main`) with generated hostile stack
files, seeds, files and arguments.

Every outcome must be success (0) or one short message with exit status 2: never a traceback
(an exception out of `main`), never a partial file, never a file outside OUT (or PLAN_JSON), never a
secret (the seed, a password, a private key) in the output. Bounded so the suite stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from stackrun import ROOT, TEST_SEED

from slbmtls import cli

DEV_TEXT = (ROOT / "Pulumi.dev.yaml").read_text()
DEV = yaml.safe_load(DEV_TEXT)
PROJECT_FILE = (ROOT / "Pulumi.yaml").read_text()
# SLB_MTLS_FUZZ=<n> runs n examples per test with fresh randomness, for a longer hunt by hand
_HUNT = int(os.environ.get("SLB_MTLS_FUZZ", "0"))
FUZZ = settings(max_examples=_HUNT or 60, deadline=None, derandomize=not _HUNT, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
SAFE_ENV = ("PKI_SEED", "SHOW_SECRETS", "SLB_MTLS_TODAY", "SERVER_PRIVATE_KEY_FILE", "SERVER_PRIVATE_KEY_PASSPHRASE_FILE")


# -- strategies --------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


CONFIG_PATHS = [p for p in _paths(DEV["config"]) if p]

leaf_values = st.one_of(
    st.text(max_size=70), st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "-1", "0", "*.example.com", "älice@exämple.com", "9999-12-31", "0001-01-01", "2026-02-30",
                     "x" * 300, "../../etc/passwd", "a/b", "-----BEGIN CERTIFICATE-----", "rr", "wlc", "rsa-3072",
                     "ec-p256", "dsa-1024", "\u202e", "\x00", "💥", "${HOME}", "$(id)", "null", "{}", "[]"]),
)
values = st.recursive(leaf_values, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


@st.composite
def structured_stack(draw: st.DrawFn) -> str:
    """The dev stack with a few settings replaced, removed or added, dumped as YAML."""
    document = copy.deepcopy(DEV)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(CONFIG_PATHS))
        parent: Any = document["config"]
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "remove", "add"]))
            if action == "remove" and isinstance(parent, dict | list):
                del parent[path[-1]]
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.sampled_from(["slb-mtls:", "", "x:"])) + draw(st.text(max_size=12))] = draw(values)
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the path
    return yaml.safe_dump(document, allow_unicode=True)


@st.composite
def textual_stack(draw: st.DrawFn) -> bytes:
    """The dev stack's text with a snippet of hostile YAML or bytes spliced in, or random bytes."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    snippet = draw(st.one_of(
        st.sampled_from(["&a [1, 2]", "*a", "!!binary aGk=", "!!set {a}", "!!python/name:os.system", "<<: {a: 1}",
                         "\t", "---\n", "- x\n", "? [a]\n: b\n", "2026-11-27", "2026-11-27 10:00:00", "~: 1\n",
                         "1: 2\n", "yes: no\n", "{a: 1, a: 2}", "'", '"', "%YAML 1.1\n", "\ufeff", "\x85", "[" * 50,
                         "1" * 5000, "0x" + "f" * 5000, "1e99999", ".nan", "-.inf", "0o17", "1_000", "1:20:30"]),
        st.text(max_size=40),
    ))
    position = draw(st.integers(0, len(DEV_TEXT)))
    text = DEV_TEXT[:position] + snippet + DEV_TEXT[position:]
    return text.encode("utf-8", "surrogatepass") if choice != 3 else text.encode("utf-16")


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` seven times in ten: hostile values, but enough sane ones to get past the first check."""
    return st.integers(0, 9).flatmap(lambda i: common if i < 7 else rare)


stack_texts = st.one_of(structured_stack().map(str.encode), textual_stack())
seeds = mostly(st.sampled_from([TEST_SEED, TEST_SEED.upper() + "\n"]), st.one_of(
    st.sampled_from(["00" * 32, "ff" * 32, "01" * 32, "c0ffee" * 10 + "c0de", "", " ", "g" * 64, TEST_SEED[:-2]]),
    st.text(alphabet="0123456789abcdefABCDEF \n", max_size=70),
    st.text(max_size=70).filter(lambda t: "\0" not in t),  # an environment variable cannot hold NUL
))
stack_names = mostly(st.just("x"), st.one_of(
    st.sampled_from(["", "-x", "..", "x;id", "x/../x", "X" * 120, "dev", "nope"]), st.text(max_size=20)))
file_bytes = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"", b"\n", b"  a password  \n", b"a password\n", b"\xff\xfe\xfd", b"long enough password", b"x" * 5000,
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"\x00" * 16,
]))
# what sits at a path before the command runs
path_kinds = st.sampled_from(["absent", "file", "dir", "symlink-to-file", "dangling-symlink", "symlink-to-dir"])


# -- the harness -------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root`: what it is and, for files, a digest of the content."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _place(path: Path, kind: str, sandbox: Path) -> None:
    if kind == "file":
        path.write_text("precious")
    elif kind == "dir":
        path.mkdir()
    elif kind == "symlink-to-file":
        (sandbox / "victim").write_text("precious")
        path.symlink_to(sandbox / "victim")
    elif kind == "dangling-symlink":
        path.symlink_to(sandbox / "nowhere")
    elif kind == "symlink-to-dir":
        (sandbox / "victim-dir").mkdir(exist_ok=True)
        path.symlink_to(sandbox / "victim-dir")


def run_main(argv: list[str], env: dict[str, str], secrets: list[str],
             codes: tuple[int, ...] = (0, 2)) -> tuple[int, str, str]:
    """`cli.main(argv)` with `env`; checks the rules every outcome obeys."""
    saved = {k: os.environ.get(k) for k in SAFE_ENV}
    out, err = io.StringIO(), io.StringIO()
    try:
        for key in SAFE_ENV:
            os.environ.pop(key, None)
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    stdout, stderr = out.getvalue(), err.getvalue()
    first = re.sub(r"/tmp/\S*", "<path>", stderr.split("\n", 2)[0 if "configuration:" not in stderr else 1])
    event(f"{argv[2]}: exit {code}" + (f" ({first[:50]})" if code else ""))
    assert code in codes, (code, stderr)
    assert "Traceback" not in stdout + stderr
    if code == 2:  # notices and warnings may come first, then the one message
        lines = stderr.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith(("error: ", "usage: "))), None)
        assert start is not None and all(line.startswith(("notice: ", "warning: ")) for line in lines[:start]), stderr
        assert len(stderr) < 6000 and stderr.count("\n") < 60, stderr  # a message, not a dump
    for secret in secrets:
        if len(secret.strip()) >= 12:  # shorter ones could occur in any output by chance
            assert secret.strip() not in stdout + stderr
            assert secret.strip().lower() not in (stdout + stderr).lower() or not _is_hex(secret)
    assert "PRIVATE KEY-----\n" not in stdout + stderr
    return code, stdout, stderr


def _is_hex(text: str) -> bool:
    return bool(text.strip()) and all(c in "0123456789abcdefABCDEF" for c in text.strip())


@contextlib.contextmanager
def sandbox(stack: bytes) -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "project"
        project.mkdir()
        (project / "Pulumi.yaml").write_text(PROJECT_FILE)
        (project / "Pulumi.x.yaml").write_bytes(stack)
        yield root, project


def _assert_only_new(before: dict[str, str], after: dict[str, str], allowed_prefix: str | None) -> None:
    for rel, what in before.items():
        assert after.get(rel) == what, f"{rel} changed or vanished"
    for rel in set(after) - set(before):
        assert allowed_prefix is not None and (rel == allowed_prefix or rel.startswith(allowed_prefix + "/")), (
            f"unexpected new entry {rel}")


# -- the fuzz tests ----------------------------------------------------------------------------


@FUZZ
@given(stack=stack_texts, seed=seeds, name=stack_names, json_kind=path_kinds, overwrite=st.booleans(),
       show=st.booleans(), today=st.sampled_from(["", "2026-12-01", "garbage", "9999-12-31"]))
def test_fuzz_plan(stack: bytes, seed: str, name: str, json_kind: str, overwrite: bool, show: bool,
                   today: str) -> None:
    with sandbox(stack) as (root, project):
        target = root / "plan.json"
        _place(target, json_kind, root)
        before = _snapshot(root)
        env = {"PKI_SEED": seed} | ({"SHOW_SECRETS": "1"} if show else {}) | ({"SLB_MTLS_TODAY": today} if today else {})
        argv = ["--project-dir", str(project), "plan", f"--stack={name or 'x'}", f"--json={target}"]
        code, _, _ = run_main(argv + (["--overwrite"] if overwrite else []), env, [seed])
        after = _snapshot(root)
        if code == 0:
            assert json_kind == "absent" or (overwrite and json_kind != "dir")  # a link is replaced, not followed
            assert target.is_file() and not target.is_symlink() and target.stat().st_mode & 0o777 == 0o600
            assert seed.strip().lower() not in target.read_text().lower() or len(seed.strip()) < 8
            for rel in ("victim", "victim-dir"):  # never written through a link
                assert after.get(rel) == before.get(rel)
            before.pop("plan.json", None)
            after.pop("plan.json", None)
        _assert_only_new(before, after, None)


TOKENS = ["alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer", "alicloud:slb/listener:Listener",
          "alicloud:slb/caCertificate:CaCertificate", "alicloud:slb/serverCertificate:ServerCertificate",
          "alicloud:slb/backendServer:BackendServer", "alicloud:ecs/instance:Instance", "x:y:z"]
# documents of the right shape with hostile contents, for what plan-diff does after the shape check
plan_documents = st.fixed_dictionaries({
    "resources": st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(TOKENS), "name": st.sampled_from(["mtls", "mtls-https-443", "a", "b"]),
         "inputs": st.dictionaries(st.sampled_from(["frontendPort", "loadBalancerId", "caCertificateId", "name",
                                                    "serverCertificate", "backendServers", "x"]), values, max_size=4)},
        optional={"id": st.one_of(st.none(), st.sampled_from(["lb-1", "ca-1", "", "lb-1:https:443"])),
                  "parent": st.one_of(st.none(), st.sampled_from(["mtls", "a", "nope"])),
                  "options": st.fixed_dictionaries({}, optional={
                      "dependsOn": st.lists(st.sampled_from(["a", "b", "mtls"]), max_size=3),
                      "protect": values, "deleteBeforeReplace": values})}), max_size=5),
    "outputs": st.dictionaries(st.sampled_from(["caFingerprint", "retiredCaFingerprints", "clients", "x"]), values,
                               max_size=3),
})


@FUZZ
@given(stack=stack_texts, seed=seeds,
       before_doc=st.one_of(values, plan_documents, st.just({"resources": [], "outputs": {}})),
       after_bytes=st.one_of(file_bytes, values.map(lambda v: yaml.safe_dump(v).encode()),
                             plan_documents.map(lambda d: json.dumps(d).encode())))
def test_fuzz_plan_diff(stack: bytes, seed: str, before_doc: Any, after_bytes: bytes) -> None:
    with sandbox(stack) as (root, project):
        (root / "before.json").write_text(json.dumps(before_doc))
        (root / "after.json").write_bytes(after_bytes)
        snapshot = _snapshot(root)
        # exit 1: the replay against the CLB emulator refused a step, as plan-diff documents
        code, _, stderr = run_main(["--project-dir", str(project), "diff", str(root / "before.json"),
                                    str(root / "after.json")], {"PKI_SEED": seed}, [seed], codes=(0, 1, 2))
        assert code != 1 or stderr.startswith("replayed against the CLB emulator"), stderr
        assert _snapshot(root) == snapshot


@pytest.mark.usefixtures("cheap_bundle_kdf")  # outcomes, files and secrets; not the profile's strength
@settings(FUZZ, max_examples=_HUNT or 40)
@given(stack=mostly(st.just(DEV_TEXT.encode()), stack_texts), seed=seeds, name=stack_names,
       client=mostly(st.sampled_from(["alice", "build-agent"]), st.one_of(
           st.sampled_from(["bob", "zed", "../alice", "", "-x", "alice/../alice"]), st.text(max_size=12))),
       out_kind=mostly(st.sampled_from(["absent", "dir"]), path_kinds), inner_kind=path_kinds,
       password=mostly(st.sampled_from([None, b"long enough password\n"]), file_bytes),
       legacy=mostly(st.just(True), st.just(False)))  # the modern profile's 600,000 KDF rounds are slow
def test_fuzz_bundle(stack: bytes, seed: str, name: str, client: str, out_kind: str, inner_kind: str,
                     password: bytes | None, legacy: bool) -> None:
    with sandbox(stack) as (root, project):
        out = root / "out"
        _place(out, out_kind, root)
        if out_kind == "dir":
            _place(out / f"{client or 'x'}.key" if "/" not in client else out / "x.key", inner_kind, root)
        argv = ["--project-dir", str(project), "bundle", f"--stack={name or 'x'}", f"--client={client}", f"--out={out}"]
        secrets = [seed]
        if password is not None:
            (root / "pw").write_bytes(password)
            argv.append(f"--password-file={root / 'pw'}")
            secrets.append(password.decode("utf-8", "replace"))
        before = _snapshot(root)
        code, stdout, _ = run_main(argv + (["--legacy"] if legacy else []), {"PKI_SEED": seed}, secrets)
        after = _snapshot(root)
        if code == 0:
            assert out.is_dir() and not out.is_symlink()
            names = sorted(p.name for p in out.iterdir())
            expected = sorted([f"{client}.p12", f"{client}.crt", f"{client}.key", "ca.crt", "crl.pem"]
                              + ([f"{client}.password"] if password is None else []))
            assert set(expected) <= set(names)  # complete
            for path in out.iterdir():
                if path.name in expected:
                    assert path.stat().st_mode & 0o777 == 0o600
                    assert seed.strip().lower().encode() not in path.read_bytes().lower()
            if password is None:
                generated = (out / f"{client}.password").read_text().strip()
                assert generated not in stdout
            _assert_only_new(before, after, "out")
        else:
            _assert_only_new(before, after, None)  # nothing partial, nothing elsewhere


@pytest.fixture(scope="module")
def samples() -> list[tuple[bytes, str | None]]:
    """Real files of the dev stack (certificates, CRL, PKCS#12, as PEM and DER) to mutate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from pki import Profile, pkcs12_bytes
    from slbmtls.offline import OfflineStack
    from slbmtls.stackfile import load_stack

    material = OfflineStack(load_stack(ROOT, "dev"), TEST_SEED, "test", {}).material
    alice = material.clients["alice"]
    p12 = pkcs12_bytes("alice", alice, material.ca.certificate, "long enough password", Profile.LEGACY)
    return [
        (material.ca.issued.certificate_pem.encode(), None),
        (material.ca.certificate.public_bytes(Encoding.DER), None),
        (alice.certificate_pem.encode(), None),
        (material.crl_pem.encode(), None),
        (p12, "long enough password"),
        (p12, None),
    ]


@settings(FUZZ, max_examples=_HUNT or 80)
@given(pick=st.integers(0, 5), operation=st.sampled_from(["as is", "truncate", "flip", "garbage", "pem-wrap", "append"]),
       where=st.integers(0, 4000), garbage=file_bytes, password=st.one_of(st.none(), st.just(b"long enough password\n"),
                                                                          file_bytes),
       kind=mostly(st.just("file"), path_kinds))
def test_fuzz_inspect(samples: list[tuple[bytes, str | None]], pick: int, operation: str, where: int,
                      garbage: bytes, password: bytes | None, kind: str) -> None:
    data, _ = samples[pick]
    at = where % max(len(data), 1)
    data = {
        "as is": data,
        "truncate": data[:at],
        "flip": data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:] if data else data,
        "garbage": garbage,
        "pem-wrap": b"-----BEGIN X509 CRL-----\n" + garbage + b"\n-----END X509 CRL-----\n",
        "append": data + garbage,
    }[operation]
    with sandbox(DEV_TEXT.encode()) as (root, project):
        target = root / "file"
        if kind == "file":
            target.write_bytes(data)
        else:
            _place(target, kind, root)
        argv = ["--project-dir", str(project), "inspect", str(target)]
        secrets = []
        if password is not None:
            (root / "pw").write_bytes(password)
            argv.append(f"--password-file={root / 'pw'}")
            secrets.append(password.decode("utf-8", "replace"))
        snapshot = _snapshot(root)
        run_main(argv, {"PKI_SEED": TEST_SEED}, secrets)
        assert _snapshot(root) == snapshot
