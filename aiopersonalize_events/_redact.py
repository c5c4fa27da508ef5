"""How the package shows a secret or a sensitive member in a ``repr``: whether it is set, never its value."""

from __future__ import annotations


def hidden(value: object) -> str:
    """``'***'`` for a value that is set and ``None`` for one that is not (an attrs ``repr=`` callable)."""
    return "None" if value is None else "'***'"
