"""Compact JSON text, as the service expects it, built once per call of the C encoder.

``dumps(obj)`` gives what ``json.dumps(obj, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` gives, without building a new encoder
on every call (the stdlib's ``JSONEncoder.encode`` does), which halves the
cost for the small objects this library encodes. Cycles are not tracked:
a circular structure ends in ``RecursionError``, which callers treat like
any too-deep nesting. ``NaN`` and infinities raise ``ValueError``, objects
JSON cannot hold raise ``TypeError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any, Final

__all__ = ["dumps"]


def _unsupported(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_FALLBACK: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)


def _make() -> Callable[[Any], str]:
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _FALLBACK.encode
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    iterencode = make(None, _unsupported, _encoder.encode_basestring, None, ":", ",", False, False, False)
    join = "".join

    def dumps(obj: Any) -> str:
        if isinstance(obj, str):  # the C encoder only takes containers and scalars through its own path
            return _FALLBACK.encode(obj)
        return join(iterencode(obj, 0))

    return dumps


dumps: Final = _make()
"""Compact JSON text of ``obj``: ``,``/``:`` separators, non-ASCII kept, no NaN."""
