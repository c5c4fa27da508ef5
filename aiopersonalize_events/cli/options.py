"""The command line's option value types, shared by every sub-command's parser."""

from __future__ import annotations

import argparse
from typing import Final

__all__ = ["SETUP_WAIT_SECONDS", "positive_int", "rate", "seconds", "wait_seconds"]

SETUP_WAIT_SECONDS: Final = 60.0
"""How long a ``put-*`` run holds its records on a set-up error before it stops (``--setup-wait``'s default)."""


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected at least 1")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds, more than 0")
    return value


def wait_seconds(text: str) -> float:
    """A finite number of seconds, at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds, at least 0")
    return value


def rate(text: str) -> float:
    """A finite number of calls per second, at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of calls per second") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of calls per second, at least 0")
    return value
