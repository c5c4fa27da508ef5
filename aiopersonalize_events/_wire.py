"""Shapes to the service's wire form: the unstructuring half of the package's one cattrs converter.

``to_wire(shape)`` gives the service's camelCase dict with unset members left
out, timestamps as epoch seconds (an int when whole) and ``properties`` as the
JSON text the shape holds. The hooks are made once per shape class by a hook
factory from the attrs fields, so this module knows no shape by name and the
shapes may use it (the 10 KB rule of an event is measured on its wire form).
The structuring half, ``from_wire``, is in ``serde``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs
from cattrs import Converter
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn, override

from ._naming import camel

__all__ = ["converter", "to_wire"]

TIMESTAMP_FIELDS: Final = frozenset({"sent_at", "timestamp"})
"""Members held as epoch seconds."""

RECORD_FIELDS: Final = frozenset({"event_list", "items", "users", "actions", "action_interactions"})
"""Request members holding a tuple of records (shapes)."""

NESTED_FIELDS: Final = frozenset({"metric_attribution"})
"""Members holding another shape (unstructured by its own hook); every other member is a plain JSON value."""

converter: Final = Converter(forbid_extra_keys=True, detailed_validation=False)
"""The package's cattrs converter; use ``to_wire``/``serde.from_wire`` rather than this directly."""


def _epoch(value: float) -> int | float:
    whole = int(value)
    return whole if whole == value else value


def _records(records: tuple[Any, ...]) -> list[dict[str, Any]]:
    fn = converter.get_unstructure_hook(type(records[0]))  # a request's records are all of one class
    return [fn(r) for r in records]


def _unstructure_factory(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        kwargs: dict[str, Any] = {"rename": camel(field.name), "omit_if_default": field.default is None}
        if field.name in TIMESTAMP_FIELDS:
            kwargs["unstruct_hook"] = _epoch
        elif field.name in RECORD_FIELDS:
            kwargs["unstruct_hook"] = _records
        elif field.name == "impression":
            kwargs["unstruct_hook"] = list
        elif field.name not in NESTED_FIELDS:
            kwargs["unstruct_hook"] = identity  # str, float, int or None: cattrs then inlines the member
        overrides[field.name] = override(**kwargs)
    return make_dict_unstructure_fn(cls, converter, **overrides)


converter.register_unstructure_hook_factory(attrs.has, _unstructure_factory)


def to_wire(shape: Any) -> dict[str, Any]:
    """Return the service's camelCase dict for a shape, with unset members omitted.

    Timestamps become epoch seconds (an int when whole), ``properties`` the
    JSON text the shape holds, sequences lists. The dict is ready for
    ``json.dumps``; nothing is validated again.
    """
    result: dict[str, Any] = converter.unstructure(shape)
    return result
