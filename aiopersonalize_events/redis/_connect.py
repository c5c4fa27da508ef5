"""The Redis connection of a spool, forwarder or limiter, which errors pass, and the wait before trying again.

``connect(url)`` makes a ``redis.asyncio.Redis`` with redis-py's own retries
turned off: each component here decides itself what to do when Redis does
not answer (wait in memory, keep entries pending, hold a call). ``transient``
says whether an error may pass by itself (connection refused or dropped, a
timeout, a server loading its data, out of memory, a replica being
promoted); ``Backoff`` gives the waits between tries, from the package's one
retry policy (capped exponential backoff with full jitter).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import Any, Final

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._retry import RetryBudget, RetryPolicy
from ..errors import TransportError, ValidationError

__all__ = ["Backoff", "check_url", "connect", "describe", "transient"]

_TRANSIENT_REPLIES: Final = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "MISCONF")
"""Error replies that pass by themselves (memory freed, failover done, data loaded, disk writable again)."""

MIN_WAIT: Final = 0.01
"""The shortest wait between tries, even with ``set_testing(True)``: a down Redis is never polled in a loop."""


def check_url(url: object) -> None:
    """``ValidationError`` (naming ``url``) unless ``url`` is a non-empty string; redis-py parses the rest."""
    if not isinstance(url, str) or not url:
        raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")


def connect(url: str, *, socket_timeout: float | None, connect_timeout: float = 5.0) -> redis.asyncio.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``) without redis-py's own retries."""
    check_url(url)
    try:
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise ValidationError("url", f"not a Redis URL ({exc})") from None
    return client


def transient(exc: BaseException) -> bool:
    """True when ``exc`` may pass by itself (try again later); False for an error that will not."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        return str(exc).startswith(_TRANSIENT_REPLIES)
    return False


def describe(exc: BaseException) -> str:
    """One line about a Redis error (never the URL, which may hold a password)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Waits between tries while Redis is away: ``next()`` grows (full jitter, capped), ``reset()`` after a success.

    The waits come from a ``RetryPolicy`` (the package's one backoff
    formula), never shorter than ``MIN_WAIT``.
    """

    __slots__ = ("_attempt", "_error", "_policy")

    def __init__(self, *, base: float = 0.05, cap: float = 2.0, random: Callable[[], float] = _random.random) -> None:
        self._policy = RetryPolicy(
            max_attempts=1, backoff_base=base, backoff_max=cap, budget=RetryBudget(0), random=random
        )
        self._attempt = 0
        self._error = TransportError("Redis is not answering")

    @property
    def failing(self) -> bool:
        """True after a failure, until ``reset()``."""
        return self._attempt > 0

    def next(self) -> float:
        """The wait before the next try (seconds)."""
        self._attempt += 1
        return max(MIN_WAIT, self._policy.delay(self._attempt, self._error))

    def reset(self) -> None:
        self._attempt = 0


def as_text(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
