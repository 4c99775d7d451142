"""`python -m townlet.recording export|batch ...` (older spelling) is `townlet video ...`."""

import sys

from townlet.cli import main

sys.exit(main(["video", *sys.argv[1:]]))
