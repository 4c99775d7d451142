import sys

from townlet.video.cli import main

sys.exit(main())
