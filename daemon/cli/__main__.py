"""``python -m heliowatch.daemon.cli``: the same as the ``heliowatch`` command."""

import sys

from heliowatch.daemon.cli import main

sys.exit(main())
