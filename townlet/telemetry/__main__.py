import sys

from townlet.telemetry.cli import main

sys.exit(main())
