"""The Redis connection of a spool, forwarder or limiter, which errors pass, and the wait before trying again.

``connect(url)`` makes a ``redis.asyncio.Redis`` with redis-py's own retries
turned off: each component here decides itself what to do when Redis does
not answer (wait in memory, keep entries pending, hold a call). ``fault``
sorts an error by the exception class redis-py raises for it (never by its
text, which redis-py has already stripped of the reply's code):

- ``"transient"``: it passes by itself: connection refused or dropped, a
  timeout, a server loading its data (``LOADING``), out of memory (``OOM``),
  read-only or without its master during a failover (``READONLY``,
  ``MASTERDOWN``), a cluster resharding or down (``TRYAGAIN``,
  ``CLUSTERDOWN``), a busy script (``BUSY``), a failed snapshot (``MISCONF``),
  too few replicas (``NOREPLICAS``), too many clients;
- ``"setup"``: the operator's to fix: a wrong password or user, a user
  without a permission (``WRONGPASS``, ``NOAUTH``, ``NOPERM``);
- ``"refused"``: Redis refuses this command for good (``WRONGTYPE``, ...).

Components wait and try again on the first two (``transient`` is True for
both: nothing is failed while an operator can still fix it) and say so once
per condition (``Backoff.new_condition`` and ``say_waiting``): a WARNING for
an outage, an ERROR saying what to fix for a set-up error. ``Backoff`` gives
the waits between tries, from the package's one retry policy (capped
exponential backoff with full jitter).
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Callable
from typing import Any, Final, Literal

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .. import _redact
from .._retry import RetryBudget, RetryPolicy
from ..errors import TransportError, ValidationError

__all__ = [
    "Backoff",
    "Fault",
    "check_parses",
    "check_url",
    "connect",
    "describe",
    "fault",
    "say_waiting",
    "setup_error",
    "transient",
]

Fault = Literal["transient", "setup", "refused"]


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """The redis-py exception classes of these names that this redis-py has (older ones lack a few)."""
    found = (getattr(redis.exceptions, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type) and issubclass(cls, BaseException))


_SETUP_CLASSES: Final = _classes(
    "AuthenticationError", "AuthorizationError", "AuthenticationWrongNumberOfArgsError", "NoPermissionError"
)
"""A wrong password or user, or a user without a permission (redis-py raises some as ConnectionError subclasses)."""

_TRANSIENT_CLASSES: Final = (
    *_classes(
        "ConnectionError",  # refused, dropped, BusyLoadingError (LOADING), MaxClientsReachedError
        "TimeoutError",
        "OutOfMemoryError",  # OOM
        "ReadOnlyError",  # READONLY: a replica, or a primary being demoted in a failover
        "TryAgainError",  # TRYAGAIN: a cluster resharding
        "ClusterDownError",  # CLUSTERDOWN, and MasterDownError (MASTERDOWN) below it
        "MasterDownError",
    ),
    OSError,
)

_TRANSIENT_CODES: Final = ("BUSY ", "MISCONF ", "NOREPLICAS ", "LOADING ", "OOM ", "READONLY ", "MASTERDOWN ")
"""Replies redis-py leaves as a plain ResponseError with the code still in front (and, for an older redis-py,
the ones it has classes for now): they pass by themselves too."""

_SETUP_CODES: Final = ("NOPERM ", "NOAUTH ", "WRONGPASS ")

MIN_WAIT: Final = 0.01
"""The shortest wait between tries, even with ``set_testing(True)``: a down Redis is never polled in a loop."""

_URL_HINT: Final = (
    "not a Redis URL (redis://[[user]:password@]host[:port][/db], rediss://..., unix://...; "
    "percent-encode '/', '#', '?' and '@' in a password: %2F %23 %3F %40)"
)


def check_url(url: object) -> None:
    """``ValidationError`` (naming ``url``) unless ``url`` is a non-empty string; ``connect`` parses the rest."""
    if not isinstance(url, str) or not url:
        raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")


def check_parses(url: object, name: str = "url") -> None:
    """``ValidationError`` (naming ``name``) unless ``url`` is a Redis URL redis-py reads as meant; pure parsing.

    Refused too: a ``redis://`` or ``rediss://`` URL with an ``@`` after its
    host part, the sign of a ``/``, ``?`` or ``#`` left unencoded in the
    password (``redis://:12/34@host`` would otherwise connect to port 12 of
    localhost). The message never quotes the URL: redis-py's own may hold a
    piece of the password.
    """
    check_url(url)
    assert isinstance(url, str)
    from urllib.parse import urlsplit

    from redis.connection import parse_url as _parse_url

    parse_url: Callable[[str], object] = _parse_url  # redis-py leaves it untyped
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() in ("redis", "rediss") and "@" in f"{parts.path}{parts.query}{parts.fragment}":
            raise ValueError("user information split by an unencoded character")
        parse_url(url)
    except ValueError:
        raise ValidationError(name, _URL_HINT) from None


def connect(url: str, *, socket_timeout: float | None, connect_timeout: float = 5.0) -> redis.asyncio.Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``) without redis-py's own retries.

    A URL that does not parse (an unencoded ``/`` or ``#`` in the password,
    an unknown scheme) raises ``ValidationError`` naming ``url`` whose text
    never quotes it: redis-py's own message may hold a piece of the password.
    """
    check_parses(url)
    try:
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, TypeError):  # TypeError: an unknown ?option=
        raise ValidationError("url", _URL_HINT) from None
    return client


def fault(exc: BaseException) -> Fault:
    """Whose the error is: ``"transient"`` (passes by itself), ``"setup"`` (the operator's), or ``"refused"``."""
    if isinstance(exc, _SETUP_CLASSES):  # before ConnectionError: redis-py's AuthenticationError is one
        return "setup"
    if isinstance(exc, _TRANSIENT_CLASSES):
        return "transient"
    if isinstance(exc, redis.exceptions.ResponseError):
        text = str(exc)
        if text.startswith(_SETUP_CODES):
            return "setup"
        if text.startswith(_TRANSIENT_CODES):
            return "transient"
    return "refused"


def transient(exc: BaseException) -> bool:
    """True when the answer is to wait and try again: the error passes by itself, or once the operator fixes it."""
    return fault(exc) != "refused"


def setup_error(exc: BaseException) -> bool:
    """True for a wrong password or user, or a missing permission: the operator's to fix, never the events' fault."""
    return fault(exc) == "setup"


def _advice(exc: BaseException) -> str:
    if isinstance(exc, _classes("NoPermissionError")) or str(exc).startswith("NOPERM"):
        return (
            "the Redis user lacks a permission; grant it in the server's ACL "
            "(the commands and keys this component uses, e.g. ACL SETUSER ... +@stream ~KEY)"
        )
    return (
        "Redis refused the user or password; put the right user:password in the URL "
        "(percent-encoded), or enable the user and set its password on the server (ACL SETUSER / requirepass)"
    )


def say_waiting(log: logging.Logger, who: str, exc: BaseException, url: str, holding: str) -> None:
    """One line that ``who`` is waiting for Redis at ``url`` (shown redacted), holding ``holding``.

    A set-up error is said at ERROR, as the operator's to fix and with what
    to fix; an outage at WARNING.
    """
    where = _redact.url(url)
    if setup_error(exc):
        log.error(
            "%s: %s at %s (%s); this is the operator's to fix, nothing is failed meanwhile: %s, trying again",
            who,
            _advice(exc),
            where,
            describe(exc),
            holding,
        )
    else:
        log.warning("%s: Redis is not answering at %s (%s); %s, trying again", who, where, describe(exc), holding)


def describe(exc: BaseException) -> str:
    """One line about a Redis error (never the URL, which may hold a password)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Waits between tries while Redis is away: ``next()`` grows (full jitter, capped), ``reset()`` after a success.

    The waits come from a ``RetryPolicy`` (the package's one backoff
    formula), never shorter than ``MIN_WAIT``. ``new_condition(exc)`` is
    True for the first failure of an outage and whenever the kind of
    failure changes (an outage becomes a wrong password): the one time to
    say so.
    """

    __slots__ = ("_attempt", "_condition", "_error", "_policy")

    def __init__(self, *, base: float = 0.05, cap: float = 2.0, random: Callable[[], float] = _random.random) -> None:
        self._policy = RetryPolicy(
            max_attempts=1, backoff_base=base, backoff_max=cap, budget=RetryBudget(0), random=random
        )
        self._attempt = 0
        self._condition: tuple[str, str] | None = None
        self._error = TransportError("Redis is not answering")

    @property
    def failing(self) -> bool:
        """True after a failure, until ``reset()``."""
        return self._attempt > 0

    def new_condition(self, exc: BaseException) -> bool:
        """True when ``exc`` starts an outage or changes its kind (call before ``next()``)."""
        condition = (fault(exc), type(exc).__name__)
        if self._attempt and condition == self._condition:
            return False
        self._condition = condition
        return True

    def next(self) -> float:
        """The wait before the next try (seconds)."""
        self._attempt += 1
        return max(MIN_WAIT, self._policy.delay(self._attempt, self._error))

    def reset(self) -> None:
        self._attempt = 0
        self._condition = None


def as_text(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
