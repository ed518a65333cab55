import sys

from pki import sharedqueue

# The commands that plan start their helper process now, so that it loads its modules while this
# one loads Pulumi's (pki.sharedqueue.prespawn; `import pki.sharedqueue` alone stays light).
if {"plan", "rehearse", "verify"} & set(sys.argv[1:]):
    sharedqueue.prespawn()

from slbmtls.cli import exit_without_teardown, main

try:
    status = main()
finally:
    if (engine := sys.modules.get("slbmtls.engine")) is not None:  # loaded only by the commands that plan
        engine.close_event_loop()
exit_without_teardown(status)
