"""The C candidate stream (pki/candidates.c) against the Python one it replaces (pki/detkeygen.py):
the same numbers, the same count of DRBG draws, the same keys, and never used when it disagrees."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gmpy2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pki import candidates, detkeygen, libcrypto

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pki" / "candidates.c"
RSA_VECTORS = json.loads((ROOT / "tests" / "vectors" / "det-keygen" / "rsa.json").read_text())
needs_library = pytest.mark.skipif(not candidates.available, reason="pki/libcandidates.so not built (no C compiler)")


def _python_stream(seed: bytes, bits: int) -> Iterator[tuple[int, int]]:
    """(survivor, candidates drawn for it) from the Python reference: the DRBG stream, then the odd
    primes below 800, one at a time (not the products detkeygen groups them into)."""
    personalization = b"det RSA key gen" + bits.to_bytes(2, "big")
    small = [p for p in range(3, detkeygen._SMALL_BOUND, 2) if gmpy2.is_prime(p)]
    drawn = 0
    for t in detkeygen._HmacDrbg(seed, personalization).rsa_candidates(bits // 16):
        drawn += 1
        if all(t % p for p in small):
            yield int(t), drawn
            drawn = 0


def _native_stream(seed: bytes, bits: int, count: int) -> list[tuple[int, int]]:
    out = []
    with candidates.NativeStream(seed + b"det RSA key gen" + bits.to_bytes(2, "big"), bits // 16) as stream:
        for _ in range(count):
            before = stream.drawn
            out.append((int(next(stream)), stream.drawn - before))
    return out


def test_the_library_is_built_and_used_where_there_is_a_compiler() -> None:
    """CI installs gcc: this is where the fast path is proven to be the one that runs."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler here: the Python stream is used")
    assert candidates.available, "make builds pki/libcandidates.so before the tests"
    assert detkeygen.native_candidates()


@needs_library
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.binary(min_size=16, max_size=80), bits=st.sampled_from([2048, 2064, 2080, 3072, 4096, 8192]))
@example(seed=bytes(16), bits=2048)
@example(seed=bytes(range(55)), bits=2096)  # "V || 0x00 || material" fills a SHA-256 block to 56 bytes
def test_the_c_stream_is_the_python_stream(seed: bytes, bits: int) -> None:
    python = _python_stream(seed, bits)
    assert _native_stream(seed, bits, 8) == [next(python) for _ in range(8)]


@needs_library
@pytest.mark.parametrize("block", ["openssl", "portable"])
def test_both_sha256_block_functions_give_the_same_stream(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL's SHA256_Transform where it loads, the portable C block function otherwise."""
    if block == "openssl" and libcrypto.sha256_block_address is None:
        pytest.skip("no SHA256_Transform in this libcrypto")
    if block == "portable":
        monkeypatch.setattr(libcrypto, "sha256_block_address", None)
    seed = bytes(range(32))
    python = _python_stream(seed, 2048)
    assert _native_stream(seed, 2048, 20) == [next(python) for _ in range(20)]


@pytest.mark.parametrize("stream", ["c", "python"])
def test_the_stream_changes_no_key(stream: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RSA-2048 and RSA-3072 vector of C2SP comes out the same either way."""
    if stream == "c" and not detkeygen.native_candidates():
        pytest.skip("pki/libcandidates.so not built (no C compiler)")
    monkeypatch.setattr(detkeygen, "native_candidates", lambda: stream == "c")
    from cryptography.hazmat.primitives import serialization

    for vector in (v for v in RSA_VECTORS if v["bits"] in (2048, 3072)):
        key = detkeygen.rsa_key(base64.b64decode(vector["seed"]), vector["bits"])
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        assert der == base64.b64decode(vector["private_key_pkcs8"])


@needs_library
def test_a_library_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale or miscompiled library: one number off in the check, and keys come from Python."""

    class OffByTwo(candidates.NativeStream):
        def __next__(self) -> gmpy2.mpz:
            return super().__next__() + 2

    detkeygen.native_candidates.cache_clear()
    monkeypatch.setattr(candidates, "NativeStream", OffByTwo)
    try:
        assert not detkeygen.native_candidates()
    finally:
        detkeygen.native_candidates.cache_clear()


@needs_library
def test_a_closed_stream_is_closed_for_good() -> None:
    stream = candidates.NativeStream(bytes(16) + b"det RSA key gen\x08\x00", 128)
    next(stream)
    stream.close()
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        next(stream)


@needs_library
@pytest.mark.parametrize("nbytes", [0, 7, 4097])
def test_lengths_outside_det_keygens_are_refused(nbytes: int) -> None:
    with pytest.raises(ValueError, match="candidate length"):
        candidates.NativeStream(bytes(16), nbytes)


def _gcc_runtime(library: str) -> str | None:
    found = subprocess.run(["gcc", f"-print-file-name={library}"], capture_output=True, text=True, check=False)
    path = found.stdout.strip()
    return path if found.returncode == 0 and Path(path).is_absolute() and Path(path).exists() else None


_SANITIZED_RUN = """
import ctypes, sys
from pki import candidates, detkeygen
lib = ctypes.CDLL(sys.argv[1])
lib.dk_init()
lib.dk_stream_new.restype = ctypes.c_void_p
lib.dk_stream_new.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
lib.dk_stream_next.restype = ctypes.c_long
lib.dk_stream_next.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.dk_stream_free.argtypes = [ctypes.c_void_p]
for nbytes in (128, 129, 130, 131, 512):
    for seed in (bytes(16), bytes(range(55)), bytes(range(200))):
        pers = b"det RSA key gen" + (nbytes * 16).to_bytes(2, "big")
        handle = lib.dk_stream_new(seed + pers, len(seed + pers), nbytes, None)
        out = ctypes.create_string_buffer(nbytes)
        python = detkeygen._python_survivors(seed, pers, nbytes)
        for _ in range(5):
            lib.dk_stream_next(handle, out)
            assert int.from_bytes(out.raw, "big") == next(python)
        lib.dk_stream_free(handle)
print("ok")
"""


def test_the_c_code_is_clean_under_warnings_and_sanitizers(tmp_path: Path) -> None:
    """-Wall -Wextra -pedantic as errors, then AddressSanitizer and UBSan over streams of every
    word alignment (the portable SHA-256: OpenSSL's assembly is not instrumented)."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    strict = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fPIC", "-shared",
                             "-o", str(tmp_path / "strict.so"), str(SOURCE)], capture_output=True, text=True, check=False)
    assert strict.returncode == 0, strict.stderr
    asan = _gcc_runtime("libasan.so")
    if asan is None:
        pytest.skip("gcc without libasan")
    library = tmp_path / "sanitized.so"
    built = subprocess.run(["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                            "-fno-omit-frame-pointer", "-fPIC", "-shared", "-o", str(library), str(SOURCE)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LD_PRELOAD": asan,
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    run = subprocess.run([sys.executable, "-c", _SANITIZED_RUN, str(library)], capture_output=True, text=True,
                         env=env, check=False, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
