"""Where the client, the recorder and the forwarder meet telemetry; this module never imports OpenTelemetry.

Telemetry is off by default. ``aiopersonalize_events.otel`` (extra ``otel``)
turns it on by setting ``hook``; until then the whole cost on a call is the
client's one check ``_telemetry.hook is not None`` per call. The pieces:

``hook``
    None, or the object that wraps each call (``Hook.invoke``): it opens a
    span, runs the client's ``_invoke`` with a ``Call`` the retry loop
    reports each retry to, and records the outcome. Set only by
    ``aiopersonalize_events.otel``.
``watch_client`` / ``watch_recorder`` / ``watch_forwarder``
    called once when a client, recorder or forwarder is made: each is kept
    by weak reference (dropped when collected) with a small serial number,
    so observable gauges (retry budget, queue depth, spool size, forwarder
    lag) can read them whenever a metric reader asks, on whatever thread,
    and an ``instrument()`` after they were made still sees them.
``describe`` / ``stop_reason``
    the words the client's log lines and the spans use for an error: the
    error code (or class), HTTP status and request id, never the service's
    message (which may repeat a value of the request).

The forwarder contract (``aiopersonalize_events.redis.Forwarder``): call
``watch_forwarder(self)`` once in ``__init__`` (and ``forget_forwarder(self)``
once it stopped: a stopped forwarder reports nothing more) and keep ``self.stats`` up to
date with an object whose ``lag`` and ``pending`` attributes are the last
known consumer-group lag and pending-entry count (``int``, or None while
unknown). The gauges read those attributes from the metric reader's thread
and never await, so the forwarder refreshes them itself (for example from
``XINFO GROUPS`` after each read). ``held`` (a gauge) and ``read``,
``sent``, ``dead``, ``retried`` (cumulative counters) are reported too when
the stats have them; a missing or None attribute is skipped.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

if TYPE_CHECKING:
    from ._operations import Operation
    from ._retry import RetryPolicy
    from .errors import PersonalizeEventsError

__all__ = [
    "Call",
    "ClientFacts",
    "Hook",
    "clients",
    "describe",
    "error_type",
    "forget_forwarder",
    "forwarders",
    "hook",
    "recorders",
    "stop_reason",
    "watch_client",
    "watch_forwarder",
    "watch_recorder",
]

R = TypeVar("R")


class Call(Protocol):
    """One call in progress, as the client's retry loop reports to it."""

    def retrying(self, error: PersonalizeEventsError, attempt: int, delay: float) -> None:
        """Attempt number ``attempt`` (1-based) failed with ``error``; the next one starts in ``delay`` seconds."""


class ClientFacts(Protocol):
    """What a hook reads of the client making a call."""

    @property
    def region(self) -> str | None: ...

    @property
    def endpoint_url(self) -> str | None: ...

    @property
    def retry_policy(self) -> RetryPolicy: ...


class Hook(Protocol):
    """Wraps each call of every client while telemetry is on."""

    def invoke(
        self,
        send: Callable[[Operation, Any, Call], Awaitable[R]],
        client: ClientFacts,
        op: Operation,
        request: Any,
    ) -> Awaitable[R]:
        """Run ``send(op, request, call)`` (the client's own retry loop) and observe it."""
        ...


hook: Hook | None = None
"""The telemetry hook in force, or None (the default): set by ``aiopersonalize_events.otel`` only."""

_serial: Final = itertools.count(1)
_clients: Final[dict[int, weakref.ref[Any]]] = {}
_recorders: Final[dict[int, weakref.ref[Any]]] = {}
_forwarders: Final[dict[int, weakref.ref[Any]]] = {}


def _watch(registry: dict[int, weakref.ref[Any]], obj: object) -> None:
    key = next(_serial)

    def forget(_ref: weakref.ref[Any], key: int = key) -> None:
        registry.pop(key, None)

    registry[key] = weakref.ref(obj, forget)


def _live(registry: dict[int, weakref.ref[Any]]) -> list[tuple[int, Any]]:
    # dict.copy() is one C call: safe against a weakref callback or another thread changing the dict meanwhile
    found = []
    for key, ref in registry.copy().items():
        obj = ref()
        if obj is not None:
            found.append((key, obj))
    return found


def watch_client(client: object) -> None:
    """Keep ``client`` (weakly) for the retry-budget gauge; called once by the client's constructor."""
    _watch(_clients, client)


def watch_recorder(recorder: object) -> None:
    """Keep ``recorder`` (weakly) for the queue, spool and counter instruments; called once at construction."""
    _watch(_recorders, recorder)


def watch_forwarder(forwarder: object) -> None:
    """Keep ``forwarder`` (weakly) for the lag and pending gauges, read from its ``stats`` (see the module doc)."""
    _watch(_forwarders, forwarder)


def forget_forwarder(forwarder: object) -> None:
    """Stop reporting ``forwarder`` (it stopped): a closed forwarder has no lag or pending of its own to report."""
    for key, ref in _forwarders.copy().items():
        if ref() is forwarder:
            _forwarders.pop(key, None)


def clients() -> list[tuple[int, Any]]:
    """The live clients, each with its serial number."""
    return _live(_clients)


def recorders() -> list[tuple[int, Any]]:
    """The live recorders, each with its serial number."""
    return _live(_recorders)


def forwarders() -> list[tuple[int, Any]]:
    """The live forwarders, each with its serial number."""
    return _live(_forwarders)


def error_type(error: BaseException) -> str:
    """A low-cardinality name for what went wrong: the service's error code, else the exception's class."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code else type(error).__name__


def describe(error: BaseException) -> str:
    """``ThrottlingException (HTTP 400), request id ...`` or ``ConnectionClosedError``: no service message, no value."""
    text = error_type(error)
    status = getattr(error, "http_status", 0)
    if status:
        text += f" (HTTP {status})"
    request_id = getattr(error, "request_id", None)
    if request_id:
        text += f", request id {request_id}"
    return text


def stop_reason(policy: RetryPolicy, error: PersonalizeEventsError, attempt: int) -> str:
    """Why a call stopped after ``attempt`` attempts: not retryable, attempts used up, or retry budget empty.

    Mirrors ``RetryPolicy.retry_token``'s three answers of None, in its order.
    """
    if not error.retryable:
        return "not retryable"
    if attempt >= policy.max_attempts:
        return "attempts used up"
    return "retry budget empty"
