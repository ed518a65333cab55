"""The real program under Pulumi's mock engine: every resource and input that matters."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification
from stackrun import TEST_SEED, diff, plan_stack, stack_values

from slbmtls import clb
from slbmtls.infra import demo_user_data
from slbmtls.plan import SECRET_MARK, Plan, Secret

LB = "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer"
CA = "alicloud:slb/caCertificate:CaCertificate"
SERVER = "alicloud:slb/serverCertificate:ServerCertificate"
LISTENER = "alicloud:slb/listener:Listener"
BACKENDS = "alicloud:slb/backendServer:BackendServer"
INSTANCE = "alicloud:ecs/instance:Instance"


@pytest.fixture
def dev() -> Plan:
    """A fresh program run for every test."""
    return plan_stack("dev")


@pytest.fixture
def prod() -> Plan:
    return plan_stack("prod")


def test_dev_declares_the_tutorial_setup(dev: Plan) -> None:
    component = dev.one("slb-mtls:index:MutualTlsLoadBalancer")
    assert component.name == "mtls"
    assert all(r.parent == "mtls" for r in dev.resources if r is not component)
    lb = dev.one(LB).inputs
    assert lb == {"addressType": "internet", "paymentType": "PayAsYouGo", "instanceChargeType": "PayByCLCU",
                  "internetChargeType": "PayByTraffic", "deleteProtection": "off", "loadBalancerName": "slb-mtls-dev",
                  "tags": {"managed-by": "slb-mtls", "stack": "dev", "environment": "dev"}}
    listener = dev.one(LISTENER)
    assert listener.name == "mtls-https-443"
    assert listener.id == f"{dev.one(LB).id}:https:443"
    i = listener.inputs
    assert (i["protocol"], i["frontendPort"], i["backendPort"], i["bandwidth"]) == ("https", 443, 80, -1)
    assert (i["scheduler"], i["tlsCipherPolicy"], i["enableHttp2"]) == ("rr", "tls_cipher_policy_1_2_strict", "on")
    assert i["loadBalancerId"] == dev.one(LB).id
    # the pair that turns on two-way authentication points at the certificate resources
    assert i["caCertificateId"] == dev.one(CA).id
    assert i["serverCertificateId"] == dev.one(SERVER).id
    assert (i["healthCheck"], i["healthCheckUri"], i["healthCheckMethod"]) == ("on", "/healthz", "get")
    assert i["healthCheckHttpCode"] == "http_2xx,http_3xx"
    assert (i["healthCheckInterval"], i["healthCheckTimeout"], i["healthyThreshold"], i["unhealthyThreshold"]) == (
        2, 5, 3, 3)
    assert i["xForwardedFor"] == {"retriveSlbProto": True, "retriveSlbIp": False, "retriveSlbId": False}
    assert "ssl_certificate_id" not in i and "sslCertificateId" not in i


def test_dev_demo_backends(dev: Plan) -> None:
    instances = dev.of_type(INSTANCE)
    assert [r.name for r in instances] == ["mtls-demo-1", "mtls-demo-2"]
    vswitch, group = dev.one("alicloud:vpc/switch:Switch"), dev.one("alicloud:ecs/securityGroup:SecurityGroup")
    for instance in instances:
        i = instance.inputs
        assert i["internetMaxBandwidthOut"] == 0  # no public address: reachable only through the CLB
        assert (i["vswitchId"], i["securityGroups"]) == (vswitch.id, [group.id])
        assert i["imageId"] == "aliyun_3_x64_20G_alibase_20251030.vhd"  # from ecs.get_images
        assert (i["instanceType"], i["instanceChargeType"]) == ("ecs.t6-c1m1.large", "PostPaid")
    assert "slb-mtls demo backend 2" in instances[1].inputs["userData"]
    assert vswitch.inputs["vpcId"] == dev.one("alicloud:vpc/network:Network").id
    assert "/srv/demo/serve.py 80" in instances[0].inputs["userData"]
    rule = dev.one("alicloud:ecs/securityGroupRule:SecurityGroupRule").inputs
    assert (rule["type"], rule["portRange"], rule["cidrIp"]) == ("ingress", "80/80", "100.64.0.0/10")
    assert dev.one("alicloud:vpc/switch:Switch").inputs["zoneId"] == "cn-hangzhou-h"
    backends = dev.one(BACKENDS).inputs
    assert backends["loadBalancerId"] == dev.one(LB).id
    assert backends["backendServers"] == [{"serverId": r.id, "weight": 100, "type": "ecs"} for r in instances]


def test_prod_differs_where_production_should(prod: Plan) -> None:
    lb = prod.one(LB).inputs
    assert lb["deleteProtection"] == "on"
    assert prod.one(LISTENER).inputs["tlsCipherPolicy"] == "tls_cipher_policy_1_2_strict_with_1_3"
    assert prod.one(LISTENER).inputs["scheduler"] == "wrr"
    assert [s["weight"] for s in prod.one(BACKENDS).inputs["backendServers"]] == [100, 100, 50]
    assert not prod.of_type(INSTANCE)
    ca = x509.load_pem_x509_certificate(prod.one(CA).inputs["caCertificate"].encode())
    assert ca.public_key().key_size == 4096  # type: ignore[union-attr]  # CLB uploads: 2048 or 4096


def test_certificate_resources_are_named_by_fingerprint(dev: Plan) -> None:
    ca, server = dev.one(CA), dev.one(SERVER)
    assert ca.name == f"mtls-ca-{dev.outputs['caFingerprint'][:12]}"
    assert ca.inputs["caCertificateName"] == f"slb-mtls-dev-ca-{dev.outputs['caEpoch']}-{dev.outputs['caFingerprint'][:12]}"
    assert server.name == f"mtls-server-{dev.outputs['serverCertificateFingerprint'][:12]}"
    # a readable console name, unique per certificate, so a create-first replacement cannot collide
    assert server.inputs["name"] == f"slb-mtls-dev-server-{dev.outputs['serverCertificateFingerprint'][:12]}"


def test_certificate_names_stay_within_clb_rules_for_the_longest_lb_name() -> None:
    plan = plan_stack(loadBalancer={"name": "L" + "b" * 79, "tags": {"environment": "dev"}})
    for resource, key in ((plan.one(CA), "caCertificateName"), (plan.one(SERVER), "name")):
        name = resource.inputs[key]
        assert clb.CERTIFICATE_NAME.allows(name), name
        assert name.endswith(resource.name.rsplit("-", 1)[1])  # the fingerprint suffix survives


def test_demo_backend_server_runs_on_python_3_6(tmp_path: Path) -> None:
    """Alibaba Cloud Linux 3 ships python3 3.6: the demo server must parse as 3.6 and serve its page."""
    script = demo_user_data(1, 80)
    server = script.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    ast.parse(server, feature_version=(3, 6))
    assert "--directory" not in script and "ThreadingHTTPServer" not in server
    page = tmp_path / "page.txt"
    page.write_text("slb-mtls demo backend 1: test\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", server.replace("/srv/demo/page.txt", str(page)), str(port)])
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert response.read() == b"slb-mtls demo backend 1: test\n"
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("the demo server never answered")
    finally:
        proc.kill()
        proc.wait()


def test_intranet_load_balancer() -> None:
    plan = plan_stack(loadBalancer={"addressType": "intranet", "vswitchId": "vsw-bp1internal"})
    lb = plan.one(LB).inputs
    assert (lb["addressType"], lb["vswitchId"]) == ("intranet", "vsw-bp1internal")
    assert "internetChargeType" not in lb


def test_certificates_verify_against_each_other(dev: Plan) -> None:
    ca = x509.load_pem_x509_certificate(dev.one(CA).inputs["caCertificate"].encode())
    server = dev.one(SERVER).inputs
    chain = x509.load_pem_x509_certificates(server["serverCertificate"].encode())
    key = server["privateKey"]
    assert isinstance(key, Secret)
    assert key.value.startswith("-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1
    at = chain[0].not_valid_before_utc
    store = verification.Store([ca])
    verification.PolicyBuilder().store(store).time(at).build_server_verifier(
        x509.DNSName("mtls.example.com")).verify(chain[0], chain[1:])
    for name, pem in dev.outputs["clientCertificatePems"].items():
        cert = x509.load_pem_x509_certificate(pem.encode())
        verification.PolicyBuilder().store(store).time(at).build_client_verifier().verify(cert, [])
        assert dev.outputs["clients"][name]["fingerprint"] == cert.fingerprint(
            __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()).hex()


def test_outputs(dev: Plan) -> None:
    out = dev.outputs
    assert out["url"] == "https://mtls.example.com/"
    assert out["address"].startswith("203.0.113.")
    assert out["listenerId"] == dev.one(LISTENER).id
    assert set(out["clients"]) == {"alice", "bob", "build-agent"}
    assert "clientPrivateKeyPems" not in out  # client keys stay out of state: make bundle re-derives them
    assert out["revokedClients"] == [] and out["caEpoch"].startswith("g1.r0.")
    assert out["retiredCaFingerprints"] == []  # nothing trusted before, nothing retired


def test_nothing_secret_in_the_clear(dev: Plan, prod: Plan) -> None:
    for plan in (dev, prod):
        text = json.dumps(plan.to_json(show_secrets=False))
        assert "PRIVATE KEY" not in text
        assert TEST_SEED not in text
        assert text.count(SECRET_MARK) == 1  # the server key input: the only private key in state
        assert not any(isinstance(v, Secret) for v in plan.outputs.values())
        revealed = json.dumps(plan.to_json(show_secrets=True))
        assert "PRIVATE KEY" in revealed and TEST_SEED not in revealed


# Plans byte-identical across processes: test_cli's `make plan` smoke test compares the JSON a fresh
# interpreter writes with the one this process writes.


def test_ca_rotation_replaces_certificates_and_updates_the_listener_in_place(dev: Plan) -> None:
    pki = stack_values()["slb-mtls:pki"]
    rotated = plan_stack(pki={**pki, "caGeneration": 2})
    changes = diff(dev, rotated)
    assert [n.rsplit("-", 1)[0] for n in changes["create"]] == ["mtls-ca", "mtls-server"]
    assert [n.rsplit("-", 1)[0] for n in changes["delete"]] == ["mtls-ca", "mtls-server"]
    assert changes["update"] == ["mtls-https-443"]
    assert rotated.outputs["caEpoch"].startswith("g2.r0.")


def test_server_rotation_touches_only_the_server_certificate(dev: Plan) -> None:
    pki = stack_values()["slb-mtls:pki"]
    changes = diff(dev, plan_stack(pki={**pki, "serverGeneration": 2}))
    assert [n.rsplit("-", 1)[0] for n in changes["create"] + changes["delete"]] == ["mtls-server"] * 2
    assert changes["update"] == ["mtls-https-443"]


def test_reissuing_one_client_changes_no_resource(dev: Plan) -> None:
    clients = stack_values()["slb-mtls:clients"]
    clients[0] = {**clients[0], "generation": 2}
    after = plan_stack(clients=clients)
    assert diff(dev, after) == {"create": [], "delete": [], "update": []}
    changed = [n for n in dev.outputs["clients"] if dev.outputs["clients"][n] != after.outputs["clients"][n]]
    assert changed == ["alice"]


def test_revocation_rotates_the_ca_and_names_who_needs_new_bundles(dev: Plan) -> None:
    after = plan_stack(revoked=["bob"])
    changes = diff(dev, after)
    assert [n.rsplit("-", 1)[0] for n in changes["create"]] == ["mtls-ca", "mtls-server"]
    assert changes["update"] == ["mtls-https-443"]
    assert after.outputs["revokedClients"] == ["bob"]
    assert set(after.outputs["clients"]) == {"alice", "build-agent"}
    assert any("revoked bob" in w and "alice, build-agent need new bundles" in w for w in after.warnings)
    assert "BEGIN X509 CRL" in after.outputs["crlPem"]


def test_expiry_warnings_name_the_renewal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLB_MTLS_TODAY", "2027-11-10")  # clients (365 days) end 2027-11-27
    plan = plan_stack()
    expiring = [w for w in plan.warnings if "expires in 17 days" in w]
    assert len(expiring) == 3
    assert any("client 'alice'" in w and 'set issued: "2027-11-10" on client \'alice\'' in w for w in expiring)
    monkeypatch.setenv("SLB_MTLS_TODAY", "2026-12-01")
    assert not [w for w in plan_stack().warnings if "expire" in w]


def test_ec_clients_are_flagged_as_unverified_on_clb() -> None:
    """dev's build-agent has an EC key: CLB does not document EC client certificates."""
    (warning,) = [w for w in plan_stack().warnings if "EC P-256" in w]
    assert warning.startswith("clients build-agent use EC P-256 keys") and "make verify" in warning
    rsa_only = plan_stack(clients=[{"name": "alice"}])
    assert not rsa_only.warnings


def test_invalid_config_stops_before_any_resource() -> None:
    import pulumi
    with pytest.raises(pulumi.RunError, match="slb-mtls:listener.frontendPort: 70000 is not allowed"):
        plan_stack(listener={"frontendPort": 70000})


def test_plain_text_seed_is_refused() -> None:
    import pulumi
    with pytest.raises(pulumi.RunError, match="pkiSeed: stored in plain text"):
        plan_stack(seed_secret=False)


def test_a_misspelt_top_level_key_is_reported_by_the_program() -> None:
    import pulumi
    with pytest.raises(pulumi.RunError, match="slb-mtls:clientz: unknown setting; known: domain"):
        plan_stack(clientz=[{"name": "typo"}])
