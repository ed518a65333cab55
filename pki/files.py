"""Writing files that may hold secrets: 0600 from creation, whole or not at all, never through a
symbolic link and never over an existing file unless asked.

A file is written under a temporary name in its own directory (O_CREAT|O_EXCL|O_NOFOLLOW, so nothing
can be waiting there), synced, then given its name with link(2), which fails if the name exists in
any form (a dangling symlink included), or with rename(2) when overwriting was asked for, which
replaces a symlink rather than writing through it. A reader never sees a half-written file.

A set of files (a client bundle) goes into a directory that does not exist yet by building it
beside and renaming it into place: complete or absent. Into an existing directory, each file is
linked in and, if one fails, those already linked are removed again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from pki.errors import PkiError


class FileWriteError(PkiError):
    """A file could not be written (or read) as asked; the message names the setting and the path."""


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def _fsync_dir(directory: Path) -> None:
    """Make a rename or link durable; some file systems cannot open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` 0600 exclusively (no symlink followed) and write `data` durably."""
    fd = os.open(path, _FLAGS, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a umask can only narrow, but be explicit
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(directory: Path, name: str) -> Path:
    return directory / f".{name}.{secrets.token_hex(6)}.partial"


def _check_directory(directory: Path, what: str) -> None:
    try:
        info = directory.stat()
    except FileNotFoundError:
        raise FileWriteError(f"{what}: the folder {directory} does not exist; create it first") from None
    except OSError as exc:
        raise FileWriteError(f"{what}: cannot use the folder {directory} ({_reason(exc)})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FileWriteError(f"{what}: {directory} is not a folder")


def check_target(path: Path, *, overwrite: bool = False, what: str = "file") -> None:
    """What `write_private_file` would refuse, checked up front so a command fails before its work."""
    if path.name in ("", ".", ".."):
        raise FileWriteError(f"{what}={path}: names a folder; give a file name")
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(path.lstat().st_mode):
            raise FileWriteError(f"{what}={path}: is a folder; give a file name inside it")
    if not overwrite and os.path.lexists(path):
        raise FileWriteError(f"{what}={path}: already exists; refusing to overwrite it "
                             "(move it away or pick another name)")
    _check_directory(path.parent, what)


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False, what: str = "file") -> None:
    """Write `path` as described in the module docstring. `what` names the setting in messages."""
    check_target(path, overwrite=overwrite, what=what)
    temp = _temp_name(path.parent, path.name)
    try:
        _write_new(temp, data)
        if overwrite:
            os.replace(temp, path)  # replaces a symlink itself, never its target
        else:
            _link_no_replace(temp, path)
    except FileExistsError:
        raise FileWriteError(f"{what}={path}: already exists; refusing to overwrite it "
                             "(move it away or pick another name)") from None
    except IsADirectoryError:
        raise FileWriteError(f"{what}={path}: is a folder; give a file name inside it") from None
    except OSError as exc:
        raise FileWriteError(f"{what}={path}: cannot write it ({_reason(exc)})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(path.parent)


def _link_no_replace(source: Path, target: Path) -> None:
    """Give `source` the name `target` unless that name exists (in any form)."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a narrow race, but still 0600)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.rename(source, target)


def write_private_files(out_dir: Path, contents: Mapping[str, bytes], *, what: str = "OUT") -> list[Path]:
    """Write every file of `contents` (plain names) into `out_dir`, all of them or none."""
    for name in contents:
        if not name or name in (".", "..") or "/" in name or "\0" in name or name.startswith("."):
            raise FileWriteError(f"{what}: {name!r} is not a plain file name")
    try:
        info: os.stat_result | None = out_dir.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise FileWriteError(f"{what}={out_dir}: cannot use it ({_reason(exc)})") from None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise FileWriteError(f"{what}={out_dir}: is a symbolic link; give the real folder")
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise FileWriteError(f"{what}={out_dir}: exists and is not a folder; give a folder (new or existing)")
    if info is None:
        return _write_new_directory(out_dir, contents, what)
    clashes = [n for n in contents if os.path.lexists(out_dir / n)]
    if clashes:
        raise FileWriteError(f"{what}={out_dir}: refusing to overwrite {', '.join(clashes)}; "
                             "move them away or pick another folder")
    return _write_into_directory(out_dir, contents, what)


def _write_new_directory(out_dir: Path, contents: Mapping[str, bytes], what: str) -> list[Path]:
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise FileWriteError(f"{what}={out_dir}: {parent} exists and is not a folder") from None
    except OSError as exc:
        raise FileWriteError(f"{what}={out_dir}: cannot create the folder {parent} ({_reason(exc)})") from None
    _check_directory(parent, what)
    staging = _temp_name(parent, out_dir.name)
    try:
        staging.mkdir(mode=0o700)
        for name, data in contents.items():
            _write_new(staging / name, data)
        _fsync_dir(staging)
        if os.path.lexists(out_dir):
            raise FileExistsError(errno.EEXIST, "File exists", str(out_dir))
        os.rename(staging, out_dir)  # the whole bundle appears at once
    except FileExistsError:
        raise FileWriteError(f"{what}={out_dir}: appeared while the bundle was written; nothing written") from None
    except OSError as exc:
        raise FileWriteError(f"{what}={out_dir}: cannot write it ({_reason(exc)}); nothing written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_dir(parent)
    return [out_dir / n for n in contents]


def _write_into_directory(out_dir: Path, contents: Mapping[str, bytes], what: str) -> list[Path]:
    # staged inside OUT itself: the same file system (so link works), and no other folder touched
    staging = _temp_name(out_dir, "bundle")
    linked: list[Path] = []
    try:
        staging.mkdir(mode=0o700)
        for name, data in contents.items():
            _write_new(staging / name, data)
        for name in contents:
            _link_no_replace(staging / name, out_dir / name)
            linked.append(out_dir / name)
    except OSError as exc:
        for path in linked:  # only files this call created
            with contextlib.suppress(OSError):
                os.unlink(path)
        clash = isinstance(exc, FileExistsError)
        problem = "a file appeared while the bundle was written" if clash else _reason(exc)
        raise FileWriteError(f"{what}={out_dir}: cannot write the bundle ({problem}); nothing written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_dir(out_dir)
    return [out_dir / n for n in contents]


def read_small_file(path: str | Path, what: str, *, limit: int) -> bytes:
    """A regular file's bytes, at most `limit`: never blocks on a FIFO or device, never loads a
    huge file. `what` names the setting in messages."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileWriteError(f"{what}={path}: cannot read it ({_reason(exc)})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileWriteError(f"{what}={path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileWriteError(f"{what}={path}: cannot read it ({_reason(exc)})") from None
    if len(data) > limit:
        raise FileWriteError(f"{what}={path}: larger than {limit} bytes; not the file meant here")
    return data
