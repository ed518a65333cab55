"""Child processes and the private temporary folder, tied to this process's life.

Whatever ends the rehearsal (return, Ctrl-C, SIGTERM, SIGKILL), HAProxy dies with it (the kernel's
parent-death signal) and the folder with client keys is removed (a small supervisor that waits for
our pipe to close, which the kernel does when we die). Children get a minimal environment: never
PKI_SEED or anything else of ours.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pki.files import write_private_file

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork: the child only calls it

_SUPERVISOR = """
import shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()  # returns when the parent's end closes: on exit, or when the kernel reaps it
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def child_env() -> dict[str, str]:
    """What a child may see of our environment: the search path and nothing else."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: one syscall, no Python imports
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child killed with us (SIGKILL on our death), in its own session so a terminal's Ctrl-C
    reaches only us and we stop it in order."""
    return subprocess.Popen(list(argv), env=child_env(), preexec_fn=_die_with(os.getpid()),
                            start_new_session=True, close_fds=True, **kwargs)


def stop(process: subprocess.Popen[bytes], grace: float = 3) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Workdir:
    """A 0700 temporary folder for certificates and keys, gone when we are, however we end."""

    def __init__(self, prefix: str = "slb-mtls-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._supervisor = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SUPERVISOR, str(self.path)], stdin=subprocess.PIPE,
            env=child_env(), start_new_session=True, close_fds=True)

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.path / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(path, data.encode() if isinstance(data, str) else data)
        return path

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._supervisor.stdin is not None:
            self._supervisor.stdin.close()
        try:
            self._supervisor.wait(5)
        except subprocess.TimeoutExpired:
            self._supervisor.kill()

    def __enter__(self) -> Workdir:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
