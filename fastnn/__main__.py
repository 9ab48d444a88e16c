"""``python -m fastnn`` runs the ``fastnn`` command."""

import sys

from .cli import main

sys.exit(main())
