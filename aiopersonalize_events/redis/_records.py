"""``add_records``: put records of any operation on a stream, for a ``Forwarder`` to send.

The recorder's spool covers events; catalog syncs and other producers of
items, users, actions or action interactions append them here (one stream
per target). Events and action interactions without an ``event_id`` get one
first, so that a record sent twice (a forwarder died before acknowledging
it) is de-duplicated by the service.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Iterable
from typing import Any

import attrs
import redis.asyncio

from .. import _operations as ops
from .._batching import _aiter
from .._lines import encode
from .._validators import check_optional_text, check_positive_int, check_text
from ..errors import ValidationError
from ._connect import connect
from ._entries import RECORD_FIELD, line_members

__all__ = ["add_records"]

_BY_RECORD = {op.record: op for op in ops.OPERATIONS}


async def add_records(
    redis_or_url: str | redis.asyncio.Redis,
    stream: str,
    records: Iterable[Any] | AsyncIterable[Any],
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    maxlen: int | None = None,
    batch_size: int = 256,
) -> list[bytes]:
    """Append ``records`` (all of one shape: Event, Item, User, Action or ActionInteraction) to ``stream``.

    Events need the ``session_id`` (and optional ``user_id``) they are sent
    with. Returns the entry ids, in order, once Redis has every record;
    Redis errors are raised as redis-py raises them (nothing is retried here:
    call again, the ids keep the service from counting a record twice).
    """
    check_text("stream", stream, 512)
    check_positive_int("batch_size", batch_size)
    if maxlen is not None:
        check_positive_int("maxlen", maxlen)
    connection = connect(redis_or_url, socket_timeout=10.0) if isinstance(redis_or_url, str) else redis_or_url
    op: ops.Operation | None = None
    members: tuple[Any, ...] = ()
    ids: list[bytes] = []
    try:
        pipe = connection.pipeline(transaction=False)
        pending = 0
        async for record in _aiter(records):
            found = _BY_RECORD.get(type(record))
            if found is None:
                raise ValidationError("records", f"must be records of one operation, not {type(record).__name__}")
            if op is None:
                op = found
                if line_members(op):
                    check_text("session_id", session_id, 256)
                    check_optional_text("user_id", user_id, 256)
                    members = (session_id, user_id)
            elif found is not op:
                raise ValidationError("records", "must all be of one shape (one stream per target)")
            if "event_id" in attrs.fields_dict(type(record)) and record.event_id is None:
                record = attrs.evolve(record, event_id=uuid.uuid4().hex)
            pipe.xadd(stream, {RECORD_FIELD: encode(op, record, members)}, maxlen=maxlen)
            pending += 1
            if pending >= batch_size:
                ids.extend(await pipe.execute())
                pending = 0
        if pending:
            ids.extend(await pipe.execute())
    finally:
        if isinstance(redis_or_url, str):
            await connection.aclose()
    return ids
