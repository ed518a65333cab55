import sys

from pki import sharedqueue

# The commands that plan start their helper process now, so that it loads its modules while this
# one loads Pulumi's (pki.sharedqueue.prespawn; `import pki.sharedqueue` alone stays light).
if {"plan", "rehearse", "verify"} & set(sys.argv[1:]):
    sharedqueue.prespawn()

from slbmtls.cli import main

sys.exit(main())
