"""`python -m townlet.telemetry <verb>` is `townlet telemetry <verb>`."""

import sys

from townlet.cli import main

sys.exit(main(["telemetry", *sys.argv[1:]]))
