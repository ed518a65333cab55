"""Determinism and separation of derived keys and serials."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys

import pytest
from conftest import ISSUED, SEED, SUBJECT, TODAY, material_pems, spec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from pki import CertificateAuthority, KeyType, PkiError, Seed, Validity, build_material
from pki.derive import derive_ec_p256_key, derive_rsa_key, derive_serial
from pki.seed import _encode_label, det_keygen_seed, hkdf_expand

seeds = st.binary(min_size=32, max_size=32).map(Seed)
labels = st.tuples(st.sampled_from(["client", "server", "ca"]), st.text(min_size=1, max_size=12),
                   st.integers(1, 1000))

_CHILD = """
import sys, datetime as dt
sys.path[:0] = ["tests", "."]
from conftest import material_pems, spec
from pki import Seed, build_material
for seed_hex in sys.argv[1:]:
    sys.stdout.write(material_pems(build_material(Seed(bytes.fromhex(seed_hex)), spec(), today=dt.date(2026, 12, 1))))
    sys.stdout.write("\\0")
"""


def test_same_seed_and_config_give_identical_pems_across_processes() -> None:
    """A fresh interpreter (its own hash seed, nothing cached) derives the same PEMs as this one,
    for the suite's seed and two random ones. One child for all three: an interpreter start-up
    costs more than the three derivations."""
    raw = [bytes.fromhex("5e" * 32), os.urandom(32), os.urandom(32)]  # conftest's SEED and two random ones
    hexes = [r.hex() for r in raw]
    child = subprocess.run([sys.executable, "-c", _CHILD, *hexes], capture_output=True, text=True,
                           check=True).stdout.split("\0")[:-1]
    here = [material_pems(build_material(seed, spec(), today=TODAY)) for seed in map(Seed, raw)]
    assert child == here, f"seeds {hexes}"
    for pems in here:
        assert pems.count("BEGIN CERTIFICATE") == 5 and "BEGIN RSA PRIVATE KEY" in pems
    assert len(set(here)) == 3


@settings(max_examples=40, deadline=None)
@given(seeds, seeds, labels, labels)
def test_a_different_seed_or_label_gives_a_different_key(seed_a: Seed, seed_b: Seed, label_a: tuple[str, str, int],
                                                         label_b: tuple[str, str, int]) -> None:
    key_a = derive_ec_p256_key(seed_a, label_a).private_numbers().private_value
    key_b = derive_ec_p256_key(seed_b, label_b).private_numbers().private_value
    assert (key_a == key_b) == (seed_a == seed_b and label_a == label_b)


@settings(max_examples=5, deadline=None)
@given(seeds, st.text(min_size=1, max_size=8), st.integers(1, 50))
def test_rsa_generation_bump_changes_the_key(seed: Seed, name: str, generation: int) -> None:
    key = derive_rsa_key(seed, ("client", name, generation), 2048)
    again = derive_rsa_key(seed, ("client", name, generation), 2048)
    bumped = derive_rsa_key(seed, ("client", name, generation + 1), 2048)
    assert key.private_numbers() == again.private_numbers()
    assert key.public_key().public_numbers().n != bumped.public_key().public_numbers().n
    assert key.key_size == 2048


def test_label_encoding_is_unambiguous() -> None:
    assert derive_serial(SEED, ("ab", "c")) != derive_serial(SEED, ("a", "bc"))
    assert derive_serial(SEED, ("1",)) != derive_serial(SEED, (1,))


def test_serials_never_collide_across_ten_thousand_clients() -> None:
    ca = CertificateAuthority(SEED, SUBJECT, Validity(ISSUED, 3650))
    from pki import ClientSpec
    serials = {ca.client_serial(ClientSpec(f"client-{i}", Validity(ISSUED, 365))) for i in range(10_000)}
    assert len(serials) == 10_000
    assert all(1 << 64 < s < 1 << 127 for s in serials)


@pytest.mark.parametrize("bits", [3072, 4096])
def test_larger_rsa_keys(bits: int) -> None:
    assert derive_rsa_key(SEED, ("ca", 1), bits).key_size == bits


def test_seed_errors_name_the_setting_and_never_echo_the_value() -> None:
    with pytest.raises(PkiError, match=r"^slb-mtls:pkiSeed: expected 64 hexadecimal characters .* got 6 characters; make one with:  openssl rand -hex 32 \| pulumi config set --secret pkiSeed$"):
        Seed.from_hex("abcdef", setting="slb-mtls:pkiSeed")
    secretish = "zz" + "a" * 62
    with pytest.raises(PkiError, match="not all hexadecimal") as info:
        Seed.from_hex(secretish, setting="slb-mtls:pkiSeed")
    assert secretish not in str(info.value)
    assert repr(SEED) == "Seed(<secret>)"


def test_unknown_key_type() -> None:
    with pytest.raises(PkiError, match="clients\\[0\\].keyType: unknown key type 'dsa-1024'; allowed: rsa-2048"):
        KeyType.parse("dsa-1024", setting="clients[0].keyType")


def test_ca_generation_rotates_everything() -> None:
    one = build_material(SEED, spec(), today=TODAY)
    two = build_material(SEED, spec(ca_generation=2), today=TODAY)
    assert one.ca.issued.fingerprint != two.ca.issued.fingerprint
    assert one.ca.private_key.private_numbers() != two.ca.private_key.private_numbers()
    # client keys survive a CA rotation; their certificates do not
    assert one.clients["alice"].private_key_pem() == two.clients["alice"].private_key_pem()
    assert one.clients["alice"].fingerprint != two.clients["alice"].fingerprint


@pytest.mark.usefixtures("own_rsa_keys")
def test_keys_from_the_helper_process_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans stay byte-identical whether keys were derived here or by pki.worker (five revocations:
    six CA epochs and the server, enough keys for the key pool's helper)."""
    from conftest import client, record_helpers, spec

    from pki import Revocation, keypool

    def pems() -> str:
        keypool._CACHE.clear()
        clients = tuple(client(f"c{i}") for i in range(7))
        m = build_material(SEED, spec(tuple(Revocation(f"c{i}") for i in range(5)), clients=clients), today=TODAY)
        return "".join([m.ca.issued.certificate_pem, m.crl_pem, *m.retired_ca_fingerprints,
                        *(c.certificate_pem + c.private_key_pem() for c in m.clients.values())])

    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "1")
    alone = pems()
    monkeypatch.setenv("SLB_MTLS_PKI_WORKERS", "2")
    calls = record_helpers(monkeypatch)
    assert pems() == alone
    assert calls, "the helper process was not used"


# RFC 5869 appendix A, test cases 1 and 3 (HKDF-SHA256): (IKM, salt, info, L, PRK, OKM)
_RFC5869 = [
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    ("0b" * 22, "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "prk", "okm"), _RFC5869)
def test_hkdf_expand_gives_rfc5869s_vectors(ikm: str, salt: str, info: str, length: int, prk: str, okm: str) -> None:
    """pki.seed's HKDF is the standard library's HMAC-SHA256 (it must load before cryptography)."""
    assert hmac.digest(bytes.fromhex(salt), bytes.fromhex(ikm), "sha256").hex() == prk
    assert hkdf_expand(bytes.fromhex(prk), bytes.fromhex(info), length).hex() == okm


@settings(max_examples=200, deadline=None)
@given(seeds, st.one_of(labels, st.tuples(st.text(max_size=40))), st.sampled_from([1, 16, 31, 32, 33, 64, 100]))
def test_seed_digest_is_cryptographys_hkdf(seed: Seed, label: tuple[str | int, ...], length: int) -> None:
    """Every derived value (det-keygen seeds, serials) is what cryptography's HKDF gave before."""
    expected = HKDF(algorithm=hashes.SHA256(), length=length, salt=b"slb-mtls/pki/v1",
                    info=_encode_label(label)).derive(bytes.fromhex(seed.secret_hex()))
    assert seed.digest(label, length) == expected


def test_hkdf_expand_refuses_lengths_it_cannot_give() -> None:
    for length in (0, 255 * 32 + 1):
        with pytest.raises(ValueError, match="HKDF-SHA256 gives 1 to 8160 bytes"):
            hkdf_expand(b"\0" * 32, b"", length)


def test_derived_values_are_pinned() -> None:
    """Known answers (from cryptography's HKDF, before pki.seed): a change here changes every key,
    serial and certificate of every deployed stack."""
    seed = Seed(bytes.fromhex("5e" * 32))
    assert seed.digest(("seed-identity",)).hex() == "ec5a38761cc6ee5f5f65700c8e1817d3726f43b3450e12039e8669fa72bbd785"
    assert det_keygen_seed(seed, KeyType.EC_P256, ("client", "alice", 1)).hex() == (
        "4463a30b3bb93235e19ba842802323e1f9bca6699fc5bd6e03c4bfc3589c8c73")
    assert derive_serial(seed, ("tbs", "00")) == 66002314994946264435150793386359877790
