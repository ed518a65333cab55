"""Seeds: 64 hex characters of real randomness, refused otherwise without echoing the value."""

from __future__ import annotations

import os

import pytest

from pki import PkiError, Seed

WEAK = {
    "all zero": "00" * 32,
    "all ff": "ff" * 32,
    "01 repeated": "01" * 32,
    "short pattern": "c0ffee" * 10 + "c0de",
    "hex digits in order": "0123456789abcdef" * 4,
    "counting bytes": bytes(range(32)).hex(),
    "counting down by 7": bytes((200 - 7 * i) % 256 for i in range(32)).hex(),
    "text as hex": b"correct horse battery staple!!!!".hex(),
    "two halves alternating": ("a5" * 8 + "5a" * 8) * 2,
}


@pytest.mark.parametrize("text", WEAK.values(), ids=WEAK.keys())
def test_low_entropy_seeds_are_refused_with_the_way_to_make_one(text: str) -> None:
    with pytest.raises(PkiError) as info:
        Seed.from_hex(text, setting="slb-mtls:pkiSeed")
    message = str(info.value)
    assert message.startswith("slb-mtls:pkiSeed: not random enough")
    assert "openssl rand -hex 32 | pulumi config set --secret pkiSeed" in message
    assert "$(" not in message  # never the form that puts the seed on a command line
    assert text not in message and text[:8] not in message


def test_random_seeds_pass() -> None:
    for _ in range(2000):
        Seed.from_hex(os.urandom(32).hex(), setting="s")
    Seed.from_hex(" " + os.urandom(32).hex().upper() + "\n", setting="s")  # `pulumi config get` adds a newline
