"""The command line's option value types, shared by every sub-command's parser."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "rate", "seconds"]


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


def rate(text: str) -> float:
    """A finite number of calls per second, at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of calls per second") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of calls per second, at least 0")
    return value
