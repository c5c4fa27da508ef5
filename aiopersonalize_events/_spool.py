"""The spool's names at their old path, for modules not yet moved to ``spool`` (the Redis spool imports them here).

Nothing is defined here: ``aiopersonalize_events.spool`` is where the
spools live. Remove this module once nothing imports it.
"""

from __future__ import annotations

from .spool import HandOffListener, MemorySpool, Spool, SpoolBatch, SpoolError, SpoolListener, SpoolStateError

__all__ = ["HandOffListener", "MemorySpool", "Spool", "SpoolBatch", "SpoolError", "SpoolListener", "SpoolStateError"]
