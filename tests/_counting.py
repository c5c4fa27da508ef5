"""Counting wrappers for the one-path tests: how often a check, a constructor or an encoder runs."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["counting"]


def counting(counts: Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, counting each call under ``name`` in ``counts``."""

    @functools.wraps(function)
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return function(*args, **kwargs)

    return counted
