"""`pulumi preview --policy-pack policy`: the slb-mtls guard rails."""

import sys
from pathlib import Path

# The pack judges by the project's own statement of CLB's contract (slbmtls/clb.py, no dependencies)
# and takes Pulumi's unknown-value sentinel from slbmtls/engine.py, the one home of Pulumi internals.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack
from rules import POLICIES

PolicyPack(name="slb-mtls", policies=POLICIES)
