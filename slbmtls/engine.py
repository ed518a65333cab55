"""Every use of Pulumi's private runtime API, in one place.

The offline plan runs the program in-process under the mock engine, which Pulumi supports only
through internals: when an upgrade moves one of these, this module fails to import (and
tests/test_engine.py names the missing attribute) instead of the plan misbehaving somewhere else.
Nothing outside this module imports `pulumi.runtime.*` internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from pulumi.runtime import config as _config
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime import stack as _stack
from pulumi.runtime import sync_await as _sync

T = TypeVar("T")

# The wire form of a secret value: {SECRET_SIG_KEY: SECRET_SIG, "value": ...}.
SECRET_SIG_KEY: Final[str] = _rpc._special_sig_key
SECRET_SIG: Final[str] = _rpc._special_secret_sig
# What the engine hands over for a value not known until `up` (e.g. an id during preview).
UNKNOWN: Final[str] = _rpc.UNKNOWN

MockMonitor = _mocks.MockMonitor


def sync_await(awaitable: Awaitable[T]) -> T:
    """Run a coroutine to completion on the engine's own event loop."""
    return _sync._sync_await(awaitable)


def run_program(body: Callable[[], Any]) -> None:
    """Run `body` as the engine runs a program: inside a root stack resource, waiting for every
    registration and output to settle.

    The mock monitor answers registrations on the loop's executor threads and gives each thread an
    event loop of its own that nobody closed: garbage-collected at exit, after its self-pipe, such
    a loop printed "Exception ignored in BaseEventLoop.__del__ ... Invalid file descriptor" now and
    then. So the engine's loop gets an executor of ours (the loops its threads make are recorded),
    and after a run that executor's threads end and their loops are closed; a fresh executor (no
    thread until used) takes its place. The engine's own loop, to which Pulumi binds futures
    before the run, is closed by `close_event_loop`."""
    loop: asyncio.AbstractEventLoop = _sync._ensure_event_loop()  # type: ignore[no-untyped-call]
    executor = _executors.get(loop) or _new_executor(loop)
    try:
        sync_await(_stack.run_pulumi_func(body))
    finally:
        _new_executor(loop)
        _retire(executor)


_executors: dict[asyncio.AbstractEventLoop, ThreadPoolExecutor] = {}  # each engine loop's executor
_thread_loops: list[asyncio.AbstractEventLoop] = []  # made by our executors' threads, not closed yet


def _give_thread_a_loop() -> None:
    thread_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(thread_loop)
    _thread_loops.append(thread_loop)


def _new_executor(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    executor = _executors[loop] = ThreadPoolExecutor(thread_name_prefix="slb-mtls-engine",
                                                     initializer=_give_thread_a_loop)
    loop.set_default_executor(executor)
    return executor


def _retire(executor: ThreadPoolExecutor) -> None:
    """End the executor's threads, then close the loops they made (a loop no thread runs)."""
    executor.shutdown(wait=True)
    while _thread_loops:
        thread_loop = _thread_loops.pop()
        if not thread_loop.is_running():
            thread_loop.close()


def close_event_loop() -> None:
    """Close the engine's event loop, for a process done with the engine (`python -m slbmtls`,
    before it exits; a closed loop cannot run the engine again)."""
    for loop, executor in list(_executors.items()):
        del _executors[loop]
        _retire(executor)
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def reset_root_stack() -> None:
    """Forget the previous run's root stack, so the next program run makes its own."""
    _settings.ROOT.set(None)


def configured_keys() -> set[str]:
    """Every config key the engine gave the program (set in config or through the environment)."""
    return set(_config.CONFIG.get()) | set(_config.get_config_env())


# Named so tests/test_engine.py can check each one is still where this module takes it from.
PRIVATE_NAMES: Final = (
    ("pulumi.runtime.rpc", "_special_sig_key"),
    ("pulumi.runtime.rpc", "_special_secret_sig"),
    ("pulumi.runtime.rpc", "UNKNOWN"),
    ("pulumi.runtime.mocks", "MockMonitor"),
    ("pulumi.runtime.sync_await", "_sync_await"),
    ("pulumi.runtime.sync_await", "_ensure_event_loop"),
    ("pulumi.runtime.stack", "run_pulumi_func"),
    ("pulumi.runtime.settings", "ROOT"),
    ("pulumi.runtime.config", "CONFIG"),
    ("pulumi.runtime.config", "get_config_env"),
)
