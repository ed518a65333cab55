"""C2SP det-keygen: our implementation against C2SP's published vectors (tests/vectors/det-keygen)."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import ctypes
import gc
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import gmpy2
import pytest
from conftest import SEED, openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pki import KeyType, PkiError, candidates, detkeygen, libcrypto
from pki.derive import derive_key
from pki.detkeygen import ec_p256_key, rsa_key
from pki.seed import det_keygen_seed

VECTORS = Path(__file__).parent / "vectors" / "det-keygen"
RSA = json.loads((VECTORS / "rsa.json").read_text())
P256 = [v for v in json.loads((VECTORS / "ecdsa.json").read_text()) if v["curve"] == "secp256r1"]
RETRY_SEED = "b432f9be30890480298218510559aed7"  # the spec's seed whose first P-256 scalar overflows


def _der(key: object) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                             serialization.NoEncryption())


_DERIVED: dict[tuple[bytes, int], rsa.RSAPrivateKey] = {}


def _rsa_key(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    """det-keygen's RSA key, derived once per process: the vector tests derive every vector, and the
    CLI tests below print three of them again (~1.2 s of CPU, the RSA-4096 one most)."""
    if (seed, bits) not in _DERIVED:
        _DERIVED[(seed, bits)] = rsa_key(seed, bits)
    return _DERIVED[(seed, bits)]


@pytest.mark.parametrize("vector", [v for v in RSA if v["bits"] <= 4096],
                         ids=lambda v: f"{v['bits']}-{base64.b64decode(v['seed']).hex()[:12]}")
def test_rsa_vectors(vector: dict[str, object]) -> None:
    key = _rsa_key(base64.b64decode(str(vector["seed"])), int(str(vector["bits"])))
    assert _der(key) == base64.b64decode(str(vector["private_key_pkcs8"]))


def test_rsa_8192_vector() -> None:
    (vector,) = [v for v in RSA if v["bits"] == 8192]
    assert _der(rsa_key(base64.b64decode(vector["seed"]), 8192)) == base64.b64decode(vector["private_key_pkcs8"])


@pytest.mark.parametrize("vector", P256, ids=lambda v: base64.b64decode(v["seed"]).hex()[:12])
def test_p256_vectors(vector: dict[str, str]) -> None:
    assert _der(ec_p256_key(base64.b64decode(vector["seed"]))) == base64.b64decode(vector["private_key_pkcs8"])


def test_the_p256_retry_seed_is_among_the_vectors() -> None:
    assert RETRY_SEED in [base64.b64decode(v["seed"]).hex() for v in P256]


def _cli(*args: str, subprocess_: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m pki keygen ARGS`: in this process through pki.__main__.main (no interpreter start-up
    per call), or as a reviewer runs it with `subprocess_=True`."""
    if subprocess_:
        return subprocess.run([sys.executable, "-m", "pki", "keygen", *args], capture_output=True, text=True,
                              check=False)
    from pki.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["keygen", *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["pki", "keygen", *args], code, out.getvalue(), err.getvalue())


def _check_printed_key(out: subprocess.CompletedProcess[str], vector: dict[str, str]) -> None:
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("-----BEGIN PRIVATE KEY-----\n")
    # openssl's -check below validates the key; loading it here only compares it (validating an
    # RSA-4096 key twice costs ~0.4 s)
    der = serialization.load_pem_private_key(out.stdout.encode(), None, unsafe_skip_rsa_key_validation=True)
    assert _der(der) == base64.b64decode(vector["private_key_pkcs8"])
    check = openssl("pkey", "-check", "-noout", input=out.stdout.encode())
    assert check.returncode == 0, check.stderr


def test_smoke_the_cli_as_a_reviewer_runs_it() -> None:
    """The one subprocess run: the EC retry vector (cheap to derive) and a refusal, as typed."""
    vector = next(v for v in P256 if base64.b64decode(v["seed"]).hex() == RETRY_SEED)
    _check_printed_key(_cli("--seed-hex", RETRY_SEED, "--type", "ec-p256", subprocess_=True), vector)
    refused = _cli("--seed-hex", "abc", "--type", "ec-p256", subprocess_=True)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr


@pytest.mark.parametrize(("key_type", "vector"), [
    ("rsa-2048", next(v for v in RSA if v["bits"] == 2048)),
    ("rsa-3072", next(v for v in RSA if v["bits"] == 3072)),
    ("rsa-4096", next(v for v in RSA if v["bits"] == 4096)),
    ("ec-p256", next(v for v in P256 if base64.b64decode(v["seed"]).hex() == RETRY_SEED)),
])
def test_cli_prints_the_vector_key(key_type: str, vector: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from pki import detkeygen

    monkeypatch.setattr(detkeygen, "rsa_key", _rsa_key)  # the CLI's own code path, the derivation shared
    _check_printed_key(_cli("--seed-hex", base64.b64decode(vector["seed"]).hex(), "--type", key_type), vector)


def test_cli_refuses_bad_input_without_a_traceback() -> None:
    for args in (["--seed-hex", "abc", "--type", "ec-p256"], ["--seed-hex", "00" * 8, "--type", "rsa-2048"]):
        out = _cli(*args)
        assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert _cli("--seed-hex", "00" * 16, "--type", "dsa").returncode == 2


def test_stack_keys_are_det_keygen_keys_of_their_hkdf_seed() -> None:
    """A derived key is the det-keygen key of det_keygen_seed(...): checkable with the CLI."""
    label = ("client", "alice", 1)
    for key_type in (KeyType.EC_P256, KeyType.RSA_2048):
        seed = det_keygen_seed(SEED, key_type, label)
        out = _cli("--seed-hex", seed.hex(), "--type", key_type.value)
        assert _der(derive_key(SEED, label, key_type)) == _der(serialization.load_pem_private_key(out.stdout.encode(), None))


def test_rsa_sizes_outside_the_spec_are_refused() -> None:
    with pytest.raises(PkiError, match="multiple of 16 from 2048 to 65520"):
        rsa_key(bytes(16), 1024)
    with pytest.raises(PkiError, match="at least 16 bytes"):
        ec_p256_key(bytes(15))


def test_the_primality_test_is_bpsw_not_one_miller_rabin_round() -> None:
    """3825123056546413051 = 149491 * 747451 * 34233211 passes strong tests to every prime base up
    to 23 and has no factor trial division finds: only the Lucas half of BPSW rejects it. The
    primes of a vector key pass, in either order of the CRT parameters."""
    pseudoprime = 3825123056546413051
    assert gmpy2.is_strong_prp(pseudoprime, 2)
    assert not detkeygen._bpsw(gmpy2.mpz(pseudoprime))
    (vector, *_) = [v for v in RSA if v["bits"] == 2048]
    key = _rsa_key(base64.b64decode(str(vector["seed"])), 2048).private_numbers()
    assert detkeygen._bpsw(gmpy2.mpz(key.p)) and detkeygen._bpsw(gmpy2.mpz(key.q))
    assert not detkeygen._bpsw(gmpy2.mpz(key.p * key.q))


_FILTERS = {"c": candidates.fermat_base2, "openssl": libcrypto.fermat_base2, "none": detkeygen._bpsw_decides}


@pytest.mark.parametrize("name", _FILTERS)
def test_the_composite_filter_changes_no_key(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The base-2 test before BPSW only saves time: with pki.candidates', OpenSSL's or none,
    every RSA-2048 vector comes out the same."""
    if _FILTERS[name] is None:
        pytest.skip(f"no {name} base-2 test on this machine")
    monkeypatch.setattr(detkeygen, "_composite_filter", _FILTERS[name])
    for vector in (v for v in RSA if v["bits"] == 2048):
        key = rsa_key(base64.b64decode(str(vector["seed"])), 2048)
        assert _der(key) == base64.b64decode(str(vector["private_key_pkcs8"]))


def test_the_fastest_base2_test_here_is_the_filter() -> None:
    """Where the speed comes from on Linux: pki.candidates' test where `make` built the library
    (CI installs gcc), else OpenSSL's (Debian's libssl3, which the openssl command needs)."""
    try:
        ctypes.CDLL("libcrypto.so.3")
    except OSError:
        pytest.skip("no system libcrypto 3")
    expected = candidates.fermat_base2 or libcrypto.fermat_base2
    assert expected is not None
    assert detkeygen._best_composite_filter() is expected


def test_the_filters_known_answers_are_right() -> None:
    """What pki.detkeygen checks the C test against before using it: GMP agrees, and the primes
    are the first above their starting points."""
    for n, passes in detkeygen._FERMAT_CHECKS:
        assert (gmpy2.powmod(2, n - 1, n) == 1) == passes, n
    primes = [n for n, _ in detkeygen._FERMAT_CHECKS if n > 2**1000 and gmpy2.is_prime(n, 50)]
    assert primes == [gmpy2.next_prime(detkeygen._dense(1024)), gmpy2.next_prime(detkeygen._dense(1536)),
                      gmpy2.next_prime(2**1023), 2**1023 + 1493]
    assert gmpy2.next_prime(2**1023 + 1155) == 2**1023 + 1493
    assert all(400 < bin(p).count("1") < p.bit_length() - 200 for p in primes[:2])  # dense, as meant


def test_a_c_test_with_wrong_answers_is_not_used(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(candidates, "fermat_base2", lambda n: True)  # passes everything, 15 included
    detkeygen._best_composite_filter.cache_clear()
    try:
        assert detkeygen._best_composite_filter() is (libcrypto.fermat_base2 or detkeygen._bpsw_decides)
        assert "gives wrong answers" in capsys.readouterr().err
    finally:
        detkeygen._best_composite_filter.cache_clear()


@pytest.mark.parametrize("name", ["c", "openssl"])
def test_each_fermat_test_is_the_fermat_test(name: str) -> None:
    """2^(n-1) mod n == 1: true for primes and for base-2 Fermat pseudoprimes (341, the Carmichael
    number 561, a strong pseudoprime whose Lucas test fails), false for other composites; from
    several threads at once (each has its own BN_CTX)."""
    fermat = _FILTERS[name]
    if fermat is None:
        pytest.skip(f"no {name} base-2 test on this machine")
    (vector, *_) = [v for v in RSA if v["bits"] == 2048]
    key = _rsa_key(base64.b64decode(str(vector["seed"])), 2048).private_numbers()
    numbers = [5, 7, 9, 15, 341, 561, 2047, 3825123056546413051, 2**127 - 1, 2**127 + 1, key.p, key.q, key.p * key.q,
               key.p * 3, (key.p << 64) + 1, *range(1001, 1201, 2)]

    def expected(n: int) -> bool:
        return bool(gmpy2.powmod(2, n - 1, n) == 1)

    assert fermat(341) and fermat(561) and fermat(2047) and fermat(3825123056546413051)
    assert not fermat(key.p * key.q) and fermat(key.p) and fermat(key.q)

    def check_all() -> list[bool]:
        return [fermat(n) == expected(n) for n in numbers * 5]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: check_all(), range(4)))
    assert all(all(r) for r in results)
    assert all(fermat(gmpy2.mpz(n)) == expected(n) for n in numbers)


_PER_THREAD_STATE = {"c": candidates._FermatState, "openssl": libcrypto._Numbers}


@pytest.mark.parametrize("name", ["c", "openssl"])
def test_each_threads_fermat_numbers_are_freed_when_it_ends(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fermat = _FILTERS[name]
    if fermat is None:
        pytest.skip(f"no {name} base-2 test on this machine")
    state = _PER_THREAD_STATE[name]
    freed: list[int] = []
    free = state.__del__
    monkeypatch.setattr(state, "__del__", lambda self: (freed.append(1), free(self)))
    threads = [threading.Thread(target=fermat, args=(2**127 - 1,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()
    assert len(freed) == 8
