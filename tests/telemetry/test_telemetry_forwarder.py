"""The Redis forwarder's instruments, end to end: a real redis-server, the emulator, ``aiopersonalize_events.otel``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
redis_asyncio = pytest.importorskip("redis.asyncio")

from _redis_server import RedisServer, until  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, otel  # noqa: E402
from aiopersonalize_events.emulator import Emulator, Faults  # noqa: E402
from aiopersonalize_events.redis import Forwarder, add_records  # noqa: E402

TRACKER = "tracker-telemetry"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[Any]:
    connection = redis_asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.fixture
def readings() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield exporter, reader
    finally:
        otel.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def _forwarder_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("aiopersonalize_events.forwarder."):
                    found[metric.name.rsplit(".", 1)[1]] = [p.value for p in metric.data.data_points]
    return found


@pytest.mark.usefixtures("personalize_no_retry_waits")
async def test_a_running_forwarder_reports_lag_pending_and_its_counters(
    redis_server: RedisServer, r: Any, readings: tuple[InMemorySpanExporter, InMemoryMetricReader]
) -> None:
    """Through throttling, the gauges and counters equal the forwarder's own stats, and its calls are spans."""
    exporter, reader = readings
    stream = "pe:{telemetry}"
    for session in range(6):
        batch = [Event(event_type="click", sent_at=SENT_AT, event_id=f"t{session}-{i}", item_id="x") for i in range(10)]
        await add_records(r, stream, batch, session_id=f"s{session}")
    async with Emulator(faults=Faults(throttle=0.3, seed=4)) as emulator:
        client = PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDTEL", "s")
        )
        async with client:
            forwarder = Forwarder(client, redis_server.url, stream=stream, group="fleet", tracking_id=TRACKER)
            task = asyncio.create_task(forwarder.run())
            await until(lambda: len(emulator.events(TRACKER)) == 60, what="every event delivered")
            await until(lambda: forwarder.stats.lag is not None, what="the group's lag read once")
            points = _forwarder_points(reader)
            stats = forwarder.stats
            await forwarder.close()
            await task
    assert points["sent"] == [stats.sent]
    assert points["read"] == [stats.read]
    assert points["retried"] == [stats.retried]
    assert points["lag"] == [stats.lag]
    assert points["held"] == [stats.held]
    assert points["pending"] == ([stats.pending] if stats.pending is not None else [])
    assert stats.sent == 60
    spans = [s for s in exporter.get_finished_spans() if s.name == "PersonalizeEvents.PutEvents"]
    assert sum(dict(s.attributes or {})["aiopersonalize_events.records"] for s in spans if s.status.is_ok) >= 60
