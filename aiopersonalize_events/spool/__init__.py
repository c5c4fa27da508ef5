"""Spools: where an ``EventRecorder`` keeps events between ``record()`` and the service's 200.

Where each concern lives:

- ``_protocol``: the ``Spool`` contract (its docstring is what every spool
  keeps), ``SpoolBatch``, the listener protocols and the spool errors;
- ``memory``: ``MemorySpool``, the default (in memory, gone with the process);
- ``_lines``: the one codec of "an event with its session and user as a
  ``put-events`` line" (dead letters, the command line);
- ``sqlite``: ``SqliteSpool``, the spool that outlives the process (loaded
  on first use: importing this package does not import ``sqlite3``).
"""

from __future__ import annotations

from ._protocol import HandOffListener, Spool, SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from .memory import MemorySpool

__all__ = ["HandOffListener", "MemorySpool", "Spool", "SpoolBatch", "SpoolError", "SpoolListener", "SpoolStateError"]
