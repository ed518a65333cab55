"""Each runbook procedure in the README, as the plan change it describes."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from stackrun import ROOT, plan_stack, project_with, run_cli, stack_values

from slbmtls.plan import Secret, diff_documents

SERVER = "alicloud:slb/serverCertificate:ServerCertificate"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Trust Services"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@functools.cache
def purchased_certificate(domain: str) -> tuple[str, str, rsa.RSAPrivateKey]:
    """A 'commercial' chain: root -> intermediate -> leaf, returned root first (the wrong order).
    Made once per domain and process (three random RSA keys cost ~0.25 s; five tests use it), so the
    plans that carry it are shared too."""
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    keys = [rsa.generate_private_key(65537, 2048) for _ in range(3)]
    names = [_name("Test Root"), _name("Test Intermediate"), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])]
    certs = []
    for i in range(3):
        issuer = i - 1 if i else 0
        builder = (x509.CertificateBuilder().subject_name(names[i]).issuer_name(names[issuer])
                   .public_key(keys[i].public_key()).serial_number(1000 + i)
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=398 if i == 2 else 3650))
                   .add_extension(x509.BasicConstraints(ca=i < 2, path_length=None), critical=True))
        if i == 2:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        certs.append(builder.sign(keys[issuer], hashes.SHA256()))
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    key = keys[2].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"vendor-passphrase")).decode()
    return chain, key, keys[2]


def test_add_a_client_changes_no_resource_only_outputs() -> None:
    before = plan_stack()
    clients = [*stack_values()["slb-mtls:clients"], {"name": "dave", "email": "dave@example.com"}]
    after = plan_stack(clients=clients)
    change = diff_documents(before.to_json(show_secrets=True), after.to_json(show_secrets=True))
    assert change.resource_changes == {"create": [], "delete": [], "update": []}
    assert "clients.dave" in change.outputs and "clientCertificatePems.dave" in change.outputs
    assert not any(o.startswith("clients.alice") for o in change.outputs)


def test_ca_rotation_updates_only_certificate_ids_on_the_listener() -> None:
    pki = stack_values()["slb-mtls:pki"]
    change = diff_documents(plan_stack().to_json(show_secrets=True),
                            plan_stack(pki={**pki, "caGeneration": 2}).to_json(show_secrets=True))
    assert change.update == [("alicloud:slb/listener:Listener", "mtls-https-443",
                              ["caCertificateId", "serverCertificateId"])]


def test_bring_a_purchased_server_certificate() -> None:
    chain, key, leaf_key = purchased_certificate("mtls.example.com")
    plan = plan_stack(serverCertificate=chain, serverPrivateKey=key, serverPrivateKeyPassphrase="vendor-passphrase")
    server = plan.one(SERVER).inputs
    uploaded = x509.load_pem_x509_certificates(server["serverCertificate"].encode())
    assert [c.subject.rfc4514_string() for c in uploaded] == [
        "CN=mtls.example.com", "CN=Test Intermediate,O=Test Trust Services", "CN=Test Root,O=Test Trust Services"]
    assert isinstance(server["privateKey"], Secret)
    assert server["privateKey"].value.startswith("-----BEGIN RSA PRIVATE KEY-----")  # decrypted, PKCS#1
    assert uploaded[0].public_key() == leaf_key.public_key()
    # the purchased certificate is not issued by our CA; the clients still are
    assert plan.outputs["serverCertificateFingerprint"] == uploaded[0].fingerprint(hashes.SHA256()).hex()


def test_purchased_certificate_problems_are_config_errors() -> None:
    import pulumi
    chain, key, _ = purchased_certificate("other.example.org")
    with pytest.raises(pulumi.RunError, match="subjectAltName \\['other.example.org'\\] does not cover domain"):
        plan_stack(serverCertificate=chain, serverPrivateKey=key, serverPrivateKeyPassphrase="vendor-passphrase")
    chain, key, _ = purchased_certificate("mtls.example.com")
    with pytest.raises(pulumi.RunError, match="serverPrivateKey: the private key is encrypted"):
        plan_stack(serverCertificate=chain, serverPrivateKey=key)


def test_offline_plan_with_a_purchased_certificate_key_file(tmp_path: Path) -> None:
    chain, key, _ = purchased_certificate("mtls.example.com")
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["slb-mtls:serverCertificate"] = chain
    project = project_with(tmp_path, {"dev": yaml.safe_dump(document)})
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "pass").write_text("vendor-passphrase\n")
    result = run_cli("plan", "--stack", "dev", project=project,
                     env={"SERVER_PRIVATE_KEY_FILE": str(tmp_path / "key.pem"),
                          "SERVER_PRIVATE_KEY_PASSPHRASE_FILE": str(tmp_path / "pass")})
    assert result.returncode == 0, result.stderr
    assert "serverCertificate          <PEM CERTIFICATE x3>" in result.stdout
    assert "PRIVATE KEY" not in result.stdout


def test_add_an_environment(tmp_path: Path) -> None:
    """A new stack is a new Pulumi.<name>.yaml; the offline plan validates it before anyone runs up."""
    staging = (ROOT / "Pulumi.dev.yaml").read_text().replace("environment: dev", "environment: staging")
    project = project_with(tmp_path, {"staging": staging.replace("mtls.example.com", "staging.mtls.example.com")})
    result = run_cli("plan", "--stack", "staging", project=project)
    assert result.returncode == 0, result.stderr
    assert "loadBalancerName           \"slb-mtls-staging\"" in result.stdout
    assert "https://staging.mtls.example.com/" in result.stdout


def test_make_plan_diff_shows_a_revocation_as_a_reviewer_sees_it(tmp_path: Path) -> None:
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    project = project_with(tmp_path, {"before": dev, "after": dev + "  slb-mtls:revoked: [bob]\n"})
    for stack in ("before", "after"):
        planned = run_cli("plan", "--stack", stack, "--json", str(tmp_path / f"{stack}.json"), project=project)
        assert planned.returncode == 0, planned.stderr
    # in-process: test_replay's STEPS_JSON test runs `make plan-diff` as typed
    result = run_cli("diff", str(tmp_path / "before.json"), str(tmp_path / "after.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("+ create  alicloud:slb/caCertificate:CaCertificate  mtls-ca-")
    assert lines[1].startswith("+ create  alicloud:slb/serverCertificate:ServerCertificate  mtls-server-")
    assert "~ update  alicloud:slb/listener:Listener  mtls-https-443  (in place: caCertificateId, serverCertificateId)" in lines
    assert "revokedClients" in lines[-1] and "clients.bob" in lines[-1]


def test_a_backend_port_change_is_a_delete_first_replacement_with_its_outage_named() -> None:
    listener = {**stack_values()["slb-mtls:listener"], "backendPort": 8080}
    change = diff_documents(plan_stack().to_json(show_secrets=True),
                            plan_stack(listener=listener).to_json(show_secrets=True))
    assert ("+- replace  alicloud:slb/listener:Listener  mtls-https-443  (forced by backendPort; delete first: "
            "it is down until its replacement is created)") in change.render().splitlines()


def test_replacing_the_load_balancer_names_the_listener_it_takes_with_it() -> None:
    lb = {**stack_values()["slb-mtls:loadBalancer"], "addressType": "intranet", "vswitchId": "vsw-bp1abcdef"}
    lines = diff_documents(plan_stack().to_json(show_secrets=True),
                           plan_stack(loadBalancer=lb).to_json(show_secrets=True)).render().splitlines()
    assert any(line.startswith("+- replace  alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer  mtls-clb")
               for line in lines)
    assert ("+- replace  alicloud:slb/listener:Listener  mtls-https-443  (forced by loadBalancerId (its mtls-clb is "
            "replaced); delete first: it is down until its replacement is created)") in lines
