"""The compact JSON encoder gives the stdlib's exact text, with or without orjson."""

from __future__ import annotations

import collections
import enum
import inspect
import json
import math
import re
from typing import Any

import pytest
from _scripted_server import ScriptedServer, make_client
from hypothesis import assume, given, settings
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


async def test_a_tiny_event_value_sends_the_stdlib_text(server: ScriptedServer) -> None:
    """A PutEvents body with eventValue 1e-05 is sent exactly as json.dumps writes it (so is one without)."""
    from aiopersonalize_events import Event

    async with make_client(server) as client:
        await client.put_events(
            tracking_id="t", session_id="s", event_list=[Event(event_type="x", sent_at=1, event_value=1e-05)]
        )
        await client.put_events(tracking_id="t", session_id="s", event_list=[Event(event_type="x", sent_at=1.5)])
    tiny, plain = (sent.body for sent in server.requests)
    assert b'"eventValue":1e-05' in tiny
    for body in (tiny, plain):
        assert body == _reference(json.loads(body)).encode("utf-8")


class _Color(enum.IntEnum):
    RED = 1


class _Text(str):
    pass


class _Number(float):
    pass


_EDGE_VALUES = [
    "plain",
    "",
    'quote " backslash \\ newline \n tab \t bell \x07 del \x7f',
    "non-ASCII é 日本 🎉 \u2028 \u2029",
    "lone \ud800 surrogate",
    0,
    -0.0,
    1e16,
    1e-05,
    5e-324,
    1.7976931348623157e308,
    2**64,
    -(2**70),
    True,
    None,
    (1, "two", [3.5]),
    [],
    {},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    collections.OrderedDict([("b", 1), ("a", 2)]),
    {"enum": _Color.RED, "text": _Text("sub"), "number": _Number(2.5)},
    {"page": "home", "price": 12.5, "tags": ["a", "b"], "n": 3},
]


@pytest.mark.parametrize("value", _EDGE_VALUES, ids=repr)
def test_edge_values_give_the_stdlib_text(value: Any) -> None:
    """Subclasses, enums, tuples, non-str keys, big and tiny numbers and odd strings: json.dumps's exact text."""
    assert _json.dumps(value) == _reference(value)


@pytest.mark.parametrize("value", [math.nan, {"a": [math.inf]}, {1, 2}, {"a": object()}, {(1,): "tuple key"}])
def test_refusals_carry_the_stdlib_type_and_message(value: Any) -> None:
    """A value json.dumps refuses is refused with the same exception type and message."""
    with pytest.raises((ValueError, TypeError)) as theirs:
        _reference(value)
    with pytest.raises(theirs.type, match=re.escape(str(theirs.value))):
        _json.dumps(value)


def test_cycles_raise_recursion_error() -> None:
    """A dict or list that contains itself raises RecursionError, as before (no table of seen containers)."""
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    chain: list[Any] = []
    chain.append(chain)
    for value in (loop, {"a": chain}):
        with pytest.raises(RecursionError):
            _json.dumps(value)
        with pytest.raises(RecursionError):
            _json.dumps_wire(value, floats_agree=False)


def test_only_public_json_api_is_used() -> None:
    """The module builds its encoder with json.JSONEncoder, not CPython's private c_make_encoder."""
    source = inspect.getsource(_json)
    assert "c_make_encoder" not in source
    assert "json.encoder" not in source
    assert "from json import encoder" not in source


flat_values = st.one_of(
    st.text(),
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
)


@given(st.dictionaries(st.text(), flat_values, max_size=8))
def test_flat_text_gives_the_stdlib_text_for_any_mapping(value: dict[str, Any]) -> None:
    """flat_text (orjson on flat mappings when installed) writes exactly what json.dumps writes, or says None."""
    assume(all(c < "\ud800" or c > "\udfff" for k, v in value.items() for c in k + (v if isinstance(v, str) else "")))
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = _json.flat_text(value)
    assert text == expected or text is None
    assert (
        text is not None
        or not _json.HAVE_ORJSON
        or any(type(v) not in (str, bool, int, type(None)) for v in value.values())
        or any(type(v) is int and not -(2**63) <= v < 2**64 for v in value.values())
    )


@pytest.mark.parametrize("value", [1e-05, 2**64, -(2**63) - 1, 1e16, 1e-4, 0.0, -0.0, 123456789.123])
def test_flat_text_edges(value: Any) -> None:
    """Tiny floats and ints outside 64 bits are left to the stdlib (None); the edges orjson takes match it."""
    text = _json.flat_text({"v": value})
    expected = json.dumps({"v": value}, separators=(",", ":"), ensure_ascii=False)
    if value in (1e-05, 2**64, -(2**63) - 1):
        assert text is None
    elif _json.HAVE_ORJSON:
        assert text == expected
