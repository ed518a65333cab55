"""RSA keys by det-keygen, cached, and derived on two cores when a plan needs many.

A helper process (`python -m pki.keyworker`, plain subprocess: no fork of a process that may hold
Pulumi's threads, no re-import of the program's __main__) receives det-keygen seeds only, never the
stack seed, and returns the keys. Work is shared from both ends of one queue: the helper is fed
from the front, one key ahead, while this process takes keys from the back, so neither core idles
whatever the machine's load (a key costs 30-100 ms, and their costs vary). `start()` lets a caller
begin before it needs the keys (the offline tools start while Pulumi is still importing).

Results are the same keys whichever process made them, so plans stay byte-identical.
SLB_MTLS_PKI_WORKERS=1 turns the helper off; if it fails for any reason this process derives what
it did not deliver.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Final

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from pki import detkeygen

MIN_PARALLEL: Final = 6  # below this, starting the helper (~0.2 s) costs more than it saves
_AHEAD: Final = 2  # keys handed to the helper before it asks: it never waits on this process's GIL

Request = tuple[bytes, int]  # (det-keygen seed, bits)
_CACHE: dict[Request, rsa.RSAPrivateKey] = {}


def rsa_key(dk_seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    request = (dk_seed, bits)
    key = _CACHE.get(request)
    if key is None and _pool is not None:
        key = _pool.wait_for(request)
    if key is None:
        key = _CACHE[request] = detkeygen.rsa_key(dk_seed, bits)
    return key


def _workers() -> int:
    configured = os.environ.get("SLB_MTLS_PKI_WORKERS", "")
    if configured.isdigit():
        return max(1, int(configured))
    return min(2, os.cpu_count() or 1)


class _Pool:
    """One helper process and the queue it shares with this process."""

    def __init__(self, helper: subprocess.Popen[bytes], todo: Iterable[Request]) -> None:
        assert helper.stdin is not None
        assert helper.stdout is not None
        self._helper, self._to_helper = helper, helper.stdin
        self._queue: deque[Request] = deque(todo)  # nobody has started these
        self._in_helper: deque[Request] = deque()  # handed over, in order, not back yet
        self._done = threading.Condition()
        self._dead = False
        with self._done:
            self._top_up()
        self._reader = threading.Thread(target=self._read, args=(helper.stdout,), daemon=True)
        self._reader.start()

    def add(self, requests: Iterable[Request]) -> None:
        with self._done:
            known = {*self._queue, *self._in_helper}
            self._queue.extend(r for r in requests if r not in known and r not in _CACHE)
            self._top_up()

    def _top_up(self) -> None:  # with self._done held: keep the helper _AHEAD keys ahead
        try:
            while not self._dead and self._queue and len(self._in_helper) < _AHEAD:
                seed, bits = request = self._queue.popleft()
                self._in_helper.append(request)
                self._to_helper.write(f"{bits} {seed.hex()}\n".encode())
                self._to_helper.flush()
            if not self._dead and not self._queue and not self._in_helper:
                self._to_helper.close()  # nothing left: the helper exits
        except (OSError, ValueError):
            self._fail()

    def _fail(self) -> None:  # with self._done held: what the helper held goes back to the queue
        self._dead = True
        self._queue.extendleft(reversed(self._in_helper))
        self._in_helper.clear()
        self._done.notify_all()

    def _read(self, results: IO[bytes]) -> None:
        for line in results:
            try:
                key = load_der_private_key(bytes.fromhex(line.decode()), None, unsafe_skip_rsa_key_validation=True)
            except ValueError:
                break
            with self._done:
                if not self._in_helper:
                    break
                request = self._in_helper[0]
                if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != request[1]:
                    break
                _CACHE[request] = key
                self._in_helper.popleft()
                self._top_up()
                self._done.notify_all()
        with self._done:
            self._fail()  # its output ended: whatever it still held is derived here

    def take(self) -> Request | None:
        """The next key for this process to derive: from the back of the queue."""
        with self._done:
            return self._queue.pop() if self._queue else None

    def wait_for(self, request: Request) -> rsa.RSAPrivateKey | None:
        """The key if the helper is deriving it; None if it is not (or fails), and then the
        helper will not be handed it: the caller derives it."""
        with self._done:
            while request in self._in_helper and not self._dead:
                self._done.wait()
            if request in self._queue:
                self._queue.remove(request)
            return _CACHE.get(request)

    def finish(self) -> None:
        """Derive from the back until the queue is empty, then wait for the helper's last keys."""
        while (request := self.take()) is not None:
            rsa_key(*request)
        with self._done:
            while self._in_helper and not self._dead:
                self._done.wait()
        self.close()

    def close(self, *, kill: bool = False) -> None:
        with self._done:
            self._queue.clear()
            self._dead = True
            self._in_helper.clear()
            with contextlib.suppress(OSError):
                self._to_helper.close()
        if kill:
            self._helper.kill()
        self._helper.wait()
        self._reader.join()


_pool: _Pool | None = None


def start(requests: Iterable[Request]) -> None:
    """Begin deriving these keys in the helper process, without waiting (see `prefetch`)."""
    global _pool
    todo = sorted({r for r in requests if r not in _CACHE}, key=lambda r: (-r[1], r[0]))
    if _pool is not None:
        _pool.add(todo)
        return
    if len(todo) < MIN_PARALLEL or _workers() < 2:
        return  # derived lazily, in this process
    try:
        # Only what it needs to start: never the caller's environment, which may hold PKI_SEED.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        helper = subprocess.Popen([sys.executable, "-m", "pki.keyworker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return
    _pool = _Pool(helper, todo)


def prefetch(requests: Iterable[Request]) -> None:
    """Derive the RSA keys not cached yet, on both cores when worth it; return when all are cached."""
    global _pool
    start(requests)
    if _pool is not None:
        try:
            _pool.finish()  # rsa_key() meanwhile waits for keys the helper is deriving
        finally:
            _pool = None


def cancel() -> None:
    """Stop a `start()` nobody will finish (e.g. the plan failed before it needed the keys)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close(kill=True)
