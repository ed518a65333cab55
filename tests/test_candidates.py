"""The C candidate stream (pki/candidates.c) against the Python one it replaces (pki/detkeygen.py):
the same numbers, the same count of DRBG draws, the same keys, and never used when it disagrees."""

from __future__ import annotations

import base64
import json
import os
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
    assert detkeygen.candidate_stream() == "C"
    assert all(detkeygen._native(bits // 16) for bits in (2048, 3072, 4096))


@needs_library
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.binary(min_size=16, max_size=160), bits=st.sampled_from([2048, 2064, 2080, 2096, 3072, 4096, 8192]))
@example(seed=bytes(16), bits=2048)
# seeds whose instantiate message (64 + 33 + seed + 17 bytes) ends 55, 56, 63 and 0 bytes into a
# SHA-256 block: the padding's edge cases; and every candidate length mod 4 bytes
@example(seed=bytes(range(69)), bits=2048)
@example(seed=bytes(range(70)), bits=2064)
@example(seed=bytes(range(77)), bits=2080)
@example(seed=bytes(range(78)), bits=2096)
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
    """Every C2SP RSA vector (2048 to 8192 bits) comes out the same either way."""
    if stream == "c" and detkeygen.candidate_stream() != "C":
        pytest.skip("pki/libcandidates.so not built (no C compiler)")
    monkeypatch.setattr(detkeygen, "_native", lambda nbytes: stream == "c")
    from cryptography.hazmat.primitives import serialization

    for vector in RSA_VECTORS:
        key = detkeygen.rsa_key(base64.b64decode(vector["seed"]), vector["bits"])
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        assert der == base64.b64decode(vector["private_key_pkcs8"])


@needs_library
@pytest.mark.parametrize("seed_length", detkeygen._CHECK_SEED_LENGTHS)
def test_a_library_that_disagrees_is_set_aside_with_a_warning(
        seed_length: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A stale or miscompiled library, wrong only for one seed length and from its last checked
    survivor on: keys come from Python, and stderr says why."""
    material_length = seed_length + len(b"det RSA key gen") + 2

    class WrongForOneLength(candidates.NativeStream):
        def __init__(self, material: bytes, nbytes: int) -> None:
            super().__init__(material, nbytes)
            self.wrong = len(material) == material_length
            self.yielded = 0

        def __next__(self) -> gmpy2.mpz:
            self.yielded += 1
            value = super().__next__()
            return value + 2 if self.wrong and self.yielded >= detkeygen._CHECK_SURVIVORS else value

    monkeypatch.setattr(candidates, "NativeStream", WrongForOneLength)
    detkeygen._native_agrees.cache_clear()
    try:
        assert not detkeygen._native(192)
        assert "does not yield det-keygen's candidates of 192 bytes" in capsys.readouterr().err
        assert "disagrees" in detkeygen.candidate_stream()
    finally:
        detkeygen._native_agrees.cache_clear()
    monkeypatch.undo()
    assert detkeygen.candidate_stream() == "C"  # the real library agrees again


def _compile(tmp_path: Path, name: str, source: str) -> Path:
    (tmp_path / f"{name}.c").write_text(source)
    library = tmp_path / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(tmp_path / f"{name}.c")], check=True)
    return library


@pytest.mark.parametrize("source", [
    "int dk_abi_version(void) { return 1; }\nvoid *dk_stream_new(void) { return 0; }\n"
    "long dk_stream_next(void) { return 0; }\nvoid dk_stream_free(void) {}\n",  # the interface of another version
    "int unrelated(void) { return 2; }\n",  # not this library at all
])
def test_a_library_of_another_version_is_not_loaded(source: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    monkeypatch.setattr(candidates, "LIBRARY", _compile(tmp_path, "other", source))
    assert candidates._load() is None
    monkeypatch.setattr(candidates, "LIBRARY", tmp_path / "absent.so")
    assert candidates._load() is None


needs_fermat = pytest.mark.skipif(candidates.fermat_base2 is None, reason="no pki/libcandidates.so or libcrypto 3")


@needs_fermat
@settings(max_examples=150, deadline=None)
@given(n=st.one_of(st.integers(min_value=2, max_value=2**4096).map(lambda n: 2 * n + 1),
                   # primes up to 1536 bits (GMP's next_prime takes seconds at 3072)
                   st.integers(min_value=2, max_value=2**1536).map(lambda n: int(gmpy2.next_prime(n)))))
@example(n=2**1023 + 1155)  # prime
@example(n=341)  # base-2 pseudoprimes
@example(n=561)
@example(n=2**64 + 13)  # just past one 64-bit word
@example(n=2**2048 - 1)
def test_the_c_fermat_test_is_the_fermat_test(n: int) -> None:
    """Against GMP, on odd numbers of up to 4097 bits and (about half the cases) primes of up to
    1536 bits: every prime passes."""
    assert candidates.fermat_base2 is not None
    assert candidates.fermat_base2(n) == (gmpy2.powmod(2, n - 1, n) == 1)


def test_the_c_api_struct_is_the_python_one() -> None:
    """pki/candidates.c's bn_api fields and _BN_FUNCTIONS: one order, one set of functions (a
    mismatch would call the wrong function)."""
    import re

    struct = re.search(r"typedef struct \{([^{}]*)\} bn_api;", SOURCE.read_text())
    assert struct is not None
    assert tuple(re.findall(r"\(\*(\w+)\)\(", struct.group(1))) == candidates._BN_FUNCTIONS


@needs_library
def test_a_closed_stream_is_closed_for_good() -> None:
    stream = candidates.NativeStream(bytes(16) + b"det RSA key gen\x08\x00", 128)
    next(stream)
    stream.close()
    assert stream._out.raw == bytes(128)  # the last candidate's buffer is wiped
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
from pathlib import Path
from pki import candidates, detkeygen
candidates.LIBRARY = Path(sys.argv[1])
lib = candidates._load()  # the sanitized build, with the module's own prototypes
assert lib is not None
api = candidates._BnApi(*candidates._bn_functions)
fermat = lib.dk_fermat_new(ctypes.byref(api))
for n in (341, 561, 15, 2**1023 + 1155, 2**1023 + 1157, 2**4095 + 1, 2**64 + 13):
    data = n.to_bytes((n.bit_length() + 7) // 8, "big")
    assert lib.dk_fermat2(fermat, data, len(data)) == (pow(2, n - 1, n) == 1), n
lib.dk_fermat_free(fermat)
for nbytes in (128, 129, 130, 131, 512):
    for seed in (bytes(16), bytes(range(69)), bytes(range(70)), bytes(range(77)), bytes(range(78)), bytes(range(200))):
        pers = b"det RSA key gen" + (nbytes * 16).to_bytes(2, "big")
        handle = lib.dk_stream_new(seed + pers, len(seed + pers), nbytes, None)  # the portable SHA-256
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
    word alignment (the portable SHA-256: OpenSSL's assembly is not instrumented) and Fermat tests
    of several sizes."""
    if shutil.which("gcc") is None or candidates._bn_functions is None:
        pytest.skip("no gcc, or no libcrypto 3")
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
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LD_PRELOAD": asan,
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    # ASan itself does not start on some hosts (gcc 12's libasan with vm.mmap_rnd_bits=32): skip there
    smoke = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True, env=env,
                           check=False, timeout=60)
    if smoke.stdout.strip() != "ok":
        pytest.skip(f"AddressSanitizer does not start here: {smoke.stderr[:200]}")
    run = subprocess.run([sys.executable, "-c", _SANITIZED_RUN, str(library)], capture_output=True, text=True,
                         env=env, check=False, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
