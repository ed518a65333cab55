"""C2SP det-keygen (https://c2sp.org/det-keygen): RSA and ECDSA P-256 keys from a seed.

A published, versioned procedure, so anyone can re-derive a key from its seed with another
implementation (e.g. filippo.io/keygen) and compare. HMAC_DRBG-SHA256 per SP 800-90A, with the
spec's personalization strings, candidate masks and retry rules; only the primality test is ours to
choose (the spec asks for a negligible error rate): GMP's BPSW, after trial division and one base-2
test (OpenSSL's, where it loads: pki.libcrypto) that reject the composites sooner. The RSA candidate
stream and its first trial-division step also run in C where `make` built it (pki.candidates),
once a check shows, per candidate length, that it yields the Python stream's numbers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from collections.abc import Callable, Generator, Iterator
from typing import Final

import gmpy2
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki import candidates, libcrypto
from pki.errors import PkiError

_E: Final = 65537
_P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _odd_primes(low: int, high: int) -> list[int]:
    return [p for p in range(low | 1, high, 2) if gmpy2.is_prime(p)]


def _products(primes: list[int], bits: int) -> tuple[gmpy2.mpz, ...]:
    """The primes in order, multiplied into groups below 2^bits."""
    groups, product = [], 1
    for p in primes:
        if product * p >> bits:
            groups.append(gmpy2.mpz(product))
            product = 1
        product *= p
    return (*groups, gmpy2.mpz(product))


# Trial division before any Miller-Rabin round (~0.4 ms at 1024 bits, where the time goes), in two
# steps. The odd primes below 800 in 128-bit products, smallest first: a remainder and a gcd of
# 128-bit numbers each (~0.5 us), and the first product alone rejects ~70% of candidates. Then the
# primes up to 2^16 in one product, for the ~17% left: its remainder modulo the candidate and one
# 1024-bit gcd (~45 us) reject two fifths of them. Measured against one gcd with the product of
# the primes below 1620 for every candidate (~10 us), then the same second step: 6% less per key.
_SMALL_BOUND: Final = 800
_SMALL_PRIME_PRODUCTS: Final = _products(_odd_primes(3, _SMALL_BOUND), 128)
_LARGE_PRIME_PRODUCT: Final = gmpy2.primorial(1 << 16) // gmpy2.primorial(_SMALL_BOUND - 1)


def _gmp_has_bpsw() -> bool:
    major, minor = (int(part) for part in gmpy2.mp_version().split()[-1].split(".")[:2])
    return (major, minor) >= (6, 2)


# The BPSW test (a strong base-2 Miller-Rabin test, then a strong Lucas test). GMP's own
# (mpz_probab_prime_p with reps=1, BPSW since GMP 6.2) costs the same as gmpy2's
# is_strong_bpsw_prp on a composite, one base-2 test, but half as much on a prime, and each key
# ends with two primes. Older GMPs run reps=1 as one Miller-Rabin test: gmpy2's BPSW then.
def _gmp_bpsw(candidate: gmpy2.mpz) -> bool:
    return bool(gmpy2.is_prime(candidate, 1))


_bpsw: Final[Callable[[gmpy2.mpz], bool]] = _gmp_bpsw if _gmp_has_bpsw() else gmpy2.is_strong_bpsw_prp


def _bpsw_decides(candidate: gmpy2.mpz) -> bool:
    return True


# Before BPSW, one base-2 test rejects the ~70 composites per key that trial division lets through;
# every prime passes it, so it changes no key. pki.candidates' (OpenSSL's Montgomery squarings from
# C, once it gives the known answers below) where the library and libcrypto 3 load, else OpenSSL's
# BN_mod_exp_mont_word (pki.libcrypto, ~25% faster here than GMP's). Without either, BPSW alone:
# GMP's strong base-2 test first saves nothing per key (it is cheaper on a composite, ~11%, but the
# two primes a key ends with then pay for it twice). Tests set _composite_filter to compare them.
_composite_filter: Callable[[gmpy2.mpz], bool] | None = None

def _dense(bits: int) -> int:
    """An odd number of `bits` bits whose bits are about half ones, from a fixed hash."""
    digest = hashlib.shake_256(b"slb-mtls: a prime with dense bits").digest(bits // 8)
    return int.from_bytes(digest, "big") | 1 << (bits - 1) | 1


# Known answers before the C test is used: primes of 1024 and 1536 bits with dense bits (the first
# above _dense(...)) and the two above 2^1023 pass, as do the base-2 pseudoprimes 341 and 561; odd
# composites next to those primes, and 15, do not (tests/test_detkeygen.py checks these answers).
# ~1.5 ms, once per process.
_DENSE_1024: Final = _dense(1024)
_FERMAT_CHECKS: Final = ((_DENSE_1024 + 968, True), (_DENSE_1024 + 970, False), (_dense(1536) + 624, True),
                         (2**1023 + 1155, True), (2**1023 + 1493, True), (2**1023 + 1157, False), (341, True),
                         (561, True), (15, False))


@functools.cache
def _best_composite_filter() -> Callable[[gmpy2.mpz], bool]:
    fermat = candidates.fermat_base2
    if fermat is not None:
        if all(fermat(gmpy2.mpz(n)) == passes for n, passes in _FERMAT_CHECKS):
            return fermat
        print(f"warning: {candidates.LIBRARY}'s base-2 test gives wrong answers; using OpenSSL's, "
              "and the library's candidate stream only (rebuild it: make venv)", file=sys.stderr)
    return libcrypto.fermat_base2 or _bpsw_decides


_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


class _Hmac:
    """HMAC-SHA256 (RFC 2104) under one key, pads absorbed once: three times faster per message
    than `hmac.digest`, which sets up the key again on every call, and det-keygen makes ~6 HMAC
    calls per prime candidate (~800 candidates per RSA-2048 key)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:  # keys here are 32 bytes, below the 64-byte block
        padded = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def __call__(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class _HmacDrbg:
    """HMAC_DRBG (SP 800-90A 10.1.2) as det-keygen uses it: instantiate, generate, and the
    spec's "K = HMAC(K, V || 0x00); V = HMAC(K, V)" between requests."""

    def __init__(self, seed: bytes, personalization: bytes) -> None:
        v = b"\x01" * 32
        mac = _Hmac(bytes(32))
        mac = _Hmac(mac(v + b"\x00" + seed + personalization))
        v = mac(v)
        mac = _Hmac(mac(v + b"\x01" + seed + personalization))
        self._mac, self._v = mac, mac(v)

    def generate(self, nbytes: int) -> bytearray:
        out = bytearray()
        mac, v = self._mac, self._v
        while len(out) < nbytes:
            v = mac(v)
            out += v
        self._v = v
        return out

    def advance(self) -> None:
        self._mac = _Hmac(self._mac(self._v + b"\x00"))
        self._v = self._mac(self._v)

    def rsa_candidates(self, nbytes: int) -> Iterator[gmpy2.mpz]:
        """Steps 8-12, then 13.1-13.2 (= 15-16, 20.1-20.2, 23.1-23.2) before every later one:
        the same operation whatever the outcome, so the candidates form one fixed stream. The
        hot loop of RSA keygen: HMACs inlined, locals only."""
        first = True
        ipad, opad, sha256 = _IPAD, _OPAD, hashlib.sha256
        mac, v = self._mac, self._v
        inner, outer = mac._inner, mac._outer
        last = nbytes - 1
        while True:
            if not first:
                h = inner.copy()
                h.update(v + b"\x00")
                o = outer.copy()
                o.update(h.digest())
                padded = o.digest().ljust(64, b"\0")
                inner, outer = sha256(padded.translate(ipad)), sha256(padded.translate(opad))
                h = inner.copy()
                h.update(v)
                o = outer.copy()
                o.update(h.digest())
                v = o.digest()
            first = False
            temp = bytearray()
            while len(temp) < nbytes:
                h = inner.copy()
                h.update(v)
                o = outer.copy()
                o.update(h.digest())
                v = o.digest()
                temp += v
            temp[0] |= 0b1100_0000
            temp[last] |= 0b0000_0111
            yield gmpy2.mpz(int.from_bytes(temp[:nbytes], "big"))


def _python_survivors(seed: bytes, personalization: bytes, nbytes: int) -> Generator[gmpy2.mpz]:
    """The RSA candidates that no odd prime below _SMALL_BOUND divides, in stream order."""
    gcd, small = gmpy2.gcd, _SMALL_PRIME_PRODUCTS
    for t in _HmacDrbg(seed, personalization).rsa_candidates(nbytes):
        for product in small:
            if gcd(t % product, product) != 1:
                break
        else:
            yield t


# What the check compares, once per process and candidate length, before the C stream is used:
# seeds of 32 bytes (every stack key's), 16 (the shortest det-keygen takes), and those whose
# instantiate message ends at each SHA-256 padding boundary (64 + 33 + seed + 17 bytes = 55, 56,
# 63 and 0 mod 64: seeds of 69, 70, 77 and 78 bytes), 3 survivors each (~1.5 ms of Python).
_CHECK_SEED_LENGTHS: Final = (16, 32, 69, 70, 77, 78)
_CHECK_SURVIVORS: Final = 3


def candidate_stream() -> str:
    """Where RSA candidates come from here, for the bench's header."""
    if not candidates.available:
        return f"Python ({candidates.LIBRARY.name} not built or not loadable)"
    return "C" if _native_agrees(128) else f"Python ({candidates.LIBRARY.name} disagrees with it)"


@functools.cache
def _native_agrees(nbytes: int) -> bool:
    """Whether the C library yields the Python stream's first survivors at this candidate length
    for every check seed: a stale or miscompiled library is then not used, with a warning."""
    personalization = b"det RSA key gen" + (nbytes * 16).to_bytes(2, "big")
    for length in _CHECK_SEED_LENGTHS:
        seed = hashlib.shake_256(b"slb-mtls: pki.candidates agrees with pki.detkeygen").digest(length)
        python = _python_survivors(seed, personalization, nbytes)
        with candidates.NativeStream(seed + personalization, nbytes) as native:
            if any(next(native) != next(python) for _ in range(_CHECK_SURVIVORS)):
                print(f"warning: {candidates.LIBRARY} does not yield det-keygen's candidates of {nbytes} bytes; "
                      "using the Python stream (rebuild it: make venv)", file=sys.stderr)
                return False
    return True


def _native(nbytes: int) -> bool:
    """Whether this key's candidates come from the C library."""
    return candidates.available and candidates.MIN_BYTES <= nbytes <= candidates.MAX_BYTES and _native_agrees(nbytes)


@contextlib.contextmanager
def _survivors(seed: bytes, personalization: bytes, nbytes: int) -> Iterator[Iterator[gmpy2.mpz]]:
    """The small-prime survivors of one key's stream, from C where it agrees, its state freed after."""
    stream: candidates.NativeStream | Generator[gmpy2.mpz]
    if _native(nbytes):
        stream = candidates.NativeStream(seed + personalization, nbytes)
    else:
        stream = _python_survivors(seed, personalization, nbytes)
    try:
        yield stream
    finally:
        stream.close()


def _check_seed(seed: bytes) -> None:
    if len(seed) < 16:
        raise PkiError(f"det-keygen seed: at least 16 bytes required, got {len(seed)}")


def rsa_key(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    """det-keygen RSA, steps 1-25: p and q kept in generation order, as the vectors serialise them."""
    _check_seed(seed)
    if bits < 2048 or bits > 65520 or bits % 16:
        raise PkiError(f"det-keygen RSA: {bits} bits; a multiple of 16 from 2048 to 65520 required")
    with _survivors(seed, b"det RSA key gen" + bits.to_bytes(2, "big"), bits // 16) as survivors:
        return _rsa_key_from(survivors, bits)


def _rsa_key_from(survivors: Iterator[gmpy2.mpz], bits: int) -> rsa.RSAPrivateKey:
    gcd, large, bpsw = gmpy2.gcd, _LARGE_PRIME_PRODUCT, _bpsw
    composite_filter = _composite_filter or _best_composite_filter()

    def prime() -> int:
        """Step 13: the next candidate that is prime (trial division's second step, a base-2 test,
        then BPSW)."""
        for t in survivors:
            if gcd(large % t, t) == 1 and composite_filter(t) and bpsw(t):
                return int(t)
        raise AssertionError("unreachable: the candidate stream is endless")  # pragma: no cover

    while True:
        p = prime()
        q = prime()
        ratio = int(gmpy2.gcd(p - 1, q - 1))
        if ratio >= 1 << 32:
            continue
        lam = (p - 1) * (q - 1) // ratio
        try:
            d = int(gmpy2.invert(_E, lam))
        except ZeroDivisionError:  # gmpy2: no inverse
            continue
        break
    # FIPS 186-5 A.1.1 criteria the spec shows to be negligible failures: checked, fatal if hit.
    if abs(p - q) <= 1 << (bits // 2 - 100) or d < 1 << (bits // 2):  # pragma: no cover
        raise PkiError("det-keygen RSA: key fails FIPS 186-5 A.1.1 (negligible odds); report this seed's label")
    numbers = rsa.RSAPrivateNumbers(
        p=p, q=q, d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q), iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(_E, p * q),
    )
    # GMP already vouched for p and q; OpenSSL re-testing them would double the cost.
    # Tests run `openssl rsa -check` on derived keys.
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def ec_p256_key(seed: bytes) -> ec.EllipticCurvePrivateKey:
    """det-keygen ECDSA for P-256, steps 1-14, with the one retry the spec defines."""
    _check_seed(seed)
    drbg = _HmacDrbg(seed, b"det ECDSA key gen P-256")
    d = int.from_bytes(drbg.generate(32), "big")
    if d >= _P256_N:
        drbg.advance()
        d = int.from_bytes(drbg.generate(32), "big")
    if d == 0 or d >= _P256_N:  # pragma: no cover - below 2^-32 per key, untestable by design
        raise PkiError("det-keygen P-256: scalar out of range twice (negligible odds)")
    return ec.derive_private_key(d, ec.SECP256R1())
