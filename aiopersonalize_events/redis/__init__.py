"""Beyond one machine, on Redis: a durable stream of events, forwarders draining it, and one shared quota.

Install with ``pip install 'aiopersonalize-events[redis]'`` (redis-py's
``redis.asyncio``; Redis 7 or later, ElastiCache, MemoryDB or Valkey).
``import aiopersonalize_events`` does not import this module.

- ``RedisStreamSpool(url, stream=...)``: a spool for
  ``client.event_recorder(tracking_id=..., spool=...)``. ``record()`` stays
  synchronous; a background task appends the events to the stream (``XADD``,
  pipelined); ``await recorder.put(...)`` returns once Redis has the event.
- ``Forwarder(client, url, stream=..., group=..., tracking_id=...)``: one
  member of a consumer group that sends the stream's records to the service
  (``aiopersonalize-events forward`` runs one). Many forwarders share the
  work; entries are acknowledged once the service accepted them, taken over
  from a dead forwarder after ``claim_idle``, and refused records go to a
  dead-letter stream with the reason.
- ``RedisRateLimiter(url, key=..., rate=...)``: one rate for every process
  naming the same key, for ``requests_per_second=`` of the ``*_batched``
  helpers, the ``Forwarder``, and ``--rate-limiter`` on the command line.

How records travel. One stream per target: the events of one tracker
(``PutEvents``), the items of one dataset (``PutItems``), and so on; a
forwarder serves one stream, one operation (``operation=``) and one tracker
or dataset. An entry holds one record as a JSON line in the command line's
input form (field ``record``: camelCase, plus ``sessionId``/``userId`` for
events), written by the spool or by ``add_records``.

Keys, and Redis Cluster. The stream, its dead-letter stream
(``dead_letter_key(stream)``: ``S:dead`` when ``S`` has a hash tag, else
``{S}:dead``) and the forwarders' scripts touch one hash slot, so they work
on a cluster as they are; name streams with a hash tag, e.g.
``pe:{events:TRACKER}``, to choose what shares a slot. A rate limiter is one
key (``pe:{quota}:PutItems:DATASET-GROUP``, say).
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401  (checked here: a missing extra is named, not a bare ModuleNotFoundError)
except ImportError as exc:
    raise ImportError(
        "aiopersonalize_events.redis needs redis-py (redis.asyncio): pip install 'aiopersonalize-events[redis]'"
    ) from exc

from ._entries import PoisonEntry
from ._forwarder import Forwarder, ForwarderStateError, ForwarderStats, OperationClient, default_consumer
from ._keys import dead_letter_key, hash_tag
from ._limiter import RedisCommandError, RedisRateLimiter, limiter_from_url, quota_key
from ._records import add_records
from ._spool import RedisSpoolStats, RedisStreamSpool

__all__ = [
    "Forwarder",
    "ForwarderStateError",
    "ForwarderStats",
    "OperationClient",
    "PoisonEntry",
    "RedisCommandError",
    "RedisRateLimiter",
    "RedisSpoolStats",
    "RedisStreamSpool",
    "add_records",
    "dead_letter_key",
    "default_consumer",
    "hash_tag",
    "limiter_from_url",
    "quota_key",
]
