"""Telemetry never changes what a call does: a span processor that raises on start or end, a tracer that raises,
a meter whose instruments raise (or that cannot make them): every call succeeds (retries included), and the
failure is said once in the log, not once per call."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from _scripted_server import ScriptedServer, error_reply, make_client
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from aiopersonalize_events import Event, _telemetry, otel

SENT_AT = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


class Boom(RuntimeError):
    """What the broken telemetry raises."""


class RaisingProcessor(SpanProcessor):
    def __init__(self, *, on_start: bool = False, on_end: bool = False) -> None:
        self.raise_on_start = on_start
        self.raise_on_end = on_end

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.raise_on_start:
            raise Boom("on_start")

    def on_end(self, span: Any) -> None:
        if self.raise_on_end:
            raise Boom("on_end")


class RaisingTracer(trace.NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise Boom("start_span")


class RaisingTracerProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RaisingTracer()


class BrokenTracerProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise Boom("get_tracer")


class RaisingInstrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("add")

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("record")


class RaisingMeter(metrics.NoOpMeter):
    """Instruments whose add() and record() raise; observable ones are fine."""

    def create_counter(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()


class RaisingMeterProvider(metrics.NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        return RaisingMeter("raising")


class BrokenMeterProvider(metrics.NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        raise Boom("get_meter")


@pytest.fixture(autouse=True)
def _off_after() -> Iterator[None]:
    yield
    otel.uninstrument()
    assert _telemetry.hook is None


async def _three_calls_with_a_retry(server: ScriptedServer) -> None:
    """Three calls; the second is refused once with a 500 and retried (the retry hook runs too)."""
    async with make_client(server) as client:
        for i in range(3):
            if i == 1:
                server.reply(error_reply("InternalFailure", 500))
            meta = await client.put_events(
                tracking_id="t",
                session_id="s",
                event_list=[Event(event_type="click", sent_at=SENT_AT, item_id=f"i{i}")],
            )
            assert meta.http_status == 200
    assert len(server.requests) == 4


def _telemetry_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiopersonalize_events.otel" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "tracer_provider",
    [
        pytest.param(lambda: _sdk(RaisingProcessor(on_start=True)), id="processor-on-start"),
        pytest.param(lambda: _sdk(RaisingProcessor(on_end=True)), id="processor-on-end"),
        pytest.param(RaisingTracerProvider, id="tracer-start-span"),
        pytest.param(BrokenTracerProvider, id="tracer-provider"),
    ],
)
async def test_a_tracer_that_raises_changes_no_call(
    tracer_provider: Any, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every call succeeds, with its retry; the failure is said once."""
    caplog.set_level(logging.DEBUG, "aiopersonalize_events.otel")
    otel.instrument(tracer_provider=tracer_provider(), meter_provider=MeterProvider())
    await _three_calls_with_a_retry(server)
    assert len(_telemetry_lines(caplog)) == 1, [r.getMessage() for r in _telemetry_lines(caplog)]


@pytest.mark.parametrize(
    "meter_provider",
    [pytest.param(RaisingMeterProvider, id="instruments"), pytest.param(BrokenMeterProvider, id="meter-provider")],
)
async def test_a_meter_that_raises_changes_no_call(
    meter_provider: Any, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every call succeeds, with its retry, and spans are still made; the failure is said once."""
    caplog.set_level(logging.DEBUG, "aiopersonalize_events.otel")
    otel.instrument(tracer_provider=TracerProvider(), meter_provider=meter_provider())
    await _three_calls_with_a_retry(server)
    assert len(_telemetry_lines(caplog)) == 1, [r.getMessage() for r in _telemetry_lines(caplog)]


def _sdk(processor: SpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider
