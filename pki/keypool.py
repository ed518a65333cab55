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

from pki.errors import PkiError
from pki.model import KeyType, PkiSpec
from pki.seed import Label, Seed, det_keygen_seed, server_key_label
from pki.sharedqueue import SharedQueue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# Light to import (a head start may run before cryptography is loaded, pki.headstart): what derives
# or loads a key imports cryptography and pki.detkeygen when first used.

MIN_PARALLEL: Final = 6  # below this, starting the helper (~0.2 s) costs more than it saves
_AHEAD: Final = 2  # keys handed to the helper before it asks: it never waits on this process's GIL

Request = tuple[bytes, int]  # (det-keygen seed, bits)
_CACHE: dict[Request, rsa.RSAPrivateKey] = {}
# Keys the issuing helper derived besides its clients (pki.headstart: its CA's, which it needs
# itself, and the server's), as PKCS#8 DER: loaded when first asked for, so offering costs nothing.
_OFFERED: dict[Request, bytes] = {}


def rsa_request(seed: Seed, label: Label, bits: int) -> tuple[bytes, int]:
    """What pki.keypool needs to derive (or prefetch) one RSA key."""
    if bits not in (2048, 3072, 4096):
        raise PkiError(f"RSA key size {bits} is not supported; allowed: 2048, 3072, 4096")
    return det_keygen_seed(seed, KeyType.rsa(bits, setting="RSA key size"), label), bits


def server_key_requests(seed: Seed, spec: PkiSpec) -> list[Request]:
    """The server certificate's RSA key, unless the stack brings its own certificate."""
    server = spec.server
    if server.operator is not None or not server.key_type.is_rsa:
        return []
    return [rsa_request(seed, server_key_label(server.generation), server.key_type.rsa_bits)]


def rsa_key(dk_seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    request = (dk_seed, bits)
    key = _CACHE.get(request)
    if key is None and (offered := _OFFERED.pop(request, None)) is not None:
        key = _load(offered, request)
        if key is not None:
            _CACHE[request] = key
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
    return _load(bytes.fromhex(line), request)


def load_key(der: bytes) -> PrivateKeyTypes | None:
    """A private key a helper sent (PKCS#8 DER), or None if it does not load. Not OpenSSL's RSA key
    check: it re-tests both primes (ms per key), which det-keygen did. (An EC key is checked on
    load: cryptography refuses one whose point is not its scalar's.)"""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    try:
        return load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def _load(der: bytes, request: Request) -> rsa.RSAPrivateKey | None:
    """A helper's key, if it is an RSA key of the size asked for."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = load_key(der)
    return key if isinstance(key, rsa.RSAPrivateKey) and key.key_size == request[1] else None


def offer(request: Request, der: bytes) -> None:
    """A key the issuing helper derived (PKCS#8 DER), used if this process asks for it (`rsa_key`)
    before it has the key from elsewhere; one that does not load as the size asked for is dropped."""
    if request not in _CACHE:
        _OFFERED[request] = der


_pool: SharedQueue[Request, rsa.RSAPrivateKey] | None = None


def start(requests: Iterable[Request], *, minimum: int = MIN_PARALLEL) -> None:
    """Begin deriving these keys in the helper process, without waiting (see `prefetch`), if at
    least `minimum` are not cached or offered yet (1: a prespawned helper is there anyway)."""
    global _pool
    todo = sorted({r for r in requests if r not in _CACHE and r not in _OFFERED}, key=lambda r: (-r[1], r[0]))
    if _pool is not None:
        _pool.add(todo)
        return
    if todo and len(todo) >= minimum:  # else derived lazily, in this process
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


def drop_offers() -> None:
    _OFFERED.clear()


def cancel() -> None:
    """Stop a `start()` nobody will finish (e.g. the plan failed before it needed the keys)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close(kill=True)
