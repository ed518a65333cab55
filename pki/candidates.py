"""det-keygen's RSA prime candidates in C, where `make` could build pki/candidates.c.

The candidate stream is fixed by the spec; pki/detkeygen.py has it in Python, where drawing one
candidate is ~13 us of interpreter overhead around 14 SHA-256 blocks, and an RSA-2048 key draws
~730 (about a fifth of the key's time). The C library draws them and does the first trial-division
step (odd primes below 800) in ~2.5 us each, with OpenSSL's SHA-256 block function
(pki.libcrypto) where that loads.

Optional: without a C compiler there is no library and pki.detkeygen stays on its Python stream.
Before using the library for a candidate length it checks, once per process, that the library
yields the Python stream's numbers for seeds of several lengths (tests compare far more), so a
stale or miscompiled library is set aside with a warning rather than trusted. Each stream belongs
to one thread; ctypes releases the GIL while C runs.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from types import TracebackType
from typing import Final

import gmpy2

from pki import libcrypto

LIBRARY: Final = Path(__file__).with_name("libcandidates.so")
_ABI_VERSION: Final = 2  # pki/candidates.c's ABI_VERSION
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
