"""Independent jobs shared between this process and one helper process, from both ends of a queue.

The helper is fed from the front, a few jobs ahead, while this process takes jobs from the back, so
neither core idles whatever the machine's load or however the jobs' costs vary. Results are the
same whichever process made them (the helper runs this package's own code), so plans stay
byte-identical. A helper that fails in any way (dies, answers garbage, stops early) only costs
time: whatever it held goes back to the queue, and this process does it.

The helper speaks lines: a first line that tells it its job, then one request line per job; it may
answer one line first (e.g. what it will work with), then one result line per job, in order.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from queue import SimpleQueue
from typing import IO, Final, Generic, TypeVar

R = TypeVar("R", bound=Hashable)  # a request: what one job is asked to do
T = TypeVar("T")  # its result

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def helper_workers() -> int:
    """How many processes may work (SLB_MTLS_PKI_WORKERS=1 turns helpers off)."""
    configured = os.environ.get("SLB_MTLS_PKI_WORKERS", "")
    if configured.isdigit():
        return max(1, int(configured))
    return min(2, os.cpu_count() or 1)


HELPER: Final = "pki.worker"
_spare: subprocess.Popen[bytes] | None = None


def prespawn() -> None:
    """Start a helper now, ahead of need: it loads its modules (~0.3 s) while the caller loads its
    own. The first queue started takes it; `release_spare()` (or the caller's exit) ends it otherwise."""
    global _spare
    if _spare is None and helper_workers() >= 2:
        _spare = _start("--preload")
        atexit.register(release_spare)


def has_spare() -> bool:
    """Whether a prespawned helper is waiting for work."""
    return _spare is not None and _spare.poll() is None


def release_spare() -> None:
    """End a prespawned helper nobody took."""
    global _spare
    helper, _spare = _spare, None
    if helper is not None:
        helper.kill()
        helper.wait()


def _spawn() -> subprocess.Popen[bytes] | None:
    """A helper: the prespawned one if it is still there, else a new one."""
    global _spare
    helper, _spare = _spare, None
    if helper is not None and helper.poll() is None:
        return helper
    if helper is not None:
        helper.wait()
    return _start()


def _start(*options: str) -> subprocess.Popen[bytes] | None:
    """`python -m pki.worker` with pipes and only what it needs to start: never the caller's
    environment, which may hold PKI_SEED (what a helper needs arrives on its stdin)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PACKAGE_ROOT)}
    try:
        return subprocess.Popen([sys.executable, "-m", HELPER, *options], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None


class SharedQueue(Generic[R, T]):
    """One helper process and the queue it shares with this process.

    Three threads touch the pipes, and none ever writes while it should be reading: the caller's
    (taking jobs, waiting), a reader (the helper's answers) and a writer (requests, from an
    outbox). So a helper blocked writing answers is always drained, and a full request pipe never
    holds the lock or the reader up: neither side can wait on the other forever."""

    def __init__(self, helper: subprocess.Popen[bytes], todo: Iterable[R], *, results: dict[R, T],
                 encode: Callable[[R], str], decode: Callable[[str, R], T | None], ahead: int = 2,
                 batch: int = 1, preamble: tuple[str, Callable[[str], bool] | None] = ("", None)) -> None:
        """`decode` turns a result line into a result, or None for one that is not acceptable;
        `preamble` is the line that tells the helper its job, and the check of its first answer
        (None: it answers requests only); requests go out `batch` at a time (a helper that answers
        in batches too keeps this process's reader thread from waking for every answer)."""
        assert helper.stdin is not None
        assert helper.stdout is not None
        self._helper = helper
        self._results, self._encode, self._decode = results, encode, decode
        self._ahead, self._batch = ahead, min(batch, ahead)
        self._queue: deque[R] = deque(todo)  # nobody has started these
        self._in_helper: deque[R] = deque()  # handed over, in order, not back yet
        self._done = threading.Condition()
        self._dead = False
        self._closed = False
        self._outbox: SimpleQueue[str | None] = SimpleQueue()  # None: no more requests
        self._input_ended = False
        self._writer = threading.Thread(target=self._write, args=(helper.stdin,), daemon=True)
        self._reader = threading.Thread(target=self._read, args=(helper.stdout, preamble[1]), daemon=True)
        with self._done:
            self._outbox.put(preamble[0])
            self._top_up()
        self._writer.start()
        self._reader.start()

    @classmethod
    def start(cls, todo: Iterable[R], *, results: dict[R, T], encode: Callable[[R], str],
              decode: Callable[[str, R], T | None], ahead: int = 2, batch: int = 1,
              preamble: tuple[str, Callable[[str], bool] | None] = ("", None)) -> SharedQueue[R, T] | None:
        """A queue with its helper (the prespawned one, if any), or None when no helper may or can
        start: the caller then does every job itself."""
        if helper_workers() < 2 or (helper := _spawn()) is None:
            return None
        try:
            return cls(helper, todo, results=results, encode=encode, decode=decode, ahead=ahead, batch=batch,
                       preamble=preamble)
        except BaseException:  # it would wait for input until this process exits
            helper.kill()
            helper.wait()
            raise

    def add(self, requests: Iterable[R]) -> None:
        with self._done:
            known = {*self._queue, *self._in_helper}
            self._queue.extend(r for r in requests if r not in known and r not in self._results)
            self._top_up()

    def retain(self, keep: Iterable[R]) -> None:
        """Forget the queued jobs not in `keep` (a head start may have queued more than the caller
        turned out to need); what the helper already holds it finishes."""
        wanted = set(keep)
        with self._done:
            self._queue = deque(r for r in self._queue if r in wanted)
            self._top_up()

    def _write(self, requests: IO[bytes]) -> None:
        try:
            while (lines := self._outbox.get()) is not None:
                requests.write(f"{lines}\n".encode())
                requests.flush()
        except (OSError, ValueError):  # the helper is gone
            with self._done:
                self._fail()
        finally:
            with contextlib.suppress(OSError, ValueError):
                requests.close()  # its input ends: the helper exits once it has answered

    def _end_input(self) -> None:  # with self._done held
        if not self._input_ended:
            self._input_ended = True
            self._outbox.put(None)

    def _top_up(self) -> None:  # with self._done held: keep the helper up to `ahead` jobs ahead
        # In batches, one write each: every write lets this process's other thread take the GIL
        # back, and the reader thread then waits its turn (~5 ms) before it handles the next answer.
        if not self._dead and len(self._in_helper) <= self._ahead - self._batch:
            lines = []
            while self._queue and len(self._in_helper) < self._ahead:
                request = self._queue.popleft()
                self._in_helper.append(request)
                lines.append(self._encode(request))
            if lines:
                self._outbox.put("\n".join(lines))
        if not self._dead and not self._queue and not self._in_helper:
            self._end_input()  # nothing left: the helper exits

    def _fail(self) -> None:  # with self._done held: what the helper held goes back to the queue
        self._dead = True
        self._end_input()
        self._queue.extendleft(reversed(self._in_helper))
        self._in_helper.clear()
        self._done.notify_all()

    def _read(self, answers: IO[bytes], check_preamble: Callable[[str], bool] | None) -> None:
        try:
            lines = (line.decode(errors="replace").strip() for line in answers)
            if check_preamble is not None and not check_preamble(next(lines, "")):
                return
            for line in lines:
                with self._done:
                    if not self._in_helper:
                        return
                    request = self._in_helper[0]
                result = self._decode(line, request)  # outside the lock: it may take a while
                with self._done:
                    if result is None or self._dead:
                        return
                    self._results[request] = result
                    self._in_helper.popleft()
                    self._top_up()
                    self._done.notify_all()
        except Exception:  # whatever a helper sends, it only costs time
            return
        finally:
            with self._done:
                self._fail()  # its output ended: whatever it still held is done here

    def take(self) -> R | None:
        """The next job for this process: from the back of the queue."""
        with self._done:
            return self._queue.pop() if self._queue else None

    def wait_for(self, request: R) -> T | None:
        """The result if the helper is working on it; None if it is not (or fails), and then the
        helper will not be handed it: the caller does it."""
        with self._done:
            while request in self._in_helper and not self._dead:
                self._done.wait()
            if request in self._queue:
                self._queue.remove(request)
            return self._results.get(request)

    def finish(self, do_here: Callable[[R], object]) -> None:
        """Do jobs from the back until the queue is empty, then wait for the helper's last ones."""
        while (request := self.take()) is not None:
            do_here(request)
        with self._done:
            while self._in_helper and not self._dead:
                self._done.wait()
        self.close()

    def close(self, *, kill: bool = False) -> None:
        """End the helper (at once with `kill`) and wait for it and both threads; again is a no-op."""
        if self._closed:
            return
        with self._done:
            busy = bool(self._in_helper) and not self._dead
        if kill or busy:  # a helper still working would block on answers nobody reads any more
            self._helper.kill()  # first: nothing below then waits on it
        with self._done:
            self._queue.clear()
            self._dead = True
            self._end_input()
            self._in_helper.clear()
        self._helper.wait()
        self._writer.join()
        self._reader.join()
        self._closed = True
