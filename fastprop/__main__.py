"""``python -m fastprop``: the ``fastprop`` command."""

import sys

from .cli import main

sys.exit(main())
