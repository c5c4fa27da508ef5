"""Pure checks of the service's limits, shared by the shapes, the recorder, the batching helpers and the CLI.

Each function either returns the normalised value or raises ``ValidationError``
naming ``path``; none does I/O, none repeats the offending value in its
message (ids and properties may be sensitive). The common case (a short ASCII
string, a ``dict`` of plain keys, a float or aware ``datetime``) takes a fast
path; the slower paths exist to say exactly what is wrong.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any, Final, TypeVar

from . import _limits as L
from ._json import dumps as _dumps
from ._json import flat_text as _flat_text
from .errors import ValidationError

__all__ = [
    "check_arn",
    "check_optional_text",
    "check_positive_int",
    "check_text",
    "to_epoch",
    "to_event_value",
    "to_impression",
    "to_properties",
    "to_records",
]

MAX_EPOCH: Final = 32503680000.0
"""3000-01-01: a larger number of seconds is almost surely milliseconds."""

_RESERVED: Final = L.RESERVED_PROPERTY_KEYS


def check_text(path: str, value: object, maximum: int, minimum: int = 1) -> None:
    """A string of ``minimum`` to ``maximum`` characters that can be sent as UTF-8 (no lone surrogate)."""
    if type(value) is str and minimum <= len(value) <= maximum and value.isascii():
        return
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, not {type(value).__name__}")
    n = len(value)
    if n < minimum:
        raise ValidationError(path, "must not be empty" if minimum == 1 else f"must have at least {minimum} characters")
    if n > maximum:
        raise ValidationError(path, f"must have at most {maximum} characters, has {n}")
    check_utf8(path, value)


def check_optional_text(path: str, value: object, maximum: int) -> None:
    """``check_text`` for a member that may be None."""
    if value is not None:
        check_text(path, value, maximum)


def check_utf8(path: str, value: str) -> None:
    """Refuse a string holding a lone surrogate, which has no UTF-8 form."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(path, "contains a lone surrogate and cannot be sent as UTF-8") from None


def check_positive_int(path: str, value: object) -> None:
    """An ``int`` (not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(path, "must be an integer of at least 1")


# -- timestamps -----------------------------------------------------------------------------------------------------

_last_datetime: list[Any] = [None, 0.0]  # the last datetime converted and its epoch seconds (a one-entry cache)


def to_epoch(path: str, value: object) -> float:
    """Normalise a Timestamp to epoch seconds rounded to milliseconds.

    A datetime (naive means UTC), int or float epoch seconds, or an ISO-8601
    string; refused when negative, not finite, or past the year 3000 (probably
    milliseconds). The last datetime converted is remembered, so ten events
    stamped with one ``now`` convert it once.
    """
    if type(value) is float and 0.0 <= value <= MAX_EPOCH:  # time.time(); NaN fails both comparisons
        return round(value, 3)
    cache = _last_datetime
    if value is cache[0]:
        result: float = cache[1]
        return result
    if type(value) is datetime and value.tzinfo is not None:
        try:
            seconds = value.timestamp()
        except (OverflowError, ValueError):
            seconds = -1.0  # the slow path says why
        if 0.0 <= seconds <= MAX_EPOCH:
            result = round(seconds, 3)
            cache[0], cache[1] = value, result
            return result
    return _to_epoch_slow(path, value)


def _to_epoch_slow(path: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValidationError(path, "must be a datetime, epoch seconds or an ISO-8601 string, not bool")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise ValidationError(path, "is too large to be epoch seconds") from None
    elif isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        seconds = _datetime_seconds(path, aware)
    elif isinstance(value, str):
        seconds = _datetime_seconds(path, parse_iso8601(path, value))
    elif isinstance(value, date):
        raise ValidationError(path, "must be a datetime, not a date")
    else:
        raise ValidationError(
            path, f"must be a datetime, epoch seconds or an ISO-8601 string, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValidationError(path, "must be a finite, non-negative number of epoch seconds")
    if seconds > MAX_EPOCH:
        raise ValidationError(path, "is after the year 3000; epoch milliseconds passed as seconds?")
    return round(seconds, 3)


_OLD_ISO: Final = sys.version_info < (3, 11)  # 3.10's fromisoformat takes only 3 or 6 fraction digits
_FRACTION: Final = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")


def parse_iso8601(path: str, value: str) -> datetime:
    """An aware datetime from ISO-8601 text (``Z`` or an offset; none means UTC), on every supported Python."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if _OLD_ISO:
        found = _FRACTION.search(text)
        if found is not None:  # pad or cut the fraction to the six digits 3.10 requires
            digits = (found.group(1) + "000000")[:6]
            text = f"{text[: found.start()]}.{digits}{text[found.end() :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(path, "is not an ISO-8601 timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _datetime_seconds(path: str, value: datetime) -> float:
    try:
        return value.timestamp()
    except (OverflowError, ValueError):  # e.g. datetime.min with a positive offset
        raise ValidationError(path, "is out of the range of epoch seconds") from None


# -- properties -------------------------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_JSON_STRING_OR_BRACKET: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _check_depth(path: str, text: str) -> None:
    """Refuse JSON text nested deeper than ``PROPERTIES_MAX_DEPTH``, whatever the caller's stack."""
    if text.count("{") + text.count("[") <= L.PROPERTIES_MAX_DEPTH:
        return  # it cannot be nested deeper than it has brackets
    depth = 0
    for found in _JSON_STRING_OR_BRACKET.finditer(text):
        token = found.group()
        if token == "{" or token == "[":
            depth += 1
            if depth > L.PROPERTIES_MAX_DEPTH:
                raise ValidationError(path, f"is nested more than {L.PROPERTIES_MAX_DEPTH} levels deep")
        elif token == "}" or token == "]":
            depth -= 1


def to_properties(path: str, value: object, maximum: int, reserved: bool) -> str:
    """Normalise Properties to the compact JSON object text the service expects, checking its limits.

    A mapping is encoded once (``_json.dumps``); a string is kept verbatim
    after checking that it holds a JSON object (no NaN or infinities).
    ``reserved`` refuses the service's reserved top-level keys, in any case.
    """
    if type(value) is dict:
        try:  # str.lower refuses a key that is not a str: the slow path then says which
            clash = not _RESERVED.isdisjoint(map(str.lower, value))
        except TypeError:
            clash = True
        if clash:
            _check_keys(path, value, reserved)
        flat = _flat_text(value)
        text = flat if flat is not None else _encode(path, value)
    elif isinstance(value, str):
        text = value
        _check_depth(path, text)
        try:
            parsed = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise ValidationError(path, "is a string that does not hold valid JSON") from None
        if not isinstance(parsed, dict):
            raise ValidationError(path, "must hold a JSON object")
        if reserved:
            _check_keys(path, parsed, reserved)
    elif isinstance(value, Mapping):
        _check_keys(path, value, reserved)
        text = _encode(path, value)
    else:
        raise ValidationError(path, f"must be a mapping or a JSON object string, not {type(value).__name__}")
    n = len(text)
    if n < 1:
        raise ValidationError(path, "must not be empty")
    if n > maximum:
        raise ValidationError(path, f"must be at most {maximum} characters of JSON, is {n}")
    check_utf8(path, text)
    return text


def _encode(path: str, value: Any) -> str:
    try:
        text = _dumps(value)
    except (ValueError, TypeError) as exc:  # NaN/inf, circular reference, a value JSON cannot hold
        raise ValidationError(path, f"cannot be encoded as JSON: {_reason(exc)}") from None
    except RecursionError:
        raise ValidationError(path, "is nested too deeply to encode as JSON") from None
    _check_depth(path, text)
    return text


def _check_keys(path: str, keys: Iterable[object], reserved: bool) -> None:
    for key in keys:
        if not isinstance(key, str):
            raise ValidationError(path, f"keys must be strings, found a {type(key).__name__}")
        if reserved and key.lower() in _RESERVED:
            raise ValidationError(path, f"must not use the reserved key {key!r} (in any case)")


def _reason(exc: Exception) -> str:
    # json's messages name the type or say "Out of range float values"; never a value
    text = str(exc)
    return text.split(":", 1)[0] if "Out of range" in text else text


# -- other members ----------------------------------------------------------------------------------------------------


def to_impression(path: str, value: object) -> tuple[str, ...]:
    """1 to 25 item ids, each 1 to 256 characters, as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(path, "must be a sequence of strings")
    result = tuple(value)
    n = len(result)
    if n < 1 or n > L.IMPRESSION_MAX_ENTRIES:
        raise ValidationError(path, f"must have 1 to {L.IMPRESSION_MAX_ENTRIES} entries, has {n}")
    for i, entry in enumerate(result):
        check_text(f"{path}[{i}]", entry, L.ID_MAX)
    return result


def to_event_value(path: str, value: object) -> float:
    """A finite number (not a bool), as a float."""
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(path, f"must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        raise ValidationError(path, "must be a finite number") from None
    if not math.isfinite(result):
        raise ValidationError(path, "must be a finite number")
    return result


_T = TypeVar("_T")


def to_records(path: str, value: object, cls: type[_T]) -> tuple[_T, ...]:
    """1 to 10 records, each an instance of ``cls`` (already validated when it was made), as a tuple."""
    if type(value) is tuple or type(value) is list:
        records = tuple(value)
    elif isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(path, f"must be a sequence of {cls.__name__}")
    else:
        records = tuple(value)
    n = len(records)
    if n < 1 or n > L.RECORDS_PER_CALL:
        raise ValidationError(path, f"must have 1 to {L.RECORDS_PER_CALL} entries, has {n}")
    for i, record in enumerate(records):
        if type(record) is not cls and not isinstance(record, cls):
            article = "an" if cls.__name__[0] in "AEIO" else "a"  # an Event, an Item, a User
            raise ValidationError(f"{path}[{i}]", f"must be {article} {cls.__name__}, not {type(record).__name__}")
    return records


def check_arn(path: str, value: object) -> None:
    """A Personalize dataset ARN of at most 256 characters."""
    check_text(path, value, L.ARN_MAX)
    assert isinstance(value, str)
    if L.ARN_PATTERN.search(value) is None:
        raise ValidationError(path, "is not a Personalize dataset ARN (arn:PARTITION:personalize:...)")
