"""``python -m aiopersonalize_events``: the command line (see ``aiopersonalize_events.cli``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
