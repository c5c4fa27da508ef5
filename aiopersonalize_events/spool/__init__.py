"""Spools: where an ``EventRecorder`` keeps events between ``record()`` and the service's 200.

Where each concern lives:

- ``_protocol``: the ``Spool`` contract (its docstring is what every spool
  keeps), ``SpoolBatch``, the listener protocols, ``GivesBackUnsent`` (a
  spool that may not keep all it accepted by its close deadline) and the
  spool errors;
- ``memory``: ``MemorySpool``, the default (in memory, gone with the process);
- ``sqlite``: ``SqliteSpool``, the spool that outlives the process (loaded
  on first use: importing this package does not import ``sqlite3``).

The line a dead letter keeps (an event with its session and user as a
``put-events`` input line) is written and read by ``aiopersonalize_events._lines``,
the one line codec the command line and the Redis streams use too.
"""

from __future__ import annotations

from ._protocol import GivesBackUnsent, HandOffListener, Spool, SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from .memory import MemorySpool

__all__ = [
    "GivesBackUnsent",
    "HandOffListener",
    "MemorySpool",
    "Spool",
    "SpoolBatch",
    "SpoolError",
    "SpoolListener",
    "SpoolStateError",
]
