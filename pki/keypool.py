"""RSA keys by det-keygen, cached, and derived on two cores when a plan needs many.

A helper process (`python -m pki.worker` in "keys" mode, plain subprocess: no fork of a process
that may hold Pulumi's threads, no re-import of the program's __main__) receives det-keygen seeds
only, never the stack seed, and returns the keys. Work is shared from both ends of one queue
(pki.sharedqueue): the helper is fed from the front, two keys ahead, while this process takes
keys from the back, so neither core idles whatever the machine's load (a key costs 30-100 ms, and
their costs vary). `start()` lets a caller begin before it needs the keys (the offline tools start
while Pulumi is still importing).

Results are the same keys whichever process made them, so plans stay byte-identical.
SLB_MTLS_PKI_WORKERS=1 turns the helper off; if it fails for any reason this process derives what
it did not deliver.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from pki.sharedqueue import SharedQueue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

# Light to import (a head start may run before cryptography is loaded, pki.headstart): what derives
# or loads a key imports cryptography and pki.detkeygen when first used.

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
        from pki import detkeygen

        key = _CACHE[request] = detkeygen.rsa_key(dk_seed, bits)
    return key


def _encode(request: Request) -> str:
    seed, bits = request
    return f"{bits} {seed.hex()}"


def _decode(line: str, request: Request) -> rsa.RSAPrivateKey | None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key = load_der_private_key(bytes.fromhex(line), None, unsafe_skip_rsa_key_validation=True)
    return key if isinstance(key, rsa.RSAPrivateKey) and key.key_size == request[1] else None


_pool: SharedQueue[Request, rsa.RSAPrivateKey] | None = None


def start(requests: Iterable[Request]) -> None:
    """Begin deriving these keys in the helper process, without waiting (see `prefetch`)."""
    global _pool
    todo = sorted({r for r in requests if r not in _CACHE}, key=lambda r: (-r[1], r[0]))
    if _pool is not None:
        _pool.add(todo)
        return
    if len(todo) >= MIN_PARALLEL:  # else derived lazily, in this process
        _pool = SharedQueue.start(todo, results=_CACHE, encode=_encode, decode=_decode, ahead=_AHEAD,
                                  preamble=("keys", None))


def started() -> bool:
    """Whether a helper is deriving keys (`start` found enough to share)."""
    return _pool is not None


def prefetch(requests: Iterable[Request]) -> None:
    """Derive the RSA keys not cached yet, on both cores when worth it; return when all are cached."""
    global _pool
    requests = list(requests)
    start(requests)
    if _pool is not None:
        pool = _pool
        try:
            pool.retain(requests)  # not a key a head start queued that this caller does not need
            pool.finish(lambda request: rsa_key(*request))  # rsa_key() meanwhile waits for the helper's keys
        finally:
            _pool = None
            pool.close(kill=True)  # already closed, unless finishing raised


def cancel() -> None:
    """Stop a `start()` nobody will finish (e.g. the plan failed before it needed the keys)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close(kill=True)
