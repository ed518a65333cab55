"""RSA keys by det-keygen, cached, and derived on two cores when a plan needs many.

A helper process (`python -m pki.keyworker`, plain subprocess: no fork of a process that may hold
Pulumi's threads, no re-import of the program's __main__) receives det-keygen seeds only, never the
stack seed, and returns the keys; the parent derives the other half meanwhile. Results are the
same keys whichever process made them, so plans stay byte-identical. SLB_MTLS_PKI_WORKERS=1 turns
the helper off; if it fails for any reason the parent derives everything itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from pki import detkeygen

MIN_PARALLEL: Final = 6  # below this, starting the helper (~0.2 s) costs more than it saves
_CACHE: dict[tuple[bytes, int], rsa.RSAPrivateKey] = {}


def rsa_key(dk_seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    key = _CACHE.get((dk_seed, bits))
    if key is None:
        key = _CACHE[(dk_seed, bits)] = detkeygen.rsa_key(dk_seed, bits)
    return key


def _workers() -> int:
    configured = os.environ.get("SLB_MTLS_PKI_WORKERS", "")
    if configured.isdigit():
        return max(1, int(configured))
    return min(2, os.cpu_count() or 1)


def prefetch(requests: Iterable[tuple[bytes, int]]) -> None:
    """Derive the RSA keys not cached yet, half of them in a helper process when worth it."""
    todo = sorted({r for r in requests if r not in _CACHE}, key=lambda r: (-r[1], r[0]))
    if len(todo) < MIN_PARALLEL or _workers() < 2:
        return  # derived lazily, in this process
    theirs, ours = todo[0::2], todo[1::2]
    result: list[bytes] = []
    try:
        # Only what it needs to start: never the caller's environment, which may hold PKI_SEED.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        helper = subprocess.Popen([sys.executable, "-m", "pki.keyworker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return
    request = "".join(f"{bits} {seed.hex()}\n" for seed, bits in theirs).encode()
    reader = threading.Thread(target=lambda: result.append(helper.communicate(request)[0]), daemon=True)
    reader.start()
    for seed, bits in ours:
        rsa_key(seed, bits)
    reader.join()
    lines = result[0].split() if result and helper.returncode == 0 else []
    if len(lines) != len(theirs):
        return  # the helper failed: the keys are derived here when asked for
    for (seed, bits), line in zip(theirs, lines, strict=True):
        key = load_der_private_key(bytes.fromhex(line.decode()), None, unsafe_skip_rsa_key_validation=True)
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits:
            _CACHE[(seed, bits)] = key
