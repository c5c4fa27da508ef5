"""The compact JSON encoder gives the stdlib's exact text, with or without orjson."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopersonalize_events import _json


def _reference(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_is_byte_identical_to_the_stdlib(value: Any) -> None:
    """Whatever encoder is used, the text equals json.dumps with compact separators (or both refuse)."""
    try:
        expected = _reference(value)
    except (ValueError, TypeError, UnicodeEncodeError):
        with pytest.raises((ValueError, TypeError, UnicodeEncodeError)):
            _json.dumps(value).encode("utf-8")
        return
    assert _json.dumps(value) == expected


_wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=0, max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text().filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _wire_values, max_size=6))
def test_request_bodies_are_byte_identical_to_the_stdlib(wire: dict[str, Any]) -> None:
    """A body whose floats float_agrees accepts encodes to the stdlib's exact bytes, with orjson or without."""
    agree = all(_json.float_agrees(f) for f in _floats(wire))
    assert _json.dumps_wire(wire, agree) == _reference(wire).encode("utf-8")


@pytest.mark.parametrize("value", [1e-05, -2.5e-07, 5e-324, 0.00009999])
def test_tiny_floats_are_the_ones_encoders_disagree_on(value: float) -> None:
    """float_agrees refuses the floats orjson would write differently; bodies with them take the stdlib path."""
    assert not _json.float_agrees(value)
    assert _json.dumps_wire({"v": value}, floats_agree=False) == _reference({"v": value}).encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, {"a": -math.inf}])
def test_nan_and_infinity_are_refused(value: Any) -> None:
    """NaN and infinities raise ValueError, as json.dumps(allow_nan=False) does."""
    with pytest.raises(ValueError, match="Out of range"):
        _json.dumps(value)


def test_types_json_cannot_hold_are_refused() -> None:
    """Objects the stdlib refuses (a set, a date) are refused even where orjson would encode them."""
    import datetime
    import uuid

    for value in [{1, 2}, datetime.date(2024, 1, 1), uuid.uuid4(), {"a": object()}]:
        with pytest.raises(TypeError):
            _json.dumps(value)


def test_orjson_is_used_when_installed() -> None:
    """With the fast extra installed, the orjson path is active (the dev extra installs it)."""
    pytest.importorskip("orjson")
    assert _json.HAVE_ORJSON


def test_a_tiny_event_value_sends_the_stdlib_text() -> None:
    """A PutEvents body with eventValue 1e-05 is sent exactly as json.dumps writes it."""
    from aiopersonalize_events import Event
    from aiopersonalize_events._client import _floats_agree
    from aiopersonalize_events._shapes import PutEventsRequest
    from aiopersonalize_events.serde import to_wire

    tiny = PutEventsRequest(
        tracking_id="t", session_id="s", event_list=[Event(event_type="x", sent_at=1, event_value=1e-05)]
    )
    plain = PutEventsRequest(tracking_id="t", session_id="s", event_list=[Event(event_type="x", sent_at=1.5)])
    assert not _floats_agree(tiny)
    assert _floats_agree(plain)
    body = _json.dumps_wire(to_wire(tiny), _floats_agree(tiny))
    assert b'"eventValue":1e-05' in body
