"""``python -m integrad``: the command line (see :mod:`integrad.cli`)."""

import sys

from .cli import main

sys.exit(main())
