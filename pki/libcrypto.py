"""The system's libcrypto for det-keygen's prime search: the base-2 Fermat test that filters composites,
and the SHA-256 block function the C candidate stream uses (pki/candidates.py).

Nine in ten prime candidates that survive trial division are composite, and one base-2 test
rejects each of them: ~70 such tests per RSA-2048 key, where most of its time goes. OpenSSL's
BN_mod_exp_mont_word (base 2: its Montgomery code only doubles between squarings) takes ~25% less
time here than GMP's mpz_powm as the gmpy2 wheel ships it, and it releases the GIL (ctypes does),
so this process's other threads run meanwhile.

Only a filter: every prime passes it, and a candidate it passes still goes to GMP's BPSW, so keys
are the same with it or without it (tests/test_detkeygen.py derives the vectors both ways). Where
no libcrypto 3 loads (another OS), `fermat_base2` is None and BPSW alone decides.

SHA256_Transform (deprecated in OpenSSL 3, still exported) runs one SHA-256 block with the
assembly OpenSSL picks for this CPU (SHA-NI here): ~3x faster than portable C. Its address, and
those of the BIGNUM functions pki.candidates' Fermat test uses (`addresses`), are handed to C code,
never called from Python; None where a build leaves them out.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Final

_LIBRARIES: Final = ("libcrypto.so.3", "libcrypto.3.dylib")
_pointer = ctypes.c_void_p


def _load() -> ctypes.CDLL | None:
    for name in _LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            lib.OpenSSL_version_num.restype = ctypes.c_ulong
            if lib.OpenSSL_version_num() < 0x30000000:
                continue
            for function, argtypes, restype in (
                ("BN_CTX_new", [], _pointer),
                ("BN_CTX_free", [_pointer], None),
                ("BN_new", [], _pointer),
                ("BN_free", [_pointer], None),
                ("BN_bin2bn", [ctypes.c_char_p, ctypes.c_int, _pointer], _pointer),
                ("BN_sub_word", [_pointer, ctypes.c_ulong], ctypes.c_int),
                ("BN_copy", [_pointer, _pointer], _pointer),
                ("BN_mod_exp_mont_word", [_pointer, ctypes.c_ulong, _pointer, _pointer, _pointer, _pointer],
                 ctypes.c_int),
                ("BN_is_one", [_pointer], ctypes.c_int),
                ("ERR_clear_error", [], None),
            ):
                getattr(lib, function).argtypes = argtypes
                getattr(lib, function).restype = restype
        except AttributeError:  # not the libcrypto this was written against
            continue
        return lib
    return None


class _Numbers:
    """One BN_CTX and three BIGNUMs, reused for every test in one thread (BN_CTX is not
    thread-safe); freed when their thread ends and its thread-local storage goes."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.ctx, self.n, self.exponent, self.result = lib.BN_CTX_new(), lib.BN_new(), lib.BN_new(), lib.BN_new()

    def __del__(self) -> None:
        for bn in (self.n, self.exponent, self.result):
            self._lib.BN_free(bn)  # NULL-safe
        self._lib.BN_CTX_free(self.ctx)


def _fermat_base2(lib: ctypes.CDLL) -> Callable[[int], bool]:
    local = threading.local()

    def fermat_base2(n: int) -> bool:
        """False only for a composite n (odd, > 3): 2^(n-1) mod n is not 1. True when it is, or
        when libcrypto failed (out of memory): the BPSW test that follows decides then."""
        numbers = getattr(local, "numbers", None)
        if numbers is None:
            numbers = local.numbers = _Numbers(lib)
        data = int(n).to_bytes((n.bit_length() + 7) // 8, "big")
        m, e, r = numbers.n, numbers.exponent, numbers.result
        if not (numbers.ctx and m and e and r and lib.BN_bin2bn(data, len(data), m) and lib.BN_copy(e, m)
                and lib.BN_sub_word(e, 1) and lib.BN_mod_exp_mont_word(r, 2, e, m, numbers.ctx, None)):
            lib.ERR_clear_error()
            return True
        return bool(lib.BN_is_one(r))

    return fermat_base2


def _address(lib: ctypes.CDLL | None, function: str) -> int | None:
    try:
        return None if lib is None else ctypes.cast(getattr(lib, function), ctypes.c_void_p).value
    except AttributeError:
        return None


def addresses(*functions: str) -> tuple[int, ...] | None:
    """These libcrypto functions' addresses, for C code to call; None unless all are there."""
    found = tuple(_address(_lib, f) for f in functions)
    return None if None in found else found  # type: ignore[return-value]  # no None left


_lib = _load()
fermat_base2: Final[Callable[[int], bool] | None] = None if _lib is None else _fermat_base2(_lib)
sha256_block_address: Final[int | None] = _address(_lib, "SHA256_Transform")
