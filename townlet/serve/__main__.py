"""`python -m townlet.serve --db DB ...` is `townlet serve --db DB ...`."""

import sys

from townlet.serve.standalone import main

sys.exit(main())
