"""``RedisRateLimiter``: one request rate for a whole fleet, as a GCRA in a Lua script on Redis's clock.

Every process that names the same ``key`` shares the limit. ``acquire()``
runs one script, atomically: it reads Redis's own clock (``TIME``, so the
hosts' clocks never matter), reserves the next free slot of the key's
schedule (the "theoretical arrival time" of the generic cell rate
algorithm, kept in the key as microseconds), and answers how long to wait
for it; the caller then sleeps that long, locally. One round trip per call,
first come first served across the fleet, and no polling. With ``burst`` 1
(the default) slots are ``1 / rate`` seconds apart on Redis's clock, so any
one-second window holds at most ``rate`` of them; a larger ``burst`` lets
that many go at once after a quiet spell (and a window then holds up to
``rate + burst - 1``). A cancelled ``acquire()`` leaves its slot unused: the
fleet then sends less than it could, never more.

While Redis does not answer, ``acquire()`` waits and tries again with
backoff (it never lets a call through unchecked); so it does, after one
ERROR line saying what to fix, while Redis refuses the password or the
user's permissions (the operator's to fix: the calls are held, not failed).
An error Redis returns for good (the key holds another type, scripts
disabled) raises ``RedisCommandError``.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.asyncio

from .. import _clock
from .._clock import Clock, SleepClock
from .._validators import check_text
from ..errors import PersonalizeEventsError, ValidationError
from ._connect import Backoff, check_parses, check_url, connect, describe, say_waiting, transient

__all__ = ["RedisCommandError", "RedisRateLimiter", "limiter_from_url", "quota_key"]

log: Final = logging.getLogger("aiopersonalize_events.redis")

_GCRA: Final = """
-- KEYS[1]: the limit's key; ARGV[1]: microseconds between slots; ARGV[2]: burst (slots that may go at once)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local slot = next_tat - burst * interval
if slot < now then slot = now end
local ttl = math.floor((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', ttl))
return {slot - now, slot}
"""
"""The reservation: wait (microseconds) and the slot's time on Redis's clock (microseconds since the epoch)."""


class RedisCommandError(PersonalizeEventsError):
    """Redis refused a command for good (a key holding another type, scripts disabled)."""


class RedisRateLimiter:
    """At most ``rate`` calls per second across every process sharing ``key`` (an ``AcquireLimit``).

    Pass it wherever a ``requests_per_second`` is taken (the ``*_batched``
    helpers, the recorder, the ``Forwarder``); on the command line,
    ``--rate-limiter redis://...``. ``burst`` (default 1) slots may go at
    once after a quiet spell. ``key`` should hold a hash tag on Redis Cluster
    only if other keys must share its slot (one key needs none); the README
    suggests ``aiopersonalize-events:{quota}:PutItems:DATASET-GROUP``.
    ``last_slot`` is the Redis time (epoch seconds) of the slot the last
    ``acquire()`` got. ``clock`` (a ``Clock``: an event loop or a
    ``ManualClock``; the running loop by default) measures every wait, the
    wait for a slot and the waits while Redis is away; ``sleep`` (kept for
    compatibility; prefer ``clock``) makes them instead; ``random`` draws
    the backoff's jitter.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str,
        rate: float,
        burst: int | None = None,
        socket_timeout: float = 5.0,
        backoff_max: float = 2.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        check_url(url)
        if clock is not None and not isinstance(clock, Clock):
            raise ValidationError("clock", "must have time() and call_at(when, callback, *args), as an event loop has")
        check_text("key", key, 512)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1_000_000:
            raise ValidationError("rate", "must be a positive number of calls per second (below 1,000,000)")
        if burst is None:
            burst = 1
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValidationError("burst", "must be a whole number of at least 1")
        self._url = url
        self._key = key
        self._rate = float(rate)
        self._burst = burst
        self._interval_us = max(1, round(1_000_000 / self._rate))
        self._socket_timeout = float(socket_timeout)
        self._clock: Clock | None = SleepClock(sleep, clock) if sleep is not None else clock
        self._backoff = Backoff(cap=backoff_max, random=random)
        self._redis: redis.asyncio.Redis | None = None
        self._script: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_slot: float | None = None
        self.granted = 0
        self.waited = 0.0

    def __repr__(self) -> str:
        return f"RedisRateLimiter(key={self._key!r}, rate={self._rate:g}, burst={self._burst})"

    @property
    def key(self) -> str:
        """The Redis key every process sharing this limit names."""
        return self._key

    @property
    def rate(self) -> float:
        """Calls per second across the fleet."""
        return self._rate

    async def __aenter__(self) -> RedisRateLimiter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _connection(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._redis = connect(self._url, socket_timeout=self._socket_timeout)
            self._script = self._redis.register_script(_GCRA)
            self._loop = loop
        return self._script

    async def acquire(self) -> None:
        """Wait until one more call is allowed across the fleet, then take it."""
        while True:
            script = self._connection()
            try:
                wait_us, slot_us = await script(keys=[self._key], args=[self._interval_us, self._burst])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not transient(exc):
                    raise RedisCommandError(f"the rate limiter's script failed: {describe(exc)}") from None
                if self._backoff.new_condition(exc):
                    say_waiting(log, "rate limiter", exc, self._url, "calls wait for it")
                await _clock.sleep(self._clock, self._backoff.next())
                continue
            break
        if self._backoff.failing:
            log.warning("rate limiter: Redis answers again")
            self._backoff.reset()
        self.last_slot = int(slot_us) / 1_000_000
        self.granted += 1
        if wait_us > 0:
            self.waited += int(wait_us) / 1_000_000
            await _clock.sleep(self._clock, int(wait_us) / 1_000_000)

    async def close(self) -> None:
        """Close the connection (idempotent; ``acquire()`` opens a new one if called again)."""
        connection, self._redis = self._redis, None
        self._script = None
        if connection is not None:
            await connection.aclose()


_QUERY_OPTIONS: Final = ("key", "rate", "burst")


def quota_key(operation: str, resource: str) -> str:
    """The default key of the fleet-wide quota of ``operation`` on ``resource``: one per dataset group or tracker.

    ``arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS`` ->
    ``aiopersonalize-events:quota:PutItems:us-east-1:123456789012:shop``;
    a tracking id is used as it is.
    """
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[2] == "personalize" and parts[5].startswith("dataset/"):
        group = parts[5].split("/")[1] if parts[5].count("/") >= 1 else parts[5]
        scope = f"{parts[3]}:{parts[4]}:{group}"
    else:
        scope = resource
    return f"aiopersonalize-events:quota:{operation}:{scope}"


def limiter_from_url(url: str, *, key: str, rate: float) -> RedisRateLimiter:
    """A ``RedisRateLimiter`` for ``redis://...[?key=K&rate=R&burst=B]``: the query overrides ``key`` and ``rate``.

    The command line's ``--rate-limiter URL`` goes through here. The other
    query options are redis-py's (``?db=...``, ``?socket_timeout=...``).
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    check_parses(url, "rate_limiter")  # never quotes the URL, which may hold a password
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValidationError("rate_limiter", "must be a redis://, rediss:// or unix:// URL")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _QUERY_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    burst: int | None = None
    try:
        if "rate" in ours:
            rate = float(ours["rate"])
        if "burst" in ours:
            burst = int(ours["burst"])
    except ValueError:
        raise ValidationError("rate_limiter", "rate= and burst= in the URL must be numbers") from None
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    return RedisRateLimiter(plain, key=ours.get("key") or key, rate=rate, burst=burst)
