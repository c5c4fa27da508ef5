"""The one line codec (``_lines``): an event with its session as a ``put-events`` line, written and read by every user.

The Redis stream entries, the SQLite spool's dead letters, ``spool
export-failed``/``retry-failed`` and the command line's input all go through
it; lines written before the codec was one (dead letters with ``sessionId``
after the event) still read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiopersonalize_events import Event, Item, ValidationError
from aiopersonalize_events import _operations as ops
from aiopersonalize_events._lines import RecordError, encode, event_line, line_event, read_line
from aiopersonalize_events.cli.lines import LineError, parse_line
from aiopersonalize_events.redis._entries import PoisonEntry, decode

SENT_AT = 1764504000

EVENTS = [
    Event(event_type="click", sent_at=SENT_AT, event_id="e1"),
    Event(event_type="click", sent_at=SENT_AT + 0.25, item_id="i1", event_id="e2", properties={"a": 1}),
    Event(event_type="buy", sent_at=SENT_AT, event_id="e3", event_value=1e-05, impression=["i1", "i2"]),
    Event(event_type="view", sent_at=SENT_AT, event_id="e4", event_value=12.5, recommendation_id="r", item_id="ü"),
]


def test_an_event_line_is_the_stream_entry_and_input_line_byte_for_byte() -> None:
    """event_line (the spool's fast path) writes exactly what encode writes for PutEvents: sessionId, userId first."""
    event = Event(event_type="click", sent_at=SENT_AT, item_id="i1", event_id="e1", properties={"a": 1})
    assert event_line(event, "s1", "u1") == (
        b'{"sessionId":"s1","userId":"u1","eventType":"click","sentAt":1764504000,"eventId":"e1",'
        b'"itemId":"i1","properties":"{\\"a\\":1}"}'
    )
    assert event_line(event, "s1", None).startswith(b'{"sessionId":"s1","eventType":"click",')
    for event in EVENTS:
        for user in ("u1", None):
            assert event_line(event, "s1", user) == encode(ops.PUT_EVENTS, event, ("s1", user))


@pytest.mark.parametrize("user", ["u1", None])
def test_every_reader_gives_back_the_event_a_line_holds(user: str | None) -> None:
    """A line reads back as the same event, session and user through the spool, the forwarder and the command line."""
    for event in EVENTS:
        line = event_line(event, "s1", user)
        assert line_event(line) == (event, "s1", user)
        assert line_event(line.decode()) == (event, "s1", user)
        assert read_line(ops.PUT_EVENTS, line) == (event, ("s1", user))
        assert decode(ops.PUT_EVENTS, {b"record": line}) == (event, ("s1", user))
        assert parse_line(ops.PUT_EVENTS, line.decode()) == (event, ("s1", user))


@pytest.mark.parametrize(
    "line",
    [
        # dead letters as the SQLite spool wrote them before 2026-12: the event's wire form, then sessionId/userId
        '{"eventType":"click","sentAt":1764504000,"eventId":"e1","itemId":"i1","sessionId":"s1","userId":"u1"}',
        '{"eventType": "click", "sentAt": 1764504000, "eventId": "e1", "itemId": "i1", "sessionId": "s1", '
        '"userId": "u1"}',
        # an entry another program wrote with userId null
        '{"sessionId":"s1","userId":null,"eventType":"click","sentAt":1764504000,"eventId":"e1","itemId":"i1"}',
    ],
)
def test_lines_in_the_older_member_order_still_read(line: str) -> None:
    """Member order is not part of the format: a dead letter with sessionId after the event reads the same."""
    event, session, user = line_event(line)
    assert (event.event_id, event.item_id, event.sent_at, session) == ("e1", "i1", SENT_AT, "s1")
    assert user in ("u1", None)
    assert decode(ops.PUT_EVENTS, {b"record": line.encode()}).record == event


@pytest.mark.parametrize(
    ("line", "path", "reason"),
    [
        ("[1]", "line", "must be a JSON object"),
        ('{"sessionId":"s","eventType":"x","sentAt":NaN,"eventId":"e"}', "line", "not valid JSON"),
        ('{"eventType":"x","sentAt":1,"eventId":"e"}', "line", "sessionId: is required"),
        ('{"sessionId":"s","eventType":"x","sentAt":1}', "eventId", "a stored event must carry its eventId"),
        ('{"sessionId":"s","eventType":"x","sentAt":1,"eventId":"e","color":1}', "line", "color:"),
    ],
)
def test_a_stored_line_that_is_no_event_is_refused_naming_why(line: str, path: str, reason: str) -> None:
    """line_event raises ValidationError naming the line (or eventId) and the reason, never a bare JSON error."""
    with pytest.raises(ValidationError) as caught:
        line_event(line)
    assert caught.value.path == path
    assert caught.value.message.startswith(reason)


@pytest.mark.parametrize(
    ("text", "cli", "entry"),
    [
        (b"\xff", None, "record: not UTF-8 text"),
        ("{", "not valid JSON (Expecting property name enclosed in double quotes at column 2)", "record: not valid"),
        ('{"a": Infinity}', "not valid JSON (Infinity is not JSON)", "record: not valid JSON (Infinity is not JSON)"),
        ("[" * 100_000, "not valid JSON (nested too deeply)", "record: not valid JSON (nested too deeply)"),
    ],
)
def test_json_that_is_not_strict_is_refused_alike_by_the_command_line_and_the_forwarder(
    text: str | bytes, cli: str | None, entry: str
) -> None:
    """One strict JSON reader: the command line's LineError and the forwarder's PoisonEntry give one reason."""
    if cli is not None:
        assert isinstance(text, str)
        with pytest.raises(LineError) as line_error:
            parse_line(ops.PUT_EVENTS, text)
        assert line_error.value.reason == cli
    with pytest.raises(PoisonEntry) as poison:
        decode(ops.PUT_EVENTS, {b"record": text.encode() if isinstance(text, str) else text})
    assert poison.value.reason.startswith(entry)
    with pytest.raises(RecordError):
        read_line(ops.PUT_EVENTS, text)


def test_a_record_of_another_operation_is_a_line_without_members() -> None:
    """encode writes an item as its wire form alone; read_line gives it back with no members."""
    item = Item(item_id="i1", properties={"GENRE": "drama"})
    line = encode(ops.PUT_ITEMS, item)
    loaded: Any = json.loads(line)
    assert loaded == {"itemId": "i1", "properties": '{"GENRE":"drama"}'}
    assert read_line(ops.PUT_ITEMS, line) == (item, ())
