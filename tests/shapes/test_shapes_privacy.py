"""Every shape's repr follows the service model's ``sensitive`` flags (botocore's copy of the model)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import attrs
import botocore
import pytest

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    Event,
    Item,
    MetricAttribution,
    PutActionInteractionsRequest,
    PutActionsRequest,
    PutEventsRequest,
    PutItemsRequest,
    PutUsersRequest,
    User,
)
from aiopersonalize_events._naming import camel

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"
MARK = "S3NS"  # in every string member's value, so a leak is easy to find


def _model() -> dict[str, Any]:
    path = Path(botocore.__file__).parent / "data/personalize-events/2018-03-22/service-2.json.gz"
    with gzip.open(path) as f:
        shapes: dict[str, Any] = json.load(f)["shapes"]
    return shapes


MODEL = _model()


def _holds_sensitive(target: str, seen: frozenset[str] = frozenset()) -> bool:
    """True when the shape ``target`` is sensitive or holds a sensitive value: walked down through a list's
    member, a map's key and value (a structure member keeps its own repr, so the walk stops there)."""
    spec = MODEL[target]
    if spec.get("sensitive"):
        return True
    if target in seen:
        return False
    below = [spec[part]["shape"] for part in ("member", "key", "value") if part in spec]
    return any(_holds_sensitive(shape, seen | {target}) for shape in below)


def _sensitive(shape: str, member: str) -> bool:
    """True when the model marks the whole structure, the member, or what the member's shape holds sensitive
    (``ActionInteraction.impression`` is a list of ``ActionId``, which the model marks)."""
    structure = MODEL[shape]
    spec = structure["members"][member]
    return bool(structure.get("sensitive") or spec.get("sensitive") or _holds_sensitive(spec["shape"]))


def test_the_model_walk_finds_sensitive_values_inside_lists() -> None:
    """The walk sees through a list to its member shape: both impressions hold sensitive ids."""
    assert _sensitive("ActionInteraction", "impression")
    assert _holds_sensitive("Impression")
    assert not _sensitive("ActionInteraction", "eventId")


def _event() -> Event:
    return Event(
        event_type=MARK + "type",
        sent_at=1_700_000_000.5,
        event_id=MARK + "eid",
        event_value=7.25,
        item_id=MARK + "item",
        properties={"k": MARK + "prop"},
        recommendation_id=MARK + "rec",
        impression=[MARK + "imp"],
        metric_attribution=MetricAttribution(event_attribution_source=MARK + "src"),
    )


def _interaction() -> ActionInteraction:
    return ActionInteraction(
        action_id=MARK + "action",
        session_id=MARK + "session",
        timestamp=1_700_000_000.5,
        event_type=MARK + "type",
        user_id=MARK + "user",
        event_id=MARK + "eid",
        recommendation_id=MARK + "rec",
        impression=[MARK + "imp"],
        properties={"k": MARK + "prop"},
    )


SAMPLES: list[Any] = [
    _event(),
    _interaction(),
    Item(item_id=MARK + "item", properties={"k": MARK + "prop"}),
    User(user_id=MARK + "user", properties={"k": MARK + "prop"}),
    Action(action_id=MARK + "action", properties={"k": MARK + "prop"}),
    MetricAttribution(event_attribution_source=MARK + "src"),
]


def _shown(value: Any) -> str:
    return repr(value)


@pytest.mark.parametrize("instance", SAMPLES, ids=lambda v: type(v).__name__)
def test_record_repr_hides_exactly_what_the_model_marks_sensitive(instance: Any) -> None:
    """A member the model marks sensitive never shows its value; one it does not mark shows it.

    The one exception is the event type of an ``Event``: the model marks the
    whole event sensitive, but its type is a schema-level category (``click``)
    that an operator needs to read a log line, so it shows.
    """
    cls = type(instance)
    text = repr(instance)
    for field in attrs.fields(cls):
        value = getattr(instance, field.name)
        sensitive = _sensitive(cls.__name__, camel(field.name))
        if cls is Event and field.name == "event_type":
            sensitive = False
        fragment = f"{field.name}={value!r}"
        if sensitive:
            assert f"{field.name}='***'" in text, (cls.__name__, field.name)
            for part in value if isinstance(value, tuple) else (value,):
                if isinstance(part, str):
                    assert part not in text, (cls.__name__, field.name)
        else:
            assert fragment in text, (cls.__name__, field.name)


@pytest.mark.parametrize(
    "request_",
    [
        PutEventsRequest(tracking_id="trk", session_id=MARK + "session", event_list=[_event()], user_id=MARK + "user"),
        PutActionInteractionsRequest(tracking_id="trk", action_interactions=[_interaction()]),
        PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="i", properties={"k": MARK + "prop"})]),
        PutUsersRequest(dataset_arn=ARN, users=[User(user_id="u", properties={"k": MARK + "prop"})]),
        PutActionsRequest(dataset_arn=ARN, actions=[Action(action_id="a", properties={"k": MARK + "prop"})]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_request_repr_follows_the_model_down_to_its_records(request_: Any) -> None:
    """A request's own sensitive members are hidden, and its records keep their own hiding inside it."""
    cls = type(request_)
    text = repr(request_)
    for field in attrs.fields(cls):
        value = getattr(request_, field.name)
        if isinstance(value, tuple):
            for record in value:
                assert repr(record) in text
            continue
        if _sensitive(cls.__name__, camel(field.name)):
            assert f"{field.name}='***'" in text
        else:
            assert f"{field.name}={value!r}" in text
    assert MARK + "prop" not in text
    assert MARK + "user" not in text


def test_every_shape_of_the_model_has_a_sample() -> None:
    """The samples above cover every structure of the model that is a record or a request."""
    structures = {name for name, spec in MODEL.items() if spec["type"] == "structure" and "Exception" not in name}
    covered = {type(s).__name__ for s in SAMPLES} | {
        "PutEventsRequest",
        "PutActionInteractionsRequest",
        "PutItemsRequest",
        "PutUsersRequest",
        "PutActionsRequest",
    }
    assert structures == covered


def test_an_unset_hidden_member_shows_as_none() -> None:
    """A hidden member that is unset shows as None, so the repr still tells what was given."""
    text = repr(Event(event_type="click", sent_at=1))
    assert "item_id=None" in text
    assert "properties=None" in text
    assert "sent_at='***'" in text
