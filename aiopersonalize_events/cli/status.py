"""Exit statuses of the command line, and the usage error that leads to status 2."""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_USAGE", "UsageError"]

EXIT_OK: Final = 0
"""Every record was accepted (or, with ``--dry-run``, is valid)."""
EXIT_FAILED: Final = 1
"""Some records were not accepted (they are in ``--failed-out``), or ``--failed-out`` could not be written."""
EXIT_USAGE: Final = 2
"""A usage error, or input (or ``--failed-out``) that cannot be opened or read."""
EXIT_INTERRUPTED: Final = 130
"""Stopped by Ctrl-C (SIGINT); what was read and not sent is in ``--failed-out``."""
EXIT_TERMINATED: Final = 143
"""Stopped by SIGTERM; as for Ctrl-C."""


class UsageError(Exception):
    """A problem with the command line or its files, found before anything is sent: exit status 2."""
