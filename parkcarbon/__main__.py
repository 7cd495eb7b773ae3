"""``python -m parkcarbon``: the ``parkcarbon`` command, for child processes of the same interpreter."""

import sys

from parkcarbon.cli import main

sys.exit(main())
