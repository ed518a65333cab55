"""The CLB emulator: one refusal per rule, each with CLB's error code and the stack key behind it."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from stackrun import ROOT, plan_stack, project_with, run_cli

from slbmtls import clb
from slbmtls.emulator import ClbError, Emulator

Inputs = dict[str, Any]


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    """The dev plan as JSON, secrets shown: the valid baseline every case edits one value of."""
    return plan_stack().to_json(show_secrets=True)


def resource(doc: dict[str, Any], token: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for r in doc["resources"] if r["type"] == token))


def loaded(doc: dict[str, Any], *skip: str) -> Emulator:
    """An emulator holding the dev plan's resources, except the types in `skip`."""
    emu = Emulator()
    for token in (clb.LOAD_BALANCER, clb.CA_CERTIFICATE, clb.SERVER_CERTIFICATE, clb.LISTENER):
        if token not in skip:
            r = resource(doc, token)
            emu.create(token, r["name"], r["id"], r["inputs"])
    return emu


def refused(action: Callable[[], None]) -> ClbError:
    with pytest.raises(ClbError) as caught:
        action()
    return caught.value


def key_pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat = serialization.PrivateFormat.TraditionalOpenSSL,
            password: bytes | None = None) -> str:
    enc: serialization.KeySerializationEncryption = (serialization.BestAvailableEncryption(password) if password
                                                     else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc).decode()


def self_signed(key: Any) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(start).not_valid_after(start + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


# -- load balancer -----------------------------------------------------------------------------

LB_CASES = [
    ("name", {"loadBalancerName": "1-starts-with-a-digit"}, "InvalidParameter", "loadBalancer.name"),
    ("tags", {"tags": {f"k{i}": "v" for i in range(11)}}, "InvalidParameter", "loadBalancer.tags"),
    ("tag key", {"tags": {"aliyun-x": "v"}}, "InvalidParameter", "loadBalancer.tags"),
    ("shared", {"instanceChargeType": "PayBySpec"}, "ShareSlbHaltSales", "loadBalancer.instanceChargeType"),
    ("by spec", {"instanceChargeType": "PayBySpec", "loadBalancerSpec": "slb.s1.small"}, "InvalidParameter",
     "loadBalancer.instanceChargeType"),
    ("clcu+bandwidth", {"internetChargeType": "PayByBandwidth"}, "InvalidParameter", "loadBalancer.internetChargeType"),
    ("intranet", {"addressType": "intranet"}, "InvalidParameter", "loadBalancer.vswitchId"),
    ("address type", {"addressType": "public"}, "InvalidParameter", "loadBalancer.addressType"),
]


@pytest.mark.parametrize(("case", "change", "code", "key"), LB_CASES, ids=[c[0] for c in LB_CASES])
def test_load_balancer_refusals(dev: dict[str, Any], case: str, change: Inputs, code: str, key: str) -> None:
    lb = resource(dev, clb.LOAD_BALANCER)
    error = refused(lambda: Emulator().create(clb.LOAD_BALANCER, lb["name"], lb["id"], {**lb["inputs"], **change}))
    assert (error.code, error.key) == (code, f"slb-mtls:{key}")


# -- certificates ------------------------------------------------------------------------------


def test_ca_certificate_key_sizes_and_types(dev: dict[str, Any]) -> None:
    ca = resource(dev, clb.CA_CERTIFICATE)
    for key in (rsa.generate_private_key(65537, 3072), ec.generate_private_key(ec.SECP256R1())):
        error = refused(lambda k=key: Emulator().create(clb.CA_CERTIFICATE, ca["name"], ca["id"],
                                                        {**ca["inputs"], "caCertificate": self_signed(k)}))
        assert (error.code, error.key) == ("InvalidParameter", "slb-mtls:pki.keyBits")
        assert "CLB takes RSA 2048 or 4096" in error.message


def test_ca_certificate_name(dev: dict[str, Any]) -> None:
    ca = resource(dev, clb.CA_CERTIFICATE)
    error = refused(lambda: Emulator().create(clb.CA_CERTIFICATE, ca["name"], ca["id"],
                                              {**ca["inputs"], "caCertificateName": "x" * 81}))
    assert (error.code, error.key) == ("InvalidParameter", "slb-mtls:loadBalancer.name")


def test_pem_layout(dev: dict[str, Any]) -> None:
    ca = resource(dev, clb.CA_CERTIFICATE)
    pem = ca["inputs"]["caCertificate"]
    body = pem.splitlines()
    long_lines = "\n".join([body[0], "".join(body[1:-1]), body[-1]]) + "\n"
    blank = pem.replace(body[1] + "\n", body[1] + "\n\n", 1)
    with_dh = pem + "-----BEGIN DH PARAMETERS-----\nMAo=\n-----END DH PARAMETERS-----\n"
    for bad, words in ((long_lines, "64 per line"), (blank, "blank line"), (with_dh, "DH PARAMETERS")):
        error = refused(lambda b=bad: Emulator().create(clb.CA_CERTIFICATE, ca["name"], ca["id"],
                                                        {**ca["inputs"], "caCertificate": b}))
        assert words in error.message and error.key == "slb-mtls:pki.keyBits"


def test_server_private_key_refusals(dev: dict[str, Any], rsa2048: rsa.RSAPrivateKey) -> None:
    server = resource(dev, clb.SERVER_CERTIFICATE)
    leaf_key = serialization.load_pem_private_key(server["inputs"]["privateKey"].encode(), password=None)
    assert isinstance(leaf_key, rsa.RSAPrivateKey)
    cases = [
        (key_pem(leaf_key, password=b"secret-pass"), "PrivateKeyEncryption"),
        (key_pem(leaf_key, serialization.PrivateFormat.PKCS8, password=b"secret-pass"), "PrivateKeyEncryption"),
        (key_pem(leaf_key, serialization.PrivateFormat.PKCS8), "KeyFormatError"),  # not PKCS#1
        (key_pem(rsa2048), "CertificateNotMatchPrivateKey"),
        (key_pem(leaf_key).replace("\n", "\n\n", 2), "KeyFormatError"),
    ]
    for pem, code in cases:
        error = refused(lambda p=pem: Emulator().create(clb.SERVER_CERTIFICATE, server["name"], server["id"],
                                                        {**server["inputs"], "privateKey": p}))
        assert (error.code, error.key) == (code, "slb-mtls:serverPrivateKey"), (code, error)
    # the plan's own upload is accepted: unencrypted PKCS#1, matching, 64-character lines
    Emulator().create(clb.SERVER_CERTIFICATE, server["name"], server["id"], server["inputs"])


def test_server_certificate_key_size(dev: dict[str, Any]) -> None:
    server = resource(dev, clb.SERVER_CERTIFICATE)
    key = rsa.generate_private_key(65537, 3072)
    error = refused(lambda: Emulator().create(clb.SERVER_CERTIFICATE, server["name"], server["id"],
                                              {"serverCertificate": self_signed(key), "privateKey": key_pem(key)}))
    assert error.code == "InvalidParameter" and error.key.startswith("slb-mtls:pki.keyBits")  # type: ignore[union-attr]


def test_a_certificate_in_use_is_not_deleted(dev: dict[str, Any]) -> None:
    emu = loaded(dev)
    ca, server = resource(dev, clb.CA_CERTIFICATE), resource(dev, clb.SERVER_CERTIFICATE)
    error = refused(lambda: emu.delete(clb.CA_CERTIFICATE, ca["name"], ca["id"], ca["inputs"]))
    assert error.code == "CertificateAndPrivateKeyIsRefered" and "does not retry" in error.message
    error = refused(lambda: emu.delete(clb.SERVER_CERTIFICATE, server["name"], server["id"], server["inputs"]))
    assert error.code == "CertificateAndPrivateKeyIsRefered" and "retried for 3 minutes" in error.message
    listener = resource(dev, clb.LISTENER)
    emu.delete(clb.LISTENER, listener["name"], listener["id"], listener["inputs"])
    emu.delete(clb.CA_CERTIFICATE, ca["name"], ca["id"], ca["inputs"])  # free now


# -- listener ----------------------------------------------------------------------------------

LISTENER_CASES = [
    ("port", {"backendPort": 0}, "InvalidParameter", "listener.backendPort"),
    ("bandwidth range", {"bandwidth": 2000}, "InvalidParameter", "listener.bandwidth"),
    ("bandwidth by traffic", {"bandwidth": 100}, "InvalidParameter", "listener.bandwidth"),
    ("scheduler", {"scheduler": "sch"}, "InvalidParameter", "listener.scheduler"),
    ("tls policy", {"tlsCipherPolicy": "tls_cipher_policy_custom"}, "InvalidParameter", "listener.tlsCipherPolicy"),
    ("http2", {"enableHttp2": "yes"}, "InvalidParameter", "listener.http2"),
    ("idle", {"idleTimeout": 61}, "InvalidParameter", "listener.idleTimeout"),
    ("request", {"requestTimeout": 0}, "InvalidParameter", "listener.requestTimeout"),
    ("timeout < interval", {"healthCheckTimeout": 3, "healthCheckInterval": 5}, "InvalidParameter",
     "listener.healthCheck.timeout"),
    ("interval", {"healthCheckInterval": 51}, "InvalidParameter", "listener.healthCheck.interval"),
    ("threshold", {"healthyThreshold": 1}, "InvalidParameter", "listener.healthCheck.healthyThreshold"),
    ("uri", {"healthCheckUri": "/a b"}, "InvalidParameter", "listener.healthCheck.uri"),
    ("domain", {"healthCheckDomain": "*.example.com"}, "InvalidParameter", "listener.healthCheck.domain"),
    ("$_ip", {"healthCheckDomain": "$_ip"}, "InvalidParameter", "listener.healthCheck.domain"),
    ("codes", {"healthCheckHttpCode": "http_2xx,http_6xx"}, "InvalidParameter", "listener.healthCheck.httpCodes"),
    ("method", {"healthCheckMethod": "post"}, "InvalidParameter", "listener.healthCheck.method"),
    ("connect port", {"healthCheckConnectPort": 70000}, "InvalidParameter", "listener.healthCheck.connectPort"),
]


@pytest.mark.parametrize(("case", "change", "code", "key"), LISTENER_CASES, ids=[c[0] for c in LISTENER_CASES])
def test_listener_refusals(dev: dict[str, Any], case: str, change: Inputs, code: str, key: str) -> None:
    emu = loaded(dev, clb.LISTENER)
    listener = resource(dev, clb.LISTENER)
    error = refused(lambda: emu.create(clb.LISTENER, listener["name"], listener["id"],
                                       {**listener["inputs"], **change}))
    assert (error.code, error.key) == (code, f"slb-mtls:{key}")


def test_one_listener_per_port(dev: dict[str, Any]) -> None:
    emu = loaded(dev)
    listener = resource(dev, clb.LISTENER)
    error = refused(lambda: emu.create(clb.LISTENER, "second", listener["id"], listener["inputs"]))
    assert (error.code, error.key) == ("ListenerAlreadyExists", "slb-mtls:listener.frontendPort")
    emu.create(clb.LISTENER, "other-port", "x", {**listener["inputs"], "frontendPort": 8443})


def test_listener_needs_its_load_balancer_and_certificates(dev: dict[str, Any]) -> None:
    listener = resource(dev, clb.LISTENER)
    for skip, code in ((clb.LOAD_BALANCER, "InvalidLoadBalancerId.NotFound"),
                       (clb.SERVER_CERTIFICATE, "ServerCertificateId.NotFound"),
                       (clb.CA_CERTIFICATE, "CACertificateId.NotFound")):
        emu = loaded(dev, clb.LISTENER, skip)
        error = refused(lambda e=emu: e.create(clb.LISTENER, listener["name"], listener["id"], listener["inputs"]))
        assert error.code == code


# -- backends ----------------------------------------------------------------------------------


def test_backend_refusals(dev: dict[str, Any]) -> None:
    emu = loaded(dev)
    backends = resource(dev, clb.BACKEND_SERVER)
    many = [{"serverId": f"i-bp1test{n:012d}", "weight": 100, "type": "ecs"} for n in range(21)]
    cases = [
        (many, "at most 20"),
        ([{"serverId": "i-bp1test000000000001", "weight": 101, "type": "ecs"}], "weight"),
        ([{"serverId": "i-bp1test000000000001", "weight": 1, "type": "vm"}], "type"),
        ([{"serverId": "web-1", "weight": 1, "type": "ecs"}], "serverId"),
        ([many[0], many[0]], "twice"),
    ]
    for servers, words in cases:
        error = refused(lambda s=servers: emu.create(clb.BACKEND_SERVER, backends["name"], backends["id"],
                                                     {**backends["inputs"], "backendServers": s}))
        assert words in error.message and error.key == "slb-mtls:backends (with demoBackends.count)"
    # an update is sent 20 at a time by the provider: more than 20 is fine there
    emu.create(clb.BACKEND_SERVER, backends["name"], backends["id"], backends["inputs"])
    emu.update(clb.BACKEND_SERVER, backends["name"], backends["id"], backends["inputs"],
               {**backends["inputs"], "backendServers": many})


# -- through the plan ----------------------------------------------------------------------------


def test_a_plan_clb_would_refuse_fails_once_naming_the_key(tmp_path: Any) -> None:
    """Config validation may catch it first; either way: exit 2, the key, no traceback."""
    prod = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "keyBits: 4096" in prod
    project = project_with(tmp_path, {"prod": prod.replace("keyBits: 4096", "keyBits: 3072")})
    result = run_cli("plan", "--stack", "prod", project=project)
    assert result.returncode == 2
    assert "slb-mtls:pki.keyBits" in result.stderr and "Traceback" not in result.stderr
