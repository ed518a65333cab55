"""Every use of Pulumi's private runtime API, in one place.

The offline plan runs the program in-process under the mock engine, which Pulumi supports only
through internals: when an upgrade moves one of these, this module fails to import (and
tests/test_engine.py names the missing attribute) instead of the plan misbehaving somewhere else.
Nothing outside this module imports `pulumi.runtime.*` internals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    registration and output to settle."""
    sync_await(_stack.run_pulumi_func(body))


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
    ("pulumi.runtime.stack", "run_pulumi_func"),
    ("pulumi.runtime.settings", "ROOT"),
    ("pulumi.runtime.config", "CONFIG"),
    ("pulumi.runtime.config", "get_config_env"),
)
