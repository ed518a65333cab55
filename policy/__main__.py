"""`pulumi preview --policy-pack policy`: the slb-mtls guard rails."""

import sys
from pathlib import Path

# the rules share slbmtls.engine (Pulumi's private sentinels) with the program: the project root
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack
from rules import POLICIES

PolicyPack(name="slb-mtls", policies=POLICIES)
