"""slb-mtls: a CLB HTTPS listener with mutual TLS and the private PKI behind it."""

import pulumi

from slbmtls.program import build

for key, value in build(against_deployed=True).items():
    pulumi.export(key, value)
