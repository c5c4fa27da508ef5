"""OpenTelemetry traces and metrics (``aiopersonalize_events.otel``) read back through the SDK's in-memory exporter
and metric reader, against the emulator with injected faults: what a user would see, and nothing sensitive."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import attrs
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    ConnectionClosedError,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    ResourceNotFoundException,
    ThrottlingException,
    User,
    _telemetry,
    otel,
)
from aiopersonalize_events._operations import OPERATIONS
from aiopersonalize_events.emulator import Emulator, Faults

REGION = "eu-west-1"
ACCESS_KEY = "AKIDTELEMETRY0000001"
SECRET_KEY = "telemetry/secret/MARK-SECRET-0001"
SESSION_TOKEN = "MARK-TOKEN-telemetry-session-token"
TRACKING_ID = "MARK-tracking-0001"
ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/MARK-dsg/ITEMS"
SENSITIVE = (
    SECRET_KEY,
    SESSION_TOKEN,
    "MARK",
    "123456789012",
)
"""Every id, property, tracking id, dataset ARN and credential in these tests carries MARK; none may be seen."""


class Telemetry:
    """The SDK's in-memory span exporter and metric reader, with the readings a user would look at."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name_prefix: str = "PersonalizeEvents.") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every data point by metric name: (attributes, value), the value a (count, sum) pair for histograms."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = (point.count, point.sum) if hasattr(point, "count") else point.value
                        found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
        return found

    @staticmethod
    def total(points: dict[str, list[tuple[dict[str, Any], Any]]], name: str, **match: Any) -> Any:
        """The sum of ``name``'s points whose attributes include ``match`` (dots spelled as double underscores)."""
        wanted = {k.replace("__", "."): v for k, v in match.items()}
        values = [v for a, v in points.get(name, []) if all(a.get(k) == x for k, x in wanted.items())]
        if values and isinstance(values[0], tuple):
            return (sum(v[0] for v in values), sum(v[1] for v in values))
        return sum(values)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Instrumented with SDK providers of its own (never the global ones) for the test; uninstrumented after."""
    readings = Telemetry()
    otel.instrument(tracer_provider=readings.tracer_provider, meter_provider=readings.meter_provider)
    try:
        yield readings
    finally:
        otel.uninstrument()
        readings.meter_provider.shutdown()
        readings.tracer_provider.shutdown()


def make_client(emulator: Emulator, **config: Any) -> PersonalizeEventsClient:
    client = PersonalizeEventsClient(
        region=REGION,
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN),
        config=ClientConfig(**config),
    )
    client.retry_policy.random = lambda: 0.5  # exact, known delays
    return client


def script_faults(client: PersonalizeEventsClient, emulator: Emulator, *after: Faults | None) -> list[float]:
    """Before each retry, the emulator's faults become the next of ``after``; no real wait. Returns the waits."""
    waits: list[float] = []
    queue = list(after)

    async def sleep(delay: float) -> None:
        waits.append(delay)
        emulator.faults = queue.pop(0) if queue else None

    client.retry_policy.sleep = sleep
    return waits


def event(n: int = 0) -> Event:
    return Event(
        event_type="click",
        sent_at=1_764_000_000 + n,
        event_id=f"MARK-event-{n}",
        item_id=f"MARK-item-{n}",
        properties={"MARK-key": f"MARK-value-{n}"},
        event_value=1.5,
    )


PUT_EVENTS = next(op for op in OPERATIONS if op.name == "PutEvents")


async def test_a_call_retried_through_faults_is_one_span_with_a_retry_event_per_failed_attempt(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """Throttled, then a 5xx, then accepted: one CLIENT span with the AWS SDK attributes and two retry events."""
    emulator.faults = Faults(throttle=1.0)
    async with make_client(emulator, retries_2026=False) as client:  # the pre-2026 waits, from backoff_base 0.1
        waits = script_faults(client, emulator, Faults(server_error=1.0, seed=1), None)
        meta = await client.put_events(
            tracking_id=TRACKING_ID,
            session_id="MARK-session",
            user_id="MARK-user",
            event_list=[event(i) for i in range(3)],
        )
        tokens = client.retry_policy.budget.tokens
    assert meta.retry_attempts == 2

    (span,) = telemetry.spans()
    assert span.name == "PersonalizeEvents.PutEvents"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    port = int(emulator.endpoint_url.rsplit(":", 1)[1])
    assert dict(span.attributes or {}) == {
        "rpc.system": "aws-api",
        "rpc.service": "PersonalizeEvents",
        "rpc.method": "PutEvents",
        "server.address": "127.0.0.1",
        "server.port": port,
        "cloud.region": REGION,
        "aiopersonalize_events.records": 3,
        "aiopersonalize_events.attempts": 3,
        "http.response.status_code": 200,
        "aws.request_id": meta.request_id,
    }
    first, second = span.events
    assert [first.name, second.name] == ["retry", "retry"]
    one, two = dict(first.attributes or {}), dict(second.attributes or {})
    assert one["aiopersonalize_events.attempt"] == 1
    assert one["error.type"] == "ThrottlingException"
    assert one["http.response.status_code"] == 400
    assert two["aiopersonalize_events.attempt"] == 2
    assert (two["error.type"], two["http.response.status_code"]) in {
        ("InternalFailure", 500),
        ("ServiceUnavailableException", 503),
    }
    assert [one["aiopersonalize_events.retry_delay"], two["aiopersonalize_events.retry_delay"]] == waits
    assert waits == [0.05, 0.1]  # random() 0.5 of the backoff ceilings 0.1 and 0.2
    request_ids = {one["aws.request_id"], two["aws.request_id"], meta.request_id}
    assert len(request_ids) == 3  # each attempt's own answer
    assert first.timestamp <= second.timestamp

    points = telemetry.points()
    assert telemetry.total(points, "aiopersonalize_events.client.calls", aiopersonalize_events__outcome="success") == 1
    assert telemetry.total(points, "aiopersonalize_events.client.calls") == 1
    assert telemetry.total(points, "aiopersonalize_events.client.records.sent", rpc__method="PutEvents") == 3
    assert "aiopersonalize_events.client.records.failed" not in points
    assert telemetry.total(points, "aiopersonalize_events.client.retries", error__type="ThrottlingException") == 1
    assert telemetry.total(points, "aiopersonalize_events.client.retries") == 2
    ((attributes, (count, seconds)),) = points["rpc.client.call.duration"]
    assert count == 1
    assert seconds > 0
    assert attributes == {
        "rpc.system": "aws-api",
        "rpc.service": "PersonalizeEvents",
        "rpc.method": "PutEvents",
        "server.address": "127.0.0.1",
    }
    budgets = [v for a, v in points["aiopersonalize_events.client.retry_budget.tokens"] if a["server.address"]]
    assert tokens in budgets
    assert tokens == 500 - 5 - 5 + 5  # two retries of 5; the success gives back what its retry took


async def test_a_call_that_fails_for_good_ends_its_span_in_error_and_counts_its_records_failed(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """Throttled on every attempt: status ERROR, error.type, attempts, why it stopped; failure metrics by code."""
    emulator.faults = Faults(throttle=1.0)
    async with make_client(emulator, max_attempts=3) as client:
        script_faults(client, emulator, Faults(throttle=1.0), Faults(throttle=1.0))
        with pytest.raises(ThrottlingException) as caught:
            await client.put_items(dataset_arn=ARN, items=[Item(item_id=f"MARK-{i}") for i in range(4)])

    (span,) = telemetry.spans()
    assert span.name == "PersonalizeEvents.PutItems"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"ThrottlingException (HTTP 400), request id {caught.value.request_id}"
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "ThrottlingException"
    assert attributes["http.response.status_code"] == 400
    assert attributes["aws.request_id"] == caught.value.request_id
    assert attributes["aiopersonalize_events.attempts"] == 3
    assert attributes["aiopersonalize_events.stop_reason"] == "attempts used up"
    assert attributes["aiopersonalize_events.records"] == 4
    assert len(span.events) == 2

    points = telemetry.points()
    calls = telemetry.total(
        points,
        "aiopersonalize_events.client.calls",
        rpc__method="PutItems",
        aiopersonalize_events__outcome="failure",
        error__type="ThrottlingException",
    )
    assert calls == 1
    assert (
        telemetry.total(points, "aiopersonalize_events.client.records.failed", error__type="ThrottlingException") == 4
    )
    assert "aiopersonalize_events.client.records.sent" not in points
    assert telemetry.total(points, "rpc.client.call.duration", error__type="ThrottlingException")[0] == 1


async def test_an_answer_that_is_not_retried_says_so_and_keeps_the_services_message_out(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """A 404 is not retried: no retry event, stop reason 'not retryable'; its message (naming the tracker) stays out."""
    emulator.register(tracking_ids=["another-tracker"])
    async with make_client(emulator) as client:
        with pytest.raises(ResourceNotFoundException) as caught:
            await client.put_events(tracking_id=TRACKING_ID, session_id="MARK-s", event_list=[event()])
    assert TRACKING_ID in str(caught.value)  # the service's message names it: the span must not
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "ResourceNotFoundException"
    assert attributes["http.response.status_code"] == 404
    assert attributes["aiopersonalize_events.stop_reason"] == "not retryable"
    assert attributes["aiopersonalize_events.attempts"] == 1
    assert not span.events
    assert TRACKING_ID not in (span.status.description or "")


async def test_a_dropped_connection_has_an_error_type_and_no_status_code(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """No answer: error.type is the exception's class, and no HTTP status or request id is made up."""
    emulator.faults = Faults(disconnect=1.0)
    async with make_client(emulator, max_attempts=2) as client:
        script_faults(client, emulator, Faults(disconnect=1.0))
        with pytest.raises(ConnectionClosedError):
            await client.put_users(dataset_arn=ARN, users=[User(user_id="MARK-user")])
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "ConnectionClosedError"
    assert "http.response.status_code" not in attributes
    assert "aws.request_id" not in attributes
    (retry,) = span.events
    assert dict(retry.attributes or {}).keys() == {
        "aiopersonalize_events.attempt",
        "aiopersonalize_events.retry_delay",
        "error.type",
    }


async def test_an_empty_retry_budget_is_the_stop_reason_and_the_gauge_shows_it(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """With a budget that pays for one retry, the second failure stops the call: 'retry budget empty', gauge at 0."""
    emulator.faults = Faults(throttle=1.0)
    async with make_client(emulator, max_attempts=5, retry_budget=5) as client:
        script_faults(client, emulator, Faults(throttle=1.0))
        with pytest.raises(ThrottlingException):
            await client.put_actions(dataset_arn=ARN, actions=[Action(action_id="MARK-a")])
        points = telemetry.points()
    (span,) = telemetry.spans()
    assert dict(span.attributes or {})["aiopersonalize_events.stop_reason"] == "retry budget empty"
    assert dict(span.attributes or {})["aiopersonalize_events.attempts"] == 2
    assert 0 in [v for _, v in points["aiopersonalize_events.client.retry_budget.tokens"]]


async def test_the_adaptive_rate_limit_is_a_gauge_once_throttled(emulator: Emulator, telemetry: Telemetry) -> None:
    """retry_mode=adaptive: no rate point before a throttle; after one, the allowed calls per second per client."""
    async with make_client(emulator, retry_mode="adaptive", max_attempts=2) as client:
        await client.put_actions(dataset_arn=ARN, actions=[Action(action_id="MARK-a")])
        assert not telemetry.points().get("aiopersonalize_events.client.rate_limit.rate")
        script_faults(client, emulator, None)  # throttled once, then the retry goes through
        emulator.faults = Faults(throttle=1.0)
        await client.put_actions(dataset_arn=ARN, actions=[Action(action_id="MARK-b")])
        points = telemetry.points()
        limiter = client.retry_policy.rate_limiter
        assert limiter is not None
        allowed = limiter.stats.rate
    ((attributes, value),) = points["aiopersonalize_events.client.rate_limit.rate"]
    assert value == allowed
    assert attributes["server.address"] == "127.0.0.1"


def _one_call(op_name: str) -> Callable[[PersonalizeEventsClient], Any]:
    interaction = ActionInteraction(
        action_id="MARK-a", session_id="MARK-s", timestamp=1_764_000_000, event_type="Taken", user_id="MARK-u"
    )
    calls: dict[str, Callable[[PersonalizeEventsClient], Any]] = {
        "PutEvents": lambda c: c.put_events(tracking_id=TRACKING_ID, session_id="MARK-s", event_list=[event()]),
        "PutItems": lambda c: c.put_items(dataset_arn=ARN, items=[Item(item_id="MARK-i", properties={"k": "MARK"})]),
        "PutUsers": lambda c: c.put_users(dataset_arn=ARN.replace("ITEMS", "USERS"), users=[User(user_id="MARK-u")]),
        "PutActions": lambda c: c.put_actions(
            dataset_arn=ARN.replace("ITEMS", "ACTIONS"), actions=[Action(action_id="MARK-a")]
        ),
        "PutActionInteractions": lambda c: c.put_action_interactions(
            tracking_id=TRACKING_ID, action_interactions=[interaction]
        ),
    }
    return calls[op_name]


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
async def test_every_operation_is_a_span_named_service_dot_operation(
    op: Any, emulator: Emulator, telemetry: Telemetry
) -> None:
    """Each of the five operations: a span ``PersonalizeEvents.<Operation>`` with its rpc.method and record count."""
    async with make_client(emulator) as client:
        await _one_call(op.name)(client)
    (span,) = telemetry.spans()
    assert span.name == f"PersonalizeEvents.{op.name}"
    assert dict(span.attributes or {})["rpc.method"] == op.name
    assert dict(span.attributes or {})["aiopersonalize_events.records"] == 1
    assert telemetry.total(telemetry.points(), "aiopersonalize_events.client.records.sent", rpc__method=op.name) == 1


async def test_calls_nest_under_the_callers_span_and_an_aiohttp_trace_config_sees_the_call_span(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """A call is a child of the caller's span; a TraceConfig on the caller's session runs inside the call span."""
    seen: list[trace.Span] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append(trace.get_current_span())

    trace_config = aiohttp.TraceConfig()
    trace_config.on_request_start.append(on_request_start)
    tracer = telemetry.tracer_provider.get_tracer("the-app")
    emulator.faults = Faults(throttle=1.0)
    async with aiohttp.ClientSession(trace_configs=[trace_config]) as session:
        client = PersonalizeEventsClient(
            region=REGION,
            endpoint_url=emulator.endpoint_url,
            credentials=Credentials(ACCESS_KEY, SECRET_KEY),
            session=session,
        )
        script_faults(client, emulator, None)
        async with client:
            with tracer.start_as_current_span("handle-request") as handler:
                await client.put_events(tracking_id=TRACKING_ID, session_id="MARK-s", event_list=[event()])
                assert trace.get_current_span() is handler  # the call's context was detached
    (call,) = telemetry.spans()
    assert call.parent is not None
    assert call.parent.span_id == handler.get_span_context().span_id
    assert call.context is not None
    assert len(seen) == 2  # one HTTP request per attempt, each inside the call span
    assert {s.get_span_context().span_id for s in seen} == {call.context.span_id}


@pytest.mark.usefixtures("personalize_no_retry_waits")
async def test_recorder_instruments_read_its_stats_and_its_sends_are_not_children_of_a_request(
    emulator: Emulator, telemetry: Telemetry
) -> None:
    """Gauges and counters per recorder equal recorder.stats; its calls are root spans, not the first record()'s."""
    tracer = telemetry.tracer_provider.get_tracer("the-app")
    emulator.faults = Faults(throttle=0.3, server_error=0.2, seed=7)
    async with make_client(emulator, max_attempts=2) as client:
        client.retry_policy.sleep = lambda delay: asyncio.sleep(0)
        recorder = client.event_recorder(tracking_id=TRACKING_ID, max_queue_size=30, flush_interval=0.05)
        # other tests' recorders may still be alive (not yet collected): read this one's series only
        mine_id = next(key for key, ref in _telemetry._recorders.items() if ref() is recorder)
        with tracer.start_as_current_span("handle-request"):
            for i in range(35):  # five more than max_queue_size: dropped
                recorder.record(event(i), session_id=f"MARK-session-{i % 3}", user_id="MARK-user")
            queued = telemetry.points()
            async with recorder:
                await recorder.flush()
                stats = recorder.stats
                settled = telemetry.points()

    def read(points: dict[str, list[tuple[dict[str, Any], Any]]], name: str) -> Any:
        mine = [
            v
            for a, v in points[f"aiopersonalize_events.recorder.{name}"]
            if str(a["aiopersonalize_events.recorder.id"]) == str(mine_id)
        ]
        assert len(mine) == 1
        return mine[0]

    assert read(queued, "pending") == 30
    assert read(queued, "spool.events") == 30
    assert read(queued, "spool.size") == 0  # the memory spool does not count bytes
    assert read(queued, "recorded") == 35
    assert read(queued, "dropped") == 5
    for name in ("recorded", "sent", "failed", "dropped", "pending", "retried", "recovered"):
        assert read(settled, name) == getattr(stats, name), name
    assert stats.sent + stats.failed == 30
    assert read(settled, "spool.events") == 0

    calls = telemetry.spans()
    assert calls
    assert all(span.parent is None for span in calls), "recorder sends must not join the request's trace"
    sent = telemetry.total(settled, "aiopersonalize_events.client.records.sent")
    assert sent == stats.sent


async def test_a_cancelled_call_ends_its_span_and_gives_the_context_back(telemetry: Telemetry) -> None:
    """A call cancelled mid-flight: its span ends with error.type CancelledError and outcome 'cancelled'.

    The emulator holds its answer until the test lets it go (after the cancel), so the call is mid-flight when
    wait_for's 0.05 s run out however slow the machine is.
    """
    release = asyncio.Event()

    async def hold(latency: float) -> None:  # the emulator's latency: the answer waits until released
        await release.wait()

    async with Emulator(faults=Faults(latency=0.5), sleep=hold) as emulator, make_client(emulator) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.put_items(dataset_arn=ARN, items=[Item(item_id="MARK-i")]), 0.05)
        assert not trace.get_current_span().get_span_context().is_valid
        release.set()
    (span,) = telemetry.spans()
    assert dict(span.attributes or {})["error.type"] == "CancelledError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "cancelled"
    points = telemetry.points()
    assert (
        telemetry.total(points, "aiopersonalize_events.client.calls", aiopersonalize_events__outcome="cancelled") == 1
    )


async def test_uninstrument_stops_spans_and_quiets_the_observable_instruments(
    emulator: Emulator, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """After uninstrument(): no spans, no observations; instrument() again on the same provider reuses them."""
    instrumentor = otel.PersonalizeEventsInstrumentor()
    assert instrumentor is otel.PersonalizeEventsInstrumentor()
    assert instrumentor.is_instrumented_by_opentelemetry
    with caplog.at_level(logging.WARNING, logger="aiopersonalize_events.otel"):
        instrumentor.instrument()  # already on: ignored, as OpenTelemetry's instrumentors do
    assert "already instrumented" in caplog.text
    async with make_client(emulator) as client:
        await _one_call("PutItems")(client)
        otel.uninstrument()
        assert not instrumentor.is_instrumented_by_opentelemetry
        assert _telemetry.hook is None
        await _one_call("PutItems")(client)
        assert len(telemetry.spans()) == 1
        points = telemetry.points()
        assert not points.get("aiopersonalize_events.client.retry_budget.tokens")
        otel.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        await _one_call("PutItems")(client)
    assert len(telemetry.spans()) == 2
    assert telemetry.total(telemetry.points(), "aiopersonalize_events.client.calls") == 2


async def test_forwarder_lag_and_pending_are_read_from_its_stats(telemetry: Telemetry) -> None:
    """A forwarder that called watch_forwarder(self) reports its stats' lag and pending; gone when collected."""

    @attrs.define
    class Stats:  # a ForwarderStats with the two numbers the forwarder keeps from XINFO GROUPS
        lag: int | None
        pending: int | None
        sent: int = 0

    class Forwarder:
        def __init__(self) -> None:
            self.stats = Stats(lag=None, pending=None)
            _telemetry.watch_forwarder(self)

    forwarder = Forwarder()
    points = telemetry.points()
    assert not points.get("aiopersonalize_events.forwarder.lag")  # unknown yet: nothing reported
    forwarder.stats = Stats(lag=42, pending=7, sent=120)
    points = telemetry.points()
    ((lag_attributes, lag),) = points["aiopersonalize_events.forwarder.lag"]
    ((_, pending),) = points["aiopersonalize_events.forwarder.pending"]
    ((_, sent),) = points["aiopersonalize_events.forwarder.sent"]
    assert (lag, pending, sent) == (42, 7, 120)
    assert not points.get("aiopersonalize_events.forwarder.dead")  # not in these stats: skipped
    assert set(lag_attributes) == {"aiopersonalize_events.forwarder.id"}
    del forwarder
    gc.collect()
    assert not telemetry.points().get("aiopersonalize_events.forwarder.lag")


def _texts_of(telemetry: Telemetry) -> list[str]:
    """Every string a trace or metric backend would store: span names, attributes, events, status; metric attributes."""
    texts: list[str] = []
    for span in telemetry.exporter.get_finished_spans():
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for span_event in span.events:
            texts.append(span_event.name)
            texts.extend(f"{k}={v}" for k, v in (span_event.attributes or {}).items())
    for name, points in telemetry.points().items():
        texts.append(name)
        for attributes, _ in points:
            texts.extend(f"{k}={v}" for k, v in attributes.items())
    return texts


@pytest.mark.usefixtures("personalize_no_retry_waits")
async def test_no_sensitive_value_in_any_span_event_or_metric(emulator: Emulator, telemetry: Telemetry) -> None:
    """Every operation and the recorder through throttling, 5xx, drops and a 404: no id, property, ARN or secret."""
    emulator.faults = Faults(throttle=0.25, server_error=0.25, disconnect=0.15, seed=11)
    async with make_client(emulator, max_attempts=3) as client:
        client.retry_policy.sleep = lambda delay: asyncio.sleep(0)
        for _ in range(4):
            for op in OPERATIONS:
                with contextlib.suppress(PersonalizeEventsError):
                    await _one_call(op.name)(client)
        async with client.event_recorder(tracking_id=TRACKING_ID) as recorder:
            for i in range(25):
                recorder.record(event(i), session_id="MARK-session", user_id="MARK-user")
            await recorder.flush()
        emulator.faults = None
        emulator.register(tracking_ids=["another-tracker"])
        with pytest.raises(ResourceNotFoundException):
            await _one_call("PutEvents")(client)
    spans = telemetry.spans()
    assert len(spans) >= 22
    assert any(span.events for span in spans), "the faults caused retries"
    assert any(span.status.status_code is StatusCode.ERROR for span in spans)
    texts = _texts_of(telemetry)
    for text in texts:
        for value in SENSITIVE:
            assert value not in text, text


async def test_a_client_opened_by_its_first_call_still_names_its_server(
    emulator: Emulator, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint from the environment, resolved by the first call: that call's span still has server.address/port."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", emulator.endpoint_url)
    client = PersonalizeEventsClient(region=REGION, credentials=Credentials(ACCESS_KEY, SECRET_KEY))
    assert client.endpoint_url is None
    try:
        await client.put_items(dataset_arn=ARN, items=[Item(item_id="MARK-i")])
    finally:
        await client.close()
    (span,) = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(emulator.endpoint_url.rsplit(":", 1)[1])
    ((duration_attributes, _),) = telemetry.points()["rpc.client.call.duration"]
    assert duration_attributes["server.address"] == "127.0.0.1"
