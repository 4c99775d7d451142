"""`python -m townlet ...` is the `townlet` command."""

import sys

from townlet.cli import main

sys.exit(main())
