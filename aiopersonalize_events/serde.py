"""The one converter between shapes and the service's wire form.

``to_wire(shape)`` gives the service's camelCase dict with unset members
left out, timestamps as epoch seconds (an int when whole, otherwise a float
with millisecond precision) and ``properties`` as the JSON text the shape
holds. ``from_wire(cls, data)`` goes the other way, for a camelCase dict as a
JSON line in AWS format would hold it (``properties`` as an object or as a
string), and returns a validated shape or raises ``ValidationError`` naming
the member (``event_list[3].properties``).

Both are built once per shape class by cattrs' hook factories; the shapes
themselves know nothing of the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from . import _shapes
from ._naming import camel
from ._wire import converter, to_wire
from .errors import ValidationError

__all__ = ["converter", "from_wire", "to_wire"]

_S = TypeVar("_S")

_RECORD_TUPLES: Final = {
    "event_list": _shapes.Event,
    "items": _shapes.Item,
    "users": _shapes.User,
    "actions": _shapes.Action,
    "action_interactions": _shapes.ActionInteraction,
}


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _with_path(name: str, hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a structure hook so a nested ValidationError names this member."""

    def structure(value: Any, type_: Any) -> Any:
        try:
            return hook(value, type_)
        except ValidationError as exc:
            raise exc.prefixed(name) from None

    return structure


def _records_hook(record_cls: type[Any]) -> Callable[[Any, Any], tuple[Any, ...]]:
    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ValidationError("", f"must be a list of {record_cls.__name__} objects")
        out = []
        for i, entry in enumerate(value):
            try:
                out.append(_structure_shape(entry, record_cls))
            except ValidationError as exc:
                raise exc.prefixed(f"[{i}]") from None
        return tuple(out)

    return structure


def _metric_attribution_hook(value: Any, _: Any) -> Any:
    return None if value is None else _structure_shape(value, _shapes.MetricAttribution)


def _structure_factory(cls: type[Any]) -> Callable[[Any, Any], Any]:
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name in _RECORD_TUPLES:
            hook = _records_hook(_RECORD_TUPLES[field.name])
        elif field.name == "metric_attribution":
            hook = _metric_attribution_hook
        else:
            hook = _passthrough  # the shape's own converters and validators check the value
        overrides[field.name] = override(rename=camel(field.name), struct_hook=_with_path(field.name, hook))
    return make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True, **overrides)


converter.register_structure_hook_factory(attrs.has, _structure_factory)

_WIRE_NAMES: dict[type[Any], dict[str, str]] = {}


def _wire_names(cls: type[Any]) -> dict[str, str]:
    names = _WIRE_NAMES.get(cls)
    if names is None:
        names = _WIRE_NAMES[cls] = {camel(f.name): f.name for f in attrs.fields(cls)}
    return names


def _structure_shape(data: Any, cls: type[_S]) -> _S:
    if not isinstance(data, Mapping):
        raise ValidationError("", f"must be a JSON object for {cls.__name__}, not {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except ValidationError:
        raise
    except ForbiddenExtraKeysError as exc:
        extra = sorted(map(str, exc.extra_fields))  # str: a Mapping's keys may be of any type
        raise ValidationError(extra[0], f"is not a member of {cls.__name__}") from None
    except KeyError as exc:
        member = exc.args[0] if exc.args else "?"
        raise ValidationError(str(_wire_names(cls).get(member, member)), "is required") from None
    except TypeError as exc:
        # a required keyword missing from the constructor, or a wrong call shape
        raise ValidationError("", f"cannot build {cls.__name__}: {exc}") from None


def from_wire(cls: type[_S], data: Mapping[str, Any]) -> _S:
    """Build a validated shape of ``cls`` from the service's camelCase dict.

    ``properties`` may be a JSON object or a string holding one. A missing,
    unknown or invalid member raises ``ValidationError`` whose ``path`` names
    it with this library's snake_case names, e.g. ``event_list[3].sent_at``.
    """
    return _structure_shape(data, cls)
