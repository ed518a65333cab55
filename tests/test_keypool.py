"""pki.keypool: keys shared between this process and a helper process, from both ends of one queue.
Whatever the helper does (finishes, dies, answers garbage), every key comes out as det-keygen's."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import record_helpers, replace_helper

from pki import detkeygen, keypool

REQUESTS = [(hashlib.sha256(b"keypool test %d" % i).digest(), 2048) for i in range(keypool.MIN_PARALLEL)]


@pytest.fixture(scope="module")
def expected() -> dict[tuple[bytes, int], bytes]:
    return {r: detkeygen.rsa_key(*r).private_numbers().p.to_bytes(128, "big") for r in REQUESTS}


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, own_rsa_keys: None) -> Iterator[None]:
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    for r in REQUESTS:
        keypool._CACHE.pop(r, None)
    yield
    keypool.cancel()
    for r in REQUESTS:
        keypool._CACHE.pop(r, None)


def _counting_derivations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    here: list[bytes] = []
    real = detkeygen.rsa_key

    def counting(seed: bytes, bits: int) -> Any:
        here.append(seed)
        return real(seed, bits)

    monkeypatch.setattr(detkeygen, "rsa_key", counting)
    return here


def _check(expected: dict[tuple[bytes, int], bytes]) -> None:
    for r in REQUESTS:
        assert keypool.rsa_key(*r).private_numbers().p.to_bytes(128, "big") == expected[r]


def test_both_processes_derive_and_the_keys_are_det_keygens(monkeypatch: pytest.MonkeyPatch,
                                                            expected: dict[tuple[bytes, int], bytes]) -> None:
    here = _counting_derivations(monkeypatch)
    keypool.prefetch(REQUESTS)
    assert all(r in keypool._CACHE for r in REQUESTS)
    assert 0 < len(here) < len(REQUESTS), "one process derived every key"
    assert len(set(here)) == len(here), "a key was derived twice"
    _check(expected)


def test_a_head_start_is_finished_by_prefetch(monkeypatch: pytest.MonkeyPatch,
                                              expected: dict[tuple[bytes, int], bytes]) -> None:
    keypool.start(REQUESTS)
    keypool.start(REQUESTS[:2])  # asked again while running: nothing is derived twice
    here = _counting_derivations(monkeypatch)
    keypool.prefetch(REQUESTS)
    assert len(set(here)) == len(here)
    _check(expected)


def test_prefetch_derives_no_key_a_head_start_queued_and_the_caller_does_not_need(
        monkeypatch: pytest.MonkeyPatch, expected: dict[tuple[bytes, int], bytes]) -> None:
    """E.g. the server key of a stack that brings its own certificate: the head start reads the
    config without it, the program does not need that key."""
    queued = sorted(REQUESTS, key=lambda r: (-r[1], r[0]))  # keypool's order: the helper takes the front
    needed, not_needed = queued[:-2], queued[-2:]  # this process would start from the back
    keypool.start(REQUESTS)
    here = _counting_derivations(monkeypatch)
    keypool.prefetch(needed)
    assert all(r in keypool._CACHE for r in needed)
    assert not {seed for seed, _ in not_needed} & set(here)
    assert not any(r in keypool._CACHE for r in not_needed)  # and the helper was not handed them either
    for r in needed:
        assert keypool.rsa_key(*r).private_numbers().p.to_bytes(128, "big") == expected[r]


@pytest.mark.parametrize("script", [
    # exits after delivering one real key
    "import sys\nfrom pki import detkeygen\nfrom cryptography.hazmat.primitives import serialization as s\n"
    "assert sys.stdin.readline() == 'keys\\n'\n"
    "bits, seed = sys.stdin.readline().split()\n"
    "k = detkeygen.rsa_key(bytes.fromhex(seed), int(bits))\n"
    "print(k.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, s.NoEncryption()).hex(), flush=True)",
    # answers garbage
    "import sys\nsys.stdin.readline()\nsys.stdin.readline()\nprint('zz', flush=True)",
    # a key of the wrong size
    "import sys\nfrom cryptography.hazmat.primitives.asymmetric import rsa\n"
    "from cryptography.hazmat.primitives import serialization as s\nsys.stdin.readline()\nsys.stdin.readline()\n"
    "k = rsa.generate_private_key(65537, 1024)\n"
    "print(k.private_bytes(s.Encoding.DER, s.PrivateFormat.PKCS8, s.NoEncryption()).hex(), flush=True)",
    # dies at once
    "raise SystemExit(3)",
], ids=["exits-after-one", "garbage", "wrong-size", "dies"])
def test_a_failing_helper_costs_time_never_keys(monkeypatch: pytest.MonkeyPatch, script: str,
                                                expected: dict[tuple[bytes, int], bytes]) -> None:
    replace_helper(monkeypatch, script)
    keypool.prefetch(REQUESTS)
    _check(expected)


def test_cancel_stops_the_helper(monkeypatch: pytest.MonkeyPatch, expected: dict[tuple[bytes, int], bytes]) -> None:
    started = record_helpers(monkeypatch)
    keypool.start(REQUESTS)
    keypool.cancel()
    assert len(started) == 1
    assert started[0].process.poll() is not None, "the helper outlived cancel()"
    _check(expected)  # keys it never delivered are derived here when asked for
