"""Names between Python and the service: ``snake_case`` members and ``camelCase`` wire names."""

from __future__ import annotations

import functools

__all__ = ["camel", "snake"]


@functools.lru_cache(maxsize=256)
def camel(name: str) -> str:
    """The service's camelCase spelling of a snake_case name: ``event_list`` -> ``eventList``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.lru_cache(maxsize=256)
def snake(name: str) -> str:
    """The snake_case spelling of a camelCase or PascalCase name: ``PutEvents`` -> ``put_events``."""
    out: list[str] = []
    for ch in name:
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
