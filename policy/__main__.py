"""`pulumi preview --policy-pack policy`: the slb-mtls guard rails."""

from pulumi_policy import PolicyPack
from rules import POLICIES

PolicyPack(name="slb-mtls", policies=POLICIES)
