"""det-keygen's RSA prime candidates, and the base-2 test that filters them, in C where `make`
could build pki/candidates.c.

The candidate stream is fixed by the spec; pki/detkeygen.py has it in Python, where drawing one
candidate is ~13 us of interpreter overhead around 14 SHA-256 blocks, and an RSA-2048 key draws
~730 (about a fifth of the key's time). The C library draws them and does the first trial-division
step (odd primes below 800) in ~2.5 us each, with OpenSSL's SHA-256 block function
(pki.libcrypto) where that loads.

The Fermat test (`fermat_base2`) runs OpenSSL's Montgomery squarings from C with a doubling per
set bit, ~7-13% faster per test than OpenSSL's BN_mod_exp_mont_word (pki.libcrypto), with one
ctypes call per test instead of five; it needs libcrypto 3 as well.

Optional: without a C compiler there is no library and pki.detkeygen stays on its Python stream.
Before using the library for a candidate length it checks, once per process, that the library
yields the Python stream's numbers for seeds of several lengths (tests compare far more), so a
stale or miscompiled library is set aside with a warning rather than trusted. Each stream belongs
to one thread; ctypes releases the GIL while C runs.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

import gmpy2

from pki import libcrypto

LIBRARY: Final = Path(__file__).with_name("libcandidates.so")
_ABI_VERSION: Final = 4  # pki/candidates.c's ABI_VERSION
MIN_BYTES, MAX_BYTES = 8, 4096  # candidate lengths pki/candidates.c takes (det-keygen's: 128 to 4095)


def _load() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:  # not built (no compiler), or built for another machine
        return None
    try:
        lib.dk_abi_version.restype = ctypes.c_int
        lib.dk_abi_version.argtypes = []
        lib.dk_stream_new.restype = ctypes.c_void_p
        lib.dk_stream_new.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
        lib.dk_stream_next.restype = ctypes.c_long
        lib.dk_stream_next.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.dk_stream_free.restype = None
        lib.dk_stream_free.argtypes = [ctypes.c_void_p]
        lib.dk_fermat_new.restype = ctypes.c_void_p
        lib.dk_fermat_new.argtypes = [ctypes.c_void_p]
        lib.dk_fermat_free.restype = None
        lib.dk_fermat_free.argtypes = [ctypes.c_void_p]
        lib.dk_fermat2.restype = ctypes.c_int
        lib.dk_fermat2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    except AttributeError:  # a library from another version of this file
        return None
    return lib if lib.dk_abi_version() == _ABI_VERSION else None


_lib: Final = _load()
available: Final = _lib is not None


class NativeStream:
    """The candidates of one det-keygen RSA key that no odd prime below 800 divides, in stream
    order: instantiate `material` (seed || personalization), `nbytes` = bits / 16 per candidate."""

    __slots__ = ("_handle", "_out", "drawn")

    def __init__(self, material: bytes, nbytes: int) -> None:
        self._handle: int | None = None
        if _lib is None:
            raise RuntimeError("pki/libcandidates.so is not loaded")
        if not MIN_BYTES <= nbytes <= MAX_BYTES:
            raise ValueError(f"det-keygen candidate length: {nbytes} bytes; {MIN_BYTES} to {MAX_BYTES} supported")
        self._handle = _lib.dk_stream_new(material, len(material), nbytes, libcrypto.sha256_block_address)
        if not self._handle:
            raise MemoryError(f"det-keygen candidate stream of {nbytes}-byte candidates")
        self._out = ctypes.create_string_buffer(nbytes)
        self.drawn = 0  # candidates drawn from the DRBG, survivors or not

    def __iter__(self) -> NativeStream:
        return self

    def __next__(self) -> gmpy2.mpz:
        if _lib is None or self._handle is None:  # a NULL handle would crash the C code
            raise ValueError("det-keygen candidate stream is closed")
        self.drawn += _lib.dk_stream_next(self._handle, self._out)
        return gmpy2.mpz(int.from_bytes(self._out.raw, "big"))

    def close(self) -> None:
        """Wipes and frees the DRBG state, wipes the last candidate's buffer; idempotent."""
        if self._handle is not None and _lib is not None:
            _lib.dk_stream_free(self._handle)
            ctypes.memset(self._out, 0, len(self._out))
        self._handle = None

    def __enter__(self) -> NativeStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


# pki/candidates.c's bn_api, in its order: the libcrypto functions its Fermat test calls
_BN_FUNCTIONS: Final = ("BN_CTX_new", "BN_CTX_free", "BN_new", "BN_clear_free", "BN_clear", "BN_bin2bn",
                        "BN_MONT_CTX_new", "BN_MONT_CTX_free", "BN_MONT_CTX_set", "BN_to_montgomery", "BN_value_one",
                        "BN_mod_mul_montgomery", "BN_mod_lshift1_quick", "BN_is_bit_set", "BN_num_bits", "BN_cmp",
                        "BN_copy", "ERR_clear_error")


class _BnApi(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in _BN_FUNCTIONS]


class _FermatState:
    """One thread's BN_CTX and numbers (BN_CTX is not thread-safe), freed when the thread ends."""

    def __init__(self, lib: ctypes.CDLL, api: _BnApi) -> None:
        self._lib = lib
        self._api = api  # the C state points into it until __del__
        self.handle: int | None = lib.dk_fermat_new(ctypes.byref(api))

    def __del__(self) -> None:
        self._lib.dk_fermat_free(self.handle)  # NULL-safe


def _fermat(lib: ctypes.CDLL, functions: tuple[int, ...]) -> Callable[[int], bool]:
    api = _BnApi(*functions)  # kept alive by this closure as long as any state uses it
    local = threading.local()

    def fermat_base2(n: int) -> bool:
        """False only for a composite n (odd, > 3): 2^(n-1) mod n is not 1. True when it is, or
        when libcrypto failed (out of memory): the BPSW test that follows decides then."""
        state = getattr(local, "state", None)
        if state is None:
            state = local.state = _FermatState(lib, api)
        if not state.handle:
            return True
        data = int(n).to_bytes((n.bit_length() + 7) // 8, "big")
        return bool(lib.dk_fermat2(state.handle, data, len(data)) != 0)

    return fermat_base2


_bn_functions = libcrypto.addresses(*_BN_FUNCTIONS)
fermat_base2: Final[Callable[[int], bool] | None] = (
    None if _lib is None or _bn_functions is None else _fermat(_lib, _bn_functions))
