"""OpenTelemetry traces and metrics for aiopersonalize-events (extra ``otel``: ``opentelemetry-api`` only).

Turn it on once, at start-up, as with OpenTelemetry's own instrumentations::

    from aiopersonalize_events.otel import PersonalizeEventsInstrumentor

    PersonalizeEventsInstrumentor().instrument()  # the global providers; or tracer_provider=, meter_provider=

(``instrument()``/``uninstrument()`` here are short for the same.) From then
on every call of every client is a span named ``PersonalizeEvents.PutEvents``
(..., kind CLIENT, per OpenTelemetry's conventions for AWS SDK calls), each
retry an event ``retry`` on it, and the instruments listed in the README's
"Observability" section report calls, durations, records, retries, the retry
budget, the recorders' queues, spools and counters, and the forwarders' lag.
No attribute ever holds an id, a property, a tracking id, a dataset ARN, a
credential or the service's error message (which may repeat a value).

Telemetry never changes what a call does: a tracer, span processor or meter
that raises is caught, said once at WARNING (then at DEBUG), and the call
goes on as it would without instrumentation.

Off by default: ``import aiopersonalize_events`` never imports this module or
OpenTelemetry, and a call checks one module attribute. With the API but no
SDK configured, spans and instruments are OpenTelemetry's no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
    from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without OpenTelemetry
    raise ImportError(
        "aiopersonalize_events.otel needs the OpenTelemetry API: pip install 'aiopersonalize-events[otel]'"
    ) from exc

from . import _telemetry
from ._operations import Operation
from ._version import __version__
from .errors import PersonalizeEventsError

__all__ = ["PersonalizeEventsInstrumentor", "instrument", "uninstrument"]

log: Final = logging.getLogger("aiopersonalize_events.otel")

SCOPE: Final = "aiopersonalize_events"
"""The instrumentation scope (tracer and meter name)."""
SERVICE: Final = "PersonalizeEvents"
"""``rpc.service``: the service's name as the AWS SDKs spell it in code (span names ``PersonalizeEvents.PutEvents``)."""

# attributes beyond OpenTelemetry's conventions live under the library's own namespace
RECORDS: Final = "aiopersonalize_events.records"
ATTEMPTS: Final = "aiopersonalize_events.attempts"
STOP_REASON: Final = "aiopersonalize_events.stop_reason"
ATTEMPT: Final = "aiopersonalize_events.attempt"
RETRY_DELAY: Final = "aiopersonalize_events.retry_delay"
OUTCOME: Final = "aiopersonalize_events.outcome"
CLIENT_ID: Final = "aiopersonalize_events.client.id"
RECORDER_ID: Final = "aiopersonalize_events.recorder.id"
RECORDER_SPOOL: Final = "aiopersonalize_events.recorder.spool"
FORWARDER_ID: Final = "aiopersonalize_events.forwarder.id"

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0)
"""Bucket bounds (seconds) advised for ``rpc.client.call.duration``: OpenTelemetry's for HTTP, then 30 and 60."""

_Callback = Callable[[CallbackOptions], Iterable[Observation]]

_complained: set[str] = set()


def _complain(what: str) -> None:
    """Telemetry itself failed (a span processor, tracer or meter raised): one WARNING, then DEBUG lines.

    Call it from an ``except`` block. The call being observed is never
    affected: instrumentation must not change what a call does. The first
    failure after ``instrument()`` is said at WARNING, every later one (of
    any kind) at DEBUG, so a broken exporter never floods the log.
    """
    if _complained:
        log.debug("telemetry failed again (%s); the call is unaffected", what, exc_info=True)
        return
    _complained.add(what)
    log.warning(
        "telemetry failed (%s); the call is unaffected, and later telemetry failures are logged at DEBUG",
        what,
        exc_info=True,
    )


class _Unobserved:
    """The ``Call`` of a call whose span could not start: retries go unreported."""

    __slots__ = ()

    def retrying(self, error: PersonalizeEventsError, attempt: int, delay: float) -> None:
        del error, attempt, delay


_UNOBSERVED: Final = _Unobserved()


def _histogram(meter: Meter, name: str, unit: str, description: str) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
        )
    except TypeError:  # opentelemetry-api before 1.23 takes no advice
        return meter.create_histogram(name, unit=unit, description=description)


class _Instruments:
    """Every instrument, made once per meter (an SDK meter keeps an instrument for good, callbacks included).

    ``enabled`` is False after ``uninstrument()``: the observable callbacks
    then report nothing, and an ``instrument()`` with the same meter provider
    uses these again.
    """

    def __init__(self, meter: Meter) -> None:
        self.enabled = False
        self.duration = _histogram(
            meter, "rpc.client.call.duration", "s", "Duration of Personalize Events calls, retries and waits included"
        )
        self.calls = meter.create_counter(
            "aiopersonalize_events.client.calls", unit="{call}", description="Calls made, by operation and outcome"
        )
        self.records_sent = meter.create_counter(
            "aiopersonalize_events.client.records.sent",
            unit="{record}",
            description="Records in calls the service accepted",
        )
        self.records_failed = meter.create_counter(
            "aiopersonalize_events.client.records.failed",
            unit="{record}",
            description="Records in calls that failed for good (after the client's retries)",
        )
        self.retries = meter.create_counter(
            "aiopersonalize_events.client.retries", unit="{retry}", description="Attempts retried within a call"
        )
        self._observe_clients(meter)
        self._observe_recorders(meter)
        self._observe_forwarders(meter)

    def _observe_clients(self, meter: Meter) -> None:
        """The gauges read from each live client: its retry budget and its adaptive rate."""
        meter.create_observable_gauge(
            "aiopersonalize_events.client.retry_budget.tokens",
            callbacks=[self._budget],
            unit="{token}",
            description="Tokens left in each live client's retry budget",
        )
        meter.create_observable_gauge(
            "aiopersonalize_events.client.rate_limit.rate",
            callbacks=[self._rate_limit],
            unit="{call}/s",
            description="Calls per second each adaptive-mode client allows itself (once throttled)",
        )

    def _observe_recorders(self, meter: Meter) -> None:
        """The gauges and counters read from each live recorder (its spool's included)."""
        gauges: list[tuple[str, str, str, Callable[[Any], Any]]] = [
            ("pending", "{event}", "Events a recorder holds: queued, in flight or waiting to be retried", _pending),
            ("spool.events", "{event}", "Events held by a recorder's spool", _spool_len),
            ("spool.size", "By", "Bytes of the events held by a recorder's spool (0 when it does not count)", _nbytes),
        ]
        for name, unit, description, read in gauges:
            meter.create_observable_gauge(
                f"aiopersonalize_events.recorder.{name}",
                callbacks=[self._recorder_callback(read)],
                unit=unit,
                description=description,
            )
        counters = [
            ("recorded", "{event}", "Events a recorder accepted (recovered ones included)"),
            ("sent", "{event}", "Events a recorder delivered"),
            ("failed", "{event}", "Events a recorder could not deliver (handed to on_failure)"),
            ("dropped", "{event}", "Events a recorder dropped (queue full, or closed)"),
            ("retried", "{call}", "Calls a recorder sent again after a failure"),
            ("recovered", "{event}", "Events a recorder took over from a durable spool"),
        ]
        for name, unit, description in counters:
            meter.create_observable_counter(
                f"aiopersonalize_events.recorder.{name}",
                callbacks=[self._recorder_callback(_stat(name))],
                unit=unit,
                description=description,
            )

    def _observe_forwarders(self, meter: Meter) -> None:
        """The gauges and counters read from each live forwarder."""
        for name, description in (
            ("lag", "Stream entries not yet read by a forwarder's consumer group"),
            ("pending", "Stream entries read by a forwarder's consumer group and not yet acknowledged"),
            ("held", "Stream entries a forwarder has read and not settled yet"),
        ):
            meter.create_observable_gauge(
                f"aiopersonalize_events.forwarder.{name}",
                callbacks=[self._forwarder_callback(name)],
                unit="{entry}",
                description=description,
            )
        for name, unit, description in (
            ("read", "{entry}", "Stream entries a forwarder read"),
            ("sent", "{record}", "Records a forwarder delivered (and acknowledged)"),
            ("dead", "{entry}", "Entries a forwarder moved to the dead-letter stream"),
            ("retried", "{call}", "Calls a forwarder made again after a failure"),
        ):
            meter.create_observable_counter(
                f"aiopersonalize_events.forwarder.{name}",
                callbacks=[self._forwarder_callback(name)],
                unit=unit,
                description=description,
            )

    def _budget(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.enabled:
            return ()
        found = []
        for key, client in _telemetry.clients():
            try:
                tokens = client.retry_policy.budget.tokens
                attributes: dict[str, Any] = {CLIENT_ID: key}
                address = _server(client.endpoint_url)
            except Exception:  # never let one odd object break the reader
                continue
            if address is not None:
                attributes["server.address"] = address[0]
            found.append(Observation(tokens, attributes))
        return found

    def _rate_limit(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.enabled:
            return ()
        found = []
        for key, client in _telemetry.clients():
            try:
                limiter = client.retry_policy.rate_limiter
                rate = None if limiter is None else limiter.stats.rate
                attributes: dict[str, Any] = {CLIENT_ID: key}
                address = _server(client.endpoint_url)
            except Exception:  # never let one odd object break the reader
                continue
            if rate is None:
                continue
            if address is not None:
                attributes["server.address"] = address[0]
            found.append(Observation(rate, attributes))
        return found

    def _recorder_callback(self, read: Callable[[Any], Any]) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if not self.enabled:
                return ()
            found = []
            for key, recorder in _telemetry.recorders():
                try:
                    value = read(recorder)
                    spool = type(getattr(recorder, "spool", None)).__name__
                except Exception:
                    continue
                if value is not None:
                    found.append(Observation(value, {RECORDER_ID: key, RECORDER_SPOOL: spool}))
            return found

        return observe

    def _forwarder_callback(self, name: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if not self.enabled:
                return ()
            found = []
            for key, forwarder in _telemetry.forwarders():
                value = getattr(getattr(forwarder, "stats", None), name, None)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    found.append(Observation(value, {FORWARDER_ID: key}))
            return found

        return observe


def _pending(recorder: Any) -> Any:
    return recorder.stats.pending


def _spool_len(recorder: Any) -> Any:
    return len(recorder.spool)


def _nbytes(recorder: Any) -> Any:
    return recorder.spool.nbytes


def _stat(name: str) -> Callable[[Any], Any]:
    def read(recorder: Any) -> Any:
        return getattr(recorder.stats, name)

    return read


_servers: dict[str, tuple[str, int | None]] = {}


def _server(endpoint: str | None) -> tuple[str, int | None] | None:
    """(host, port) of an endpoint URL, cached: ``server.address`` and ``server.port``."""
    if endpoint is None:
        return None
    found = _servers.get(endpoint)
    if found is None:
        parts = urlsplit(endpoint)
        found = _servers[endpoint] = (parts.hostname or "", parts.port)
        if len(_servers) > 64:  # endpoints are few; never let the cache grow with odd ones
            _servers.clear()
    return found


class _OpFacts:
    """What is the same on every call of one operation to one endpoint: names and attribute sets, made once."""

    __slots__ = ("method", "ok_calls", "ok_duration", "ok_records", "span_attributes", "span_name")

    def __init__(self, op: Operation, endpoint: str | None, region: str | None) -> None:
        self.method = op.name
        self.span_name = f"{SERVICE}.{op.name}"
        base: dict[str, Any] = {"rpc.system": "aws-api", "rpc.service": SERVICE, "rpc.method": op.name}
        self.ok_duration = dict(base)
        server = _server(endpoint)
        if server is not None:
            self.ok_duration["server.address"] = server[0]
        self.span_attributes = dict(self.ok_duration)
        if server is not None and server[1] is not None:
            self.span_attributes["server.port"] = server[1]
        if region:
            self.span_attributes["cloud.region"] = region
        self.ok_calls = {"rpc.method": op.name, OUTCOME: "success"}
        self.ok_records = {"rpc.method": op.name}


class _Call:
    """One call in flight: the retry loop reports its retries here."""

    __slots__ = ("facts", "instruments", "span")

    def __init__(self, span: Span, facts: _OpFacts, instruments: _Instruments) -> None:
        self.span = span
        self.facts = facts
        self.instruments = instruments

    def retrying(self, error: PersonalizeEventsError, attempt: int, delay: float) -> None:
        try:
            kind = _telemetry.error_type(error)
            self.instruments.retries.add(1, {"rpc.method": self.facts.method, "error.type": kind})
            span = self.span
            if span.is_recording():
                attributes: dict[str, Any] = {ATTEMPT: attempt, RETRY_DELAY: delay, "error.type": kind}
                attributes.update(_answer(error))
                span.add_event("retry", attributes)
        except Exception:
            _complain("recording a retry")


def _answer(error: BaseException) -> dict[str, Any]:
    """The HTTP status and request id of the service's answer, when the error came with one."""
    found: dict[str, Any] = {}
    status = getattr(error, "http_status", 0)
    if isinstance(status, int) and status:
        found["http.response.status_code"] = status
    request_id = getattr(error, "request_id", None)
    if isinstance(request_id, str) and request_id:
        found["aws.request_id"] = request_id
    return found


class _Hook:
    """The telemetry hook: a span and measurements around each call (``_telemetry.Hook``)."""

    def __init__(self, tracer: Tracer, instruments: _Instruments) -> None:
        self._tracer = tracer
        self._instruments = instruments
        self._facts: dict[tuple[str, str | None, str | None], _OpFacts] = {}

    def _facts_for(self, op: Operation, endpoint: str | None, region: str | None) -> _OpFacts:
        key = (op.name, endpoint, region)
        facts = self._facts.get(key)
        if facts is None:
            if len(self._facts) > 256:
                self._facts.clear()
            facts = self._facts[key] = _OpFacts(op, endpoint, region)
        return facts

    async def invoke(
        self,
        send: Callable[[Operation, Any, _telemetry.Call], Awaitable[Any]],
        client: _telemetry.ClientFacts,
        op: Operation,
        request: Any,
    ) -> Any:
        endpoint = client.endpoint_url
        facts = self._facts_for(op, endpoint, client.region)
        records = len(getattr(request, op.record_field))
        token = None
        try:
            span = self._tracer.start_span(facts.span_name, kind=SpanKind.CLIENT, attributes=facts.span_attributes)
            if span.is_recording():
                span.set_attribute(RECORDS, records)
            # the API's no-op tracer (no SDK configured) gives INVALID_SPAN: nothing to make current then
            token = None if span is INVALID_SPAN else otel_context.attach(trace.set_span_in_context(span))
        except Exception:  # a tracer or span processor that raises: the call goes on, unobserved
            _complain("starting a span")
            if token is not None:
                otel_context.detach(token)
            return await send(op, request, _UNOBSERVED)
        started = time.perf_counter()
        try:
            result = await send(op, request, _Call(span, facts, self._instruments))
        except BaseException as exc:
            try:
                if token is not None:
                    otel_context.detach(token)
                self._failed(span, op, facts, client, endpoint, records, exc, time.perf_counter() - started)
            except Exception:
                _complain("ending a failed call's span")
            raise
        elapsed = time.perf_counter() - started
        try:
            if token is not None:
                otel_context.detach(token)
            if endpoint is None:  # the call opened the client: the endpoint is known now
                facts = self._facts_for(op, client.endpoint_url, client.region)
                _set_server(span, facts)
            if span.is_recording():
                span.set_attributes(_success(result))
            span.end()
            instruments = self._instruments
            instruments.duration.record(elapsed, facts.ok_duration)
            instruments.calls.add(1, facts.ok_calls)
            instruments.records_sent.add(records, facts.ok_records)
        except Exception:
            _complain("ending a call's span")
        return result

    def _failed(
        self,
        span: Span,
        op: Operation,
        facts: _OpFacts,
        client: _telemetry.ClientFacts,
        endpoint: str | None,
        records: int,
        exc: BaseException,
        elapsed: float,
    ) -> None:
        if endpoint is None and client.endpoint_url is not None:
            facts = self._facts_for(op, client.endpoint_url, client.region)
            _set_server(span, facts)
        cancelled = isinstance(exc, asyncio.CancelledError)
        kind = _telemetry.error_type(exc)
        if span.is_recording():
            attributes: dict[str, Any] = {"error.type": kind}
            attributes.update(_answer(exc))
            if isinstance(exc, PersonalizeEventsError):
                attributes[ATTEMPTS] = exc.attempts
                attributes[STOP_REASON] = _telemetry.stop_reason(client.retry_policy, exc, exc.attempts)
            span.set_attributes(attributes)
            span.set_status(Status(StatusCode.ERROR, "cancelled" if cancelled else _telemetry.describe(exc)))
        span.end()
        instruments = self._instruments
        duration = dict(facts.ok_duration)
        duration["error.type"] = kind
        instruments.duration.record(elapsed, duration)
        outcome = "cancelled" if cancelled else "failure"
        instruments.calls.add(1, {"rpc.method": facts.method, OUTCOME: outcome, "error.type": kind})
        instruments.records_failed.add(records, {"rpc.method": facts.method, "error.type": kind})


def _set_server(span: Span, facts: _OpFacts) -> None:
    if span.is_recording():
        span.set_attributes({k: v for k, v in facts.span_attributes.items() if not k.startswith("rpc.")})


def _success(result: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {ATTEMPTS: getattr(result, "retry_attempts", 0) + 1}
    status = getattr(result, "http_status", 0)
    if status:
        attributes["http.response.status_code"] = status
    request_id = getattr(result, "request_id", None)
    if request_id:
        attributes["aws.request_id"] = request_id
    return attributes


_lock: Final = threading.Lock()
_instruments_of: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


class PersonalizeEventsInstrumentor:
    """Turns aiopersonalize-events' telemetry on and off, process-wide, like OpenTelemetry's instrumentors.

    A singleton, as ``BaseInstrumentor`` subclasses are:
    ``PersonalizeEventsInstrumentor().instrument(tracer_provider=None,
    meter_provider=None)`` (the global providers by default) and
    ``.uninstrument()``. A second ``instrument()`` without an
    ``uninstrument()`` between is ignored, with a warning, as theirs is.
    Unknown keyword arguments (those ``opentelemetry-instrument`` passes)
    are ignored.
    """

    _instance: PersonalizeEventsInstrumentor | None = None

    def __new__(cls) -> PersonalizeEventsInstrumentor:
        with _lock:
            if cls._instance is None:
                cls._instance = super().__new__(cls)
            return cls._instance

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        """True between ``instrument()`` and ``uninstrument()``."""
        return isinstance(_telemetry.hook, _Hook)

    def instrumentation_dependencies(self) -> Collection[str]:
        """What must be installed for ``instrument()`` to work: nothing beyond this package."""
        return ()

    def instrument(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        **kwargs: Any,
    ) -> None:
        """Trace and measure every call of every client, and every recorder and forwarder, from now on."""
        del kwargs
        with _lock:
            if isinstance(_telemetry.hook, _Hook):
                log.warning("aiopersonalize_events is already instrumented; call uninstrument() first")
                return
            _complained.clear()
            try:
                tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
            except Exception:  # the calls go on, without spans
                _complain("getting a tracer")
                tracer = trace.NoOpTracer()
            provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
            instruments = _instruments_of.get(provider)
            if instruments is None:
                try:
                    instruments = _instruments_of[provider] = _Instruments(provider.get_meter(SCOPE, __version__))
                except Exception:  # the calls go on, without measurements
                    _complain("making the instruments")
                    instruments = _Instruments(metrics.NoOpMeter(SCOPE))
            instruments.enabled = True
            _telemetry.hook = _Hook(tracer, instruments)

    def uninstrument(self, **kwargs: Any) -> None:
        """Stop: calls from now on make no spans or measurements, and the observable instruments report nothing."""
        del kwargs
        with _lock:
            current = _telemetry.hook
            if isinstance(current, _Hook):
                current._instruments.enabled = False
            _telemetry.hook = None


def instrument(*, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Short for ``PersonalizeEventsInstrumentor().instrument(...)``."""
    PersonalizeEventsInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def uninstrument() -> None:
    """Short for ``PersonalizeEventsInstrumentor().uninstrument()``."""
    PersonalizeEventsInstrumentor().uninstrument()
