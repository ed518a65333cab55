import sys

from slbmtls.cli import main

sys.exit(main())
