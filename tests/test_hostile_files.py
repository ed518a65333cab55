"""Files the tools write and read: 0600 from creation, whole or absent, never through a symlink or
over an existing file; every bad path or file is one message and exit status 2."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from stackrun import ROOT, TEST_SEED, project_with

from pki.files import FileWriteError, write_private_file, write_private_files
from slbmtls import cli

# about paths, links and modes, not the PKCS#12 profile (see conftest.cheap_bundle_kdf)
pytestmark = pytest.mark.usefixtures("cheap_bundle_kdf")

BUNDLE = ["alice.crt", "alice.key", "alice.p12", "alice.password", "ca.crt", "crl.pem"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PKI_SEED", TEST_SEED)
    monkeypatch.delenv("SHOW_SECRETS", raising=False)
    monkeypatch.delenv("SLB_MTLS_TODAY", raising=False)
    return project_with(tmp_path, {"dev": (ROOT / "Pulumi.dev.yaml").read_text()})


def run(project: Path, *args: str) -> int:
    return cli.main(["--project-dir", str(project), *args])


def error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") <= 3, err
    return err


# -- the writer ----------------------------------------------------------------------------------


def test_a_file_is_0600_from_creation_and_never_replaces_or_follows(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        write_private_file(tmp_path / "a", b"one")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600
    with pytest.raises(FileWriteError, match="already exists; refusing to overwrite"):
        write_private_file(tmp_path / "a", b"two")
    assert (tmp_path / "a").read_bytes() == b"one"
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        with pytest.raises(FileWriteError, match="already exists"):
            write_private_file(tmp_path / name, b"x")
    assert target.read_text() == "precious" and not (tmp_path / "nowhere").exists()
    write_private_file(tmp_path / "link", b"new", overwrite=True)  # replaces the link itself
    assert target.read_text() == "precious" and not (tmp_path / "link").is_symlink()
    assert stat.S_IMODE((tmp_path / "link").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "dangling", "link", "target"]  # no temp left


def test_a_bundle_is_complete_or_absent(tmp_path: Path) -> None:
    contents = {"x.crt": b"1", "x.key": b"2"}
    written = write_private_files(tmp_path / "new" / "deep", contents)
    assert [p.name for p in written] == ["x.crt", "x.key"]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["deep"]  # no staging folder left
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x.key").symlink_to(tmp_path / "nowhere")  # a dangling symlink where a file goes
    with pytest.raises(FileWriteError, match=r"refusing to overwrite x\.key"):
        write_private_files(existing, contents)
    assert sorted(p.name for p in existing.iterdir()) == ["x.key"]
    with pytest.raises(FileWriteError, match="not a plain file name"):
        write_private_files(tmp_path / "z", {"../escape": b"1"})
    assert not (tmp_path / "z").exists() and not (tmp_path / "escape").exists()


# -- plan --json -----------------------------------------------------------------------------------


def test_plan_json_is_private_and_never_follows_a_symlink(project: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOW_SECRETS", "1")
    target = tmp_path / "victim"
    target.write_text("keep me")
    (tmp_path / "plan.json").symlink_to(target)
    assert run(project, "plan", "--json", str(tmp_path / "plan.json")) == 2
    assert "PLAN_JSON=" in error(capsys) and target.read_text() == "keep me"
    assert run(project, "plan", "--json", str(tmp_path / "fresh.json")) == 0
    assert stat.S_IMODE((tmp_path / "fresh.json").stat().st_mode) == 0o600
    assert json.loads((tmp_path / "fresh.json").read_text())["stack"] == "dev"
    assert TEST_SEED not in (tmp_path / "fresh.json").read_text()
    assert run(project, "plan", "--json", str(tmp_path / "fresh.json"), "--overwrite") == 0


@pytest.mark.parametrize(("where", "message"), [
    ("missing/plan.json", "does not exist; create it first"),
    (".", "is a folder"),
    ("", "is a folder"),
])
def test_plan_json_in_a_missing_folder_or_naming_a_folder(project: Path, tmp_path: Path, where: str, message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, "plan", "--json", str(tmp_path / where) + ("/" if not where else "")) == 2
    assert message in error(capsys)


# -- bundle ----------------------------------------------------------------------------------------


def test_bundle_out_a_regular_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("not a folder")
    assert run(project, "bundle", "--client", "alice", "--out", str(tmp_path / "out")) == 2
    err = error(capsys)
    assert "OUT=" in err and "exists and is not a folder" in err
    assert (tmp_path / "out").read_text() == "not a folder"


def test_bundle_with_a_dangling_symlink_where_a_file_goes(project: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "alice.key").symlink_to(tmp_path / "stolen")
    assert run(project, "bundle", "--client", "alice", "--out", str(out)) == 2
    assert "refusing to overwrite alice.key" in error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["alice.key"] and not (tmp_path / "stolen").exists()


def test_bundle_out_a_symlink_is_refused(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    assert run(project, "bundle", "--client", "alice", "--out", str(tmp_path / "out")) == 2
    assert "symbolic link" in error(capsys)
    assert list((tmp_path / "real").iterdir()) == []


def test_bundle_into_a_new_folder_appears_whole(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "alice"
    assert run(project, "bundle", "--client", "alice", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == BUNDLE
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    assert sorted(p.name for p in out.parent.iterdir()) == ["alice"]


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe secret \x80\n", "not UTF-8 text"),
    (b"  padded password\n", "starts or ends with white space"),
    (b"padded password \n", "starts or ends with white space"),
    (b"\tpadded password", "starts or ends with white space"),
    (b"line one long\nline two long\n", "more than one line"),
    (b"\n", "empty"),
    (b"", "empty"),
    (b"short\n", "needs at least 20 characters"),
    (b"x" * 5000, "larger than 4096 bytes"),
])
def test_bad_password_files_are_messages(project: Path, tmp_path: Path, content: bytes, message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(content)
    out = tmp_path / "out"
    assert run(project, "bundle", "--client", "alice", "--out", str(out), "--password-file", str(secret)) == 2
    err = error(capsys)
    assert message in err
    assert "padded password" not in err and "line one" not in err
    assert not out.exists()


def test_password_file_kept_exactly_but_one_final_newline(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes("pässwörd with inner  spaces\n".encode())
    out = tmp_path / "out"
    assert run(project, "bundle", "--client", "alice", "--out", str(out), "--password-file", str(secret)) == 0
    from cryptography.hazmat.primitives.serialization import pkcs12
    pkcs12.load_key_and_certificates((out / "alice.p12").read_bytes(), "pässwörd with inner  spaces".encode())
    # a CR LF ending is refused: openssl -passin file: would keep the CR and never open the bundle
    secret.write_bytes(b"a-long-enough-password-here\r\n")
    crlf_out = tmp_path / "crlf"
    assert run(project, "bundle", "--client", "alice", "--out", str(crlf_out), "--password-file", str(secret)) == 2
    assert not crlf_out.exists()


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo"])
def test_password_file_that_is_not_a_file(project: Path, tmp_path: Path, kind: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pw"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
    assert run(project, "bundle", "--client", "alice", "--out", str(tmp_path / "o"), "--password-file", str(path)) == 2
    assert "PASSWORD_FILE=" in error(capsys)


@pytest.mark.parametrize("existing", [False, True])
def test_sigterm_while_a_bundle_is_written_leaves_nothing(project: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, existing: bool) -> None:
    import signal

    from pki import files

    real = files._write_new
    calls = []

    def write_then_terminate(path: Path, data: bytes) -> None:
        real(path, data)
        calls.append(path)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(files, "_write_new", write_then_terminate)
    out = tmp_path / "out"
    if existing:
        out.mkdir()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info:
        run(project, "bundle", "--client", "alice", "--out", str(out), "--legacy")
    assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "project" not in p.parts)
    assert left == (["out"] if existing else [])
