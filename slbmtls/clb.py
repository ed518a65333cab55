"""What Alibaba Cloud CLB accepts, declared once, each fact with the source it comes from.

Config validation, the component, the CLB emulator behind the offline plan, the rehearsal and the
policy pack read these; nothing else restates a CLB limit. Sources, abbreviated in `source=`:

- API: the parameter text of the CLB API (2014-05-15), as shipped in the `alibabacloud-slb20140515`
  package (`models/_<operation>_request.py`); an operation name follows, e.g. `API CreateLoadBalancer`.
- TF: aliyun/terraform-provider-alicloud, which pulumi-alicloud 4.0.0 bridges
  (`alicloud/resource_alicloud_slb_*.go`: validation and ForceNew).
- DOC: Alibaba Cloud's CLB help pages ("certificate requirements", billing announcements).
- FACTS: ../shared/CLB-FACTS.md, where it collects the above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# -- resource type tokens (pulumi-alicloud 4.0.0) ------------------------------------------------

LOAD_BALANCER: Final = "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer"
CA_CERTIFICATE: Final = "alicloud:slb/caCertificate:CaCertificate"
SERVER_CERTIFICATE: Final = "alicloud:slb/serverCertificate:ServerCertificate"
LISTENER: Final = "alicloud:slb/listener:Listener"
BACKEND_SERVER: Final = "alicloud:slb/backendServer:BackendServer"
VPC: Final = "alicloud:vpc/network:Network"
VSWITCH: Final = "alicloud:vpc/switch:Switch"
SECURITY_GROUP: Final = "alicloud:ecs/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE: Final = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
ECS_INSTANCE: Final = "alicloud:ecs/instance:Instance"


# -- rule shapes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntRange:
    """An inclusive integer range, plus any single values allowed outside it (e.g. -1)."""

    lo: int
    hi: int
    source: str
    also: tuple[int, ...] = ()

    def allows(self, value: object) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and (self.lo <= value <= self.hi or value in self.also))

    def describe(self) -> str:
        extra = "".join(f" or {v}" for v in self.also)
        return f"an integer {self.lo}-{self.hi}{extra}"


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    source: str

    def allows(self, value: object) -> bool:
        return value in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class Pattern:
    """A whole-string rule (`re.fullmatch`: no trailing newline slips through)."""

    regex: str
    description: str
    source: str

    def allows(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def describe(self) -> str:
        return self.description


# -- load balancer -------------------------------------------------------------------------------

LOAD_BALANCER_NAME: Final = Pattern(
    r"[A-Za-z][A-Za-z0-9._-]{0,79}", "1-80 letters, digits, '.', '_' or '-', starting with a letter",
    "API CreateLoadBalancer LoadBalancerName")
ADDRESS_TYPES: Final = Choice(("internet", "intranet"), "API CreateLoadBalancer AddressType")
# Pay-by-spec instances are no longer sold (2025-06-01) and shared-performance ones are
# discontinued (ShareSlbHaltSales): a new instance is pay-as-you-go, metered by CLCU.
INSTANCE_CHARGE_TYPES: Final = Choice(("PayByCLCU",), "DOC billing announcement 2025-06-01; FACTS Billing")
PAYMENT_TYPE: Final = "PayAsYouGo"
# With PayByCLCU the only internet metering is by traffic (API CreateLoadBalancer InternetChargeType).
INTERNET_CHARGE_TYPES: Final = Choice(("PayByTraffic",),
                                      "API CreateLoadBalancer InternetChargeType (PayByCLCU: paybytraffic only)")
MAX_TAGS: Final = 10  # FACTS: at most 10 tags per load balancer
TAG_KEY: Final = Pattern(r"(?!aliyun|acs:)(?!.*https?://).{1,64}",
                         "1-64 characters, not starting with 'aliyun' or 'acs:', without http:// or https://",
                         "API TagResources Tag.N.Key")
TAG_VALUE: Final = Pattern(r"(?!aliyun|acs:)(?!.*https?://).{0,128}",
                           "0-128 characters, not starting with 'aliyun' or 'acs:', without http:// or https://",
                           "API TagResources Tag.N.Value")

# -- certificates --------------------------------------------------------------------------------

CERTIFICATE_NAME: Final = Pattern(
    r"[A-Za-z][A-Za-z0-9._-]{0,79}", "1-80 letters, digits, '.', '_' or '-', starting with a letter",
    "API UploadServerCertificate ServerCertificateName; API UploadCACertificate CACertificateName")
# RSA only, and only these sizes, for every certificate uploaded to CLB (the CA and the server
# certificate). 1024 is accepted by CLB but refused here: it is broken. Client keys are never uploaded.
UPLOAD_RSA_BITS: Final = (2048, 4096)
UPLOAD_RSA_BITS_SOURCE: Final = "DOC certificate requirements: RSA 1024, 2048 or 4096 bits (not 3072, not ECDSA)"

# -- the HTTPS listener --------------------------------------------------------------------------

PORT: Final = IntRange(1, 65535, "API CreateLoadBalancerHTTPSListener ListenerPort, BackendServerPort")
# TF validates -1 or 1-1000; the API takes -1 for pay-by-traffic instances (the only kind sold).
BANDWIDTH: Final = IntRange(1, 1000, "TF resource_alicloud_slb_listener bandwidth; API Bandwidth", also=(-1,))
BANDWIDTH_PAY_BY_TRAFFIC: Final = -1
# The API text for HTTPS names wrr and rr; CLB's scheduling docs and TF (validation wrr/rr/wlc for
# layer 7) take wlc too. Allowed; the rehearsal maps it to HAProxy's leastconn.
SCHEDULERS: Final = Choice(("wrr", "rr", "wlc"),
                           "TF slb_listener scheduler; FACTS HTTPS listener; API HTTPS Scheduler names wrr, rr")


@dataclass(frozen=True)
class TlsPolicy:
    name: str
    versions: tuple[str, ...]  # as Python's ssl.TLSVersion names: TLSv1, TLSv1_1, TLSv1_2, TLSv1_3
    suites: tuple[str, ...]  # OpenSSL names (TLS 1.3 suites by IANA name)


_SUITES_1_0 = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA256",
               "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256",
               "AES256-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "AES128-SHA", "AES256-SHA",
               "DES-CBC3-SHA")
_SUITES_STRICT = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA256",
                  "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA")
_SUITES_1_3 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
               "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
               "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
               *_SUITES_STRICT[:4], "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", *_SUITES_STRICT[4:])
# API CreateLoadBalancerHTTPSListener TLSCipherPolicy: the only policies CLB has (no custom ones).
TLS_POLICIES: Final = {p.name: p for p in (
    TlsPolicy("tls_cipher_policy_1_0", ("TLSv1", "TLSv1_1", "TLSv1_2"), _SUITES_1_0),
    TlsPolicy("tls_cipher_policy_1_1", ("TLSv1_1", "TLSv1_2"), _SUITES_1_0),
    TlsPolicy("tls_cipher_policy_1_2", ("TLSv1_2",), _SUITES_1_0),
    TlsPolicy("tls_cipher_policy_1_2_strict", ("TLSv1_2",), _SUITES_STRICT),
    TlsPolicy("tls_cipher_policy_1_2_strict_with_1_3", ("TLSv1_2", "TLSv1_3"), _SUITES_1_3),
)}
TLS_POLICY_SOURCE: Final = "API CreateLoadBalancerHTTPSListener TLSCipherPolicy"
# Policies that still admit TLS 1.0/1.1: CLB has them, we refuse them (RFC 8996 deprecates both).
WEAK_TLS_POLICIES: Final = ("tls_cipher_policy_1_0", "tls_cipher_policy_1_1")

IDLE_TIMEOUT: Final = IntRange(1, 60, "API CreateLoadBalancerHTTPSListener IdleTimeout")
REQUEST_TIMEOUT: Final = IntRange(1, 180, "API CreateLoadBalancerHTTPSListener RequestTimeout")

HEALTH_METHODS: Final = Choice(("head", "get"), "API CreateLoadBalancerHTTPSListener HealthCheckMethod")
HEALTH_HTTP_CODES: Final = Choice(("http_2xx", "http_3xx", "http_4xx", "http_5xx"),
                                  "API CreateLoadBalancerHTTPSListener HealthCheckHttpCode")
# API text: "1 to 80 characters ... letters, digits and -/.%?#& ... must start with /", and it adds
# that a single / is refused; yet "/" is the provider's own default (TF slb_listener health_check_uri
# Default "/"), sent by every listener that does not set one, and FACTS lists no such rule. Allowed.
HEALTH_URI: Final = Pattern(r"/[A-Za-z0-9/.%?#&-]{0,79}",
                            "a path of 1-80 characters from letters, digits and -/.%?#&, starting with /",
                            "API CreateLoadBalancerHTTPSListener HealthCheckURI; TF default \"/\"")
# The provider refuses `$_ip` ("deprecated, and empty string will replace it"): leave the domain unset.
HEALTH_DOMAIN: Final = Pattern(r"[A-Za-z0-9.-]{1,80}",
                               "1-80 letters, digits, '.' or '-' (no wildcard; leave it unset for the backend's IP)",
                               "API CreateLoadBalancerHTTPSListener HealthCheckDomain; "
                               "TF slb_listener health_check_domain StringDoesNotMatch ^\\$_ip$")
HEALTH_INTERVAL: Final = IntRange(1, 50, "API CreateLoadBalancerHTTPSListener HealthCheckInterval")
HEALTH_TIMEOUT: Final = IntRange(1, 300, "API CreateLoadBalancerHTTPSListener HealthCheckTimeout")
HEALTH_THRESHOLD: Final = IntRange(2, 10, "API CreateLoadBalancerHTTPSListener HealthyThreshold, UnhealthyThreshold")
HEALTH_CONNECT_PORT: Final = IntRange(1, 65535, "API CreateLoadBalancerHTTPSListener HealthCheckConnectPort")
# "If the timeout is shorter than the interval, the timeout is replaced by the interval": refuse it
# rather than plan a value CLB will not use.
HEALTH_TIMEOUT_MIN_IS_INTERVAL_SOURCE: Final = "TF docs slb_listener health_check_timeout; FACTS Health check"

# -- backends ------------------------------------------------------------------------------------

BACKEND_WEIGHT: Final = IntRange(0, 100, "API AddBackendServers BackendServers.Weight")
BACKEND_TYPES: Final = Choice(("ecs", "eni", "eci"), "API AddBackendServers BackendServers.Type")
MAX_BACKENDS_PER_CALL: Final = 20  # API AddBackendServers: at most 20 per request; TF sends all in one
BACKEND_ID: Final = Pattern(r"(i|eni|eci)-[a-z0-9]{1,40}", "an instance, ENI or ECI id such as i-bp1abc...",
                            "API AddBackendServers BackendServers.ServerId")

# -- the demo backends (ECS) ---------------------------------------------------------------------

# Alibaba Cloud Linux 3 (EL8): python3 is 3.6, so the demo server cannot use `http.server --directory`.
DEMO_IMAGE_NAME_REGEX: Final = "^aliyun_3_x64_20G_alibase_"
DEMO_SYSTEM_DISK_CATEGORY: Final = "cloud_essd"
CLB_SOURCE_RANGE: Final = "100.64.0.0/10"  # CLB forwards and health-checks from this range

# -- what forces replacement ---------------------------------------------------------------------

# Input properties (engine names, camelCase) whose change replaces the resource (TF ForceNew).
# Checked against aliyun/terraform-provider-alicloud 81c43b6 (1.289.0+, Aug 2026; pulumi-alicloud 4.0.0
# bridges ~1.295) and the pulumi_alicloud 4.0.0 docstrings. Not ForceNew, so updated in place:
# ECS `vswitchId` ("the instance will reboot"), `imageId` (re-initialises the system disk) and
# `userData`; VPC `cidrBlock`; certificate and load balancer names.
FORCE_NEW: Final[dict[str, frozenset[str]]] = {
    LOAD_BALANCER: frozenset({"addressType", "vswitchId", "masterZoneId", "slaveZoneId", "addressIpVersion",
                              "address", "resourceGroupId"}),
    CA_CERTIFICATE: frozenset({"caCertificate", "resourceGroupId"}),
    SERVER_CERTIFICATE: frozenset({"serverCertificate", "privateKey", "alicloudCertificateId",
                                   "alicloudCertificateName", "alicloudCertificateRegionId", "resourceGroupId"}),
    LISTENER: frozenset({"loadBalancerId", "protocol", "frontendPort", "backendPort", "forwardPort",
                         "listenerForward"}),
    BACKEND_SERVER: frozenset({"loadBalancerId"}),
    VPC: frozenset({"ipv6CidrBlock", "isDefault", "userCidrs"}),
    VSWITCH: frozenset({"vpcId", "cidrBlock", "zoneId", "availabilityZone", "isDefault"}),
    SECURITY_GROUP: frozenset({"vpcId", "securityGroupType"}),
    SECURITY_GROUP_RULE: frozenset({"securityGroupId", "type", "ipProtocol", "portRange", "cidrIp", "ipv6CidrIp",
                                    "nicType", "policy", "priority", "sourceSecurityGroupId",
                                    "sourceGroupOwnerAccount", "sourceGroupOwnerId", "prefixListId"}),
    ECS_INSTANCE: frozenset({"availabilityZone", "systemDiskCategory", "systemDiskStorageClusterId",
                             "systemDiskEncrypted", "systemDiskKmsKeyId", "systemDiskEncryptAlgorithm",
                             "networkInterfaceId", "networkInterfaceTrafficMode", "networkCardIndex",
                             "queuePairNumber", "sourceDestCheck", "dataDisks", "networkInterfaces", "spotStrategy",
                             "spotPriceLimit", "spotInterruptionBehavior", "securityEnhancementStrategy",
                             "hpcClusterId", "httpPutResponseHopLimit", "ipv6AddressCount", "dedicatedHostId",
                             "launchTemplateName", "launchTemplateId", "launchTemplateVersion", "imageOptions"}),
}
FORCE_NEW_SOURCE: Final = "TF resource_alicloud_{slb_load_balancer,slb_ca_certificate,slb_server_certificate," \
    "slb_listener,slb_backend_server,vpc,vswitch,security_group,security_group_rule,instance}.go ForceNew"

# -- how the provider deletes, and what CLB answers (the emulator's refusals) --------------------

# The provider retries DeleteServerCertificate on CertificateAndPrivateKeyIsRefered for 3 minutes
# (TF resource_alicloud_slb_server_certificate.go Delete: resource.Retry(3*time.Minute, ...)), but
# DeleteCACertificate only on busy errors (TF resource_alicloud_slb_ca_certificate.go Delete): a CA
# certificate still bound to a listener fails the update at once.
DELETE_RETRIED_WHEN_IN_USE: Final = {SERVER_CERTIFICATE: 180, CA_CERTIFICATE: 0}
# AddBackendServers at create takes the whole set in one call; updates are sent 20 at a time
# (TF resource_alicloud_slb_backend_server.go: Create has no chunking, Update uses step := 20).
BACKENDS_CHUNKED_ON_UPDATE: Final = True


@dataclass(frozen=True)
class ErrorCode:
    code: str
    source: str


ERR_INVALID_PARAMETER: Final = ErrorCode("InvalidParameter", "API common error code")
# DeleteCACertificate / DeleteServerCertificate: "The specified certificate is bound to listeners."
ERR_CERT_IN_USE: Final = ErrorCode("CertificateAndPrivateKeyIsRefered",
                                   "API DeleteCACertificate error codes; TF slb_server_certificate Delete")
ERR_PRIVATE_KEY_ENCRYPTED: Final = ErrorCode("PrivateKeyEncryption", "FACTS Certificates: API errors seen")
ERR_KEY_FORMAT: Final = ErrorCode("KeyFormatError", "FACTS Certificates: API errors seen")
ERR_CERT_KEY_MISMATCH: Final = ErrorCode("CertificateNotMatchPrivateKey", "FACTS Certificates: API errors seen")
# The code CLB answers for a second listener on a port is not in the sources above; this is the
# name the project uses for it (the message says what happened).
ERR_LISTENER_EXISTS: Final = ErrorCode("ListenerAlreadyExists", "unverified code name; collision per FACTS listener id")
ERR_LB_NOT_FOUND: Final = ErrorCode("InvalidLoadBalancerId.NotFound", "TF slb_load_balancer Delete")
ERR_SERVER_CERT_NOT_FOUND: Final = ErrorCode("ServerCertificateId.NotFound", "TF slb_server_certificate Delete")
ERR_CA_CERT_NOT_FOUND: Final = ErrorCode("CACertificateId.NotFound", "TF slb_ca_certificate Delete")
ERR_SHARED_HALTED: Final = ErrorCode("ShareSlbHaltSales", "FACTS Billing: shared-performance instances discontinued")
