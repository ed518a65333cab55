"""The cloud resources: one component that owns the load balancer, its certificates, the
mutual-auth listener and the backends. It receives validated config and finished PKI material and
makes no decisions of its own beyond mapping them onto the provider's arguments."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_alicloud import ecs, slb, vpc
from pulumi_alicloud.get_zones import get_zones_output

from pki import PkiMaterial
from slbmtls import clb
from slbmtls.config import OUR_TAGS, DemoBackendsConfig, StackConfig

COMPONENT_TYPE = "slb-mtls:index:MutualTlsLoadBalancer"
DEMO_VPC_CIDR = "172.16.0.0/16"
DEMO_VSWITCH_CIDR = "172.16.1.0/24"


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def demo_user_data(index: int, port: int) -> str:
    """A cloud-init script: a tiny web server on the backend port whose page names the instance.

    Alibaba Cloud Linux 3 ships python3 3.6, so nothing newer than 3.6 may be used here (no
    `http.server --directory`, no f-strings-with-=, no `ThreadingHTTPServer`)."""
    return f"""#!/bin/sh
mkdir -p /srv/demo
printf 'slb-mtls demo backend {index}: %s\\n' "$(hostname)" > /srv/demo/page.txt
cat > /srv/demo/serve.py <<'PY'
# Python 3.6: answer every path (the page and the health check) with the page naming this host.
import http.server, sys
BODY = open("/srv/demo/page.txt", "rb").read()
class Page(http.server.BaseHTTPRequestHandler):
    def _head(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
    def do_HEAD(self):
        self._head()
    def do_GET(self):
        self._head()
        self.wfile.write(BODY)
http.server.HTTPServer(("", int(sys.argv[1])), Page).serve_forever()
PY
cat > /etc/systemd/system/slb-mtls-demo.service <<'UNIT'
[Unit]
Description=slb-mtls demo backend
After=network-online.target
[Service]
ExecStart=/usr/bin/python3 /srv/demo/serve.py {port}
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now slb-mtls-demo.service
"""


def certificate_name(load_balancer_name: str, suffix: str) -> str:
    """`<lb name>-<suffix>` within CLB's certificate-name rule: the LB name is shortened, never the
    suffix that makes the name unique."""
    name = f"{load_balancer_name[: 80 - len(suffix) - 1]}-{suffix}"
    assert clb.CERTIFICATE_NAME.allows(name), name  # LB names obey the same alphabet and first letter
    return name


class MutualTlsLoadBalancer(pulumi.ComponentResource):
    """A CLB instance with an HTTPS listener that requires client certificates from our CA."""

    def __init__(self, name: str, config: StackConfig, material: PkiMaterial,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lb_cfg, listener_cfg, lb_name = config.load_balancer, config.listener, config.load_balancer_name

        internet = lb_cfg.address_type == "internet"
        self.load_balancer = slb.ApplicationLoadBalancer(
            f"{name}-clb",
            load_balancer_name=lb_name,
            address_type=lb_cfg.address_type,
            vswitch_id=lb_cfg.vswitch_id,
            payment_type=clb.PAYMENT_TYPE,
            instance_charge_type=lb_cfg.instance_charge_type,
            internet_charge_type=lb_cfg.internet_charge_type if internet else None,
            delete_protection=_on_off(lb_cfg.delete_protection),
            tags={**dict(zip(OUR_TAGS, ("slb-mtls", config.stack), strict=True)), **lb_cfg.tags},
            opts=pulumi.ResourceOptions(parent=self, protect=lb_cfg.delete_protection),
        )

        # Certificates are named by fingerprint: a rotation declares a new resource, which Pulumi
        # creates before the listener moves to it and deletes the old one last. CLB refuses to
        # delete a certificate a listener still uses, so the order matters.
        ca_fp = material.ca.issued.fingerprint[:12]
        self.ca_certificate = slb.CaCertificate(
            f"{name}-ca-{ca_fp}",
            ca_certificate=material.ca.issued.certificate_pem,
            ca_certificate_name=certificate_name(lb_name, f"ca-{material.ca.epoch}-{ca_fp}"),
            opts=child,
        )
        server = material.server
        server_fp = server.fingerprint[:12]
        self.server_certificate = slb.ServerCertificate(
            f"{name}-server-{server_fp}",
            name=certificate_name(lb_name, f"server-{server_fp}"),
            server_certificate=server.chain_pem,
            private_key=pulumi.Output.secret(server.private_key_pem()),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["privateKey"]),
        )

        hc = listener_cfg.health_check
        self.listener = slb.Listener(
            f"{name}-https-{listener_cfg.frontend_port}",
            load_balancer_id=self.load_balancer.id,
            protocol="https",
            frontend_port=listener_cfg.frontend_port,
            backend_port=listener_cfg.backend_port,
            bandwidth=listener_cfg.bandwidth,
            scheduler=listener_cfg.scheduler,
            server_certificate_id=self.server_certificate.id,
            ca_certificate_id=self.ca_certificate.id,  # with the server certificate: two-way auth
            tls_cipher_policy=listener_cfg.tls_cipher_policy,
            enable_http2=_on_off(listener_cfg.http2),
            idle_timeout=listener_cfg.idle_timeout,
            request_timeout=listener_cfg.request_timeout,
            gzip=listener_cfg.gzip,
            sticky_session="off",
            health_check=_on_off(hc.enabled),
            health_check_uri=hc.uri if hc.enabled else None,
            health_check_method=hc.method if hc.enabled else None,
            health_check_http_code=",".join(hc.http_codes) if hc.enabled else None,
            health_check_interval=hc.interval if hc.enabled else None,
            health_check_timeout=hc.timeout if hc.enabled else None,
            healthy_threshold=hc.healthy_threshold if hc.enabled else None,
            unhealthy_threshold=hc.unhealthy_threshold if hc.enabled else None,
            health_check_connect_port=hc.connect_port if hc.enabled else None,
            health_check_domain=hc.domain if hc.enabled else None,
            x_forwarded_for=slb.ListenerXForwardedForArgs(
                retrive_slb_ip=listener_cfg.x_forwarded_for.slb_ip,
                retrive_slb_id=listener_cfg.x_forwarded_for.slb_id,
                retrive_slb_proto=listener_cfg.x_forwarded_for.slb_proto,
            ),
            # A listener is its (load balancer, port): a create-first replacement (a port change)
            # would collide with the listener it replaces. Delete first; the preview names the outage.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        servers: list[Any] = [
            slb.BackendServerBackendServerArgs(server_id=b.instance_id, weight=b.weight, type=b.type)
            for b in config.backends
        ]
        self.demo_instances: list[ecs.Instance] = []
        if config.demo_backends is not None:
            self.demo_instances = self._demo_backends(name, config, config.demo_backends)
            servers += [
                slb.BackendServerBackendServerArgs(
                    server_id=instance.id, weight=config.demo_backends.weight, type="ecs")
                for instance in self.demo_instances
            ]
        self.backends = slb.BackendServer(
            f"{name}-backends",
            load_balancer_id=self.load_balancer.id,
            backend_servers=servers,
            opts=child,
        )

        scheme_port = "" if listener_cfg.frontend_port == 443 else f":{listener_cfg.frontend_port}"
        self.url = pulumi.Output.from_input(f"https://{config.domain}{scheme_port}/")
        self.register_outputs({
            "loadBalancerId": self.load_balancer.id,
            "address": self.load_balancer.address,
            "listenerId": self.listener.id,
            "caCertificateId": self.ca_certificate.id,
            "serverCertificateId": self.server_certificate.id,
            "url": self.url,
        })

    def _demo_backends(self, name: str, config: StackConfig,
                       demo: DemoBackendsConfig) -> list[ecs.Instance]:
        """The tutorial's two ECS servers: a private network, no public addresses, port 80 open
        to the load balancer only, each serving a page that names it."""
        child = pulumi.ResourceOptions(parent=self)
        zone_id: pulumi.Input[str]
        if demo.zone_id:
            zone_id = demo.zone_id
        else:
            zones = get_zones_output(available_resource_creation="VSwitch",
                                     available_instance_type=demo.instance_type,
                                     available_disk_category=clb.DEMO_SYSTEM_DISK_CATEGORY)
            zone_id = zones.zones.apply(lambda zs: zs[0].id)
        image_id: pulumi.Input[str]
        if demo.image_id:
            image_id = demo.image_id
        else:
            images = ecs.get_images_output(name_regex=clb.DEMO_IMAGE_NAME_REGEX,
                                           owners="system", most_recent=True)
            image_id = images.images.apply(lambda imgs: imgs[0].id)
        network = vpc.Network(f"{name}-demo-vpc", vpc_name=f"{config.load_balancer_name}-demo",
                              cidr_block=DEMO_VPC_CIDR, opts=child)
        vswitch = vpc.Switch(f"{name}-demo-vswitch", vpc_id=network.id, cidr_block=DEMO_VSWITCH_CIDR,
                             zone_id=zone_id, vswitch_name=f"{config.load_balancer_name}-demo",
                             opts=child)
        group = ecs.SecurityGroup(f"{name}-demo-sg", vpc_id=network.id,
                                  security_group_name=f"{config.load_balancer_name}-demo",
                                  description="slb-mtls demo backends: HTTP from CLB only",
                                  opts=child)
        ecs.SecurityGroupRule(
            f"{name}-demo-http-from-clb", security_group_id=group.id, type="ingress", ip_protocol="tcp",
            port_range=f"{config.listener.backend_port}/{config.listener.backend_port}",
            cidr_ip=clb.CLB_SOURCE_RANGE, nic_type="intranet", policy="accept", priority=1, opts=child,
        )
        return [
            ecs.Instance(
                f"{name}-demo-{i}",
                instance_name=f"{config.load_balancer_name}-demo-{i}",
                instance_type=demo.instance_type,
                image_id=image_id,
                vswitch_id=vswitch.id,
                security_groups=[group.id],
                instance_charge_type="PostPaid",
                internet_max_bandwidth_out=0,
                system_disk_category=clb.DEMO_SYSTEM_DISK_CATEGORY,
                user_data=demo_user_data(i, config.listener.backend_port),
                # The newest image is looked up on every run; a new release must not replace
                # running instances' system disks. Pin demoBackends.imageId to move on purpose.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=[] if demo.image_id else ["imageId"]),
            )
            for i in range(1, demo.count + 1)
        ]
