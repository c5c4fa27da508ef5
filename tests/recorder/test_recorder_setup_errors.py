"""A recorder whose set-up is wrong holds its events: no credentials, a rejected key, an unknown tracker.

Nothing fails for good while the recorder runs: the events are held (counted in
``pending``), the condition is logged once at ERROR with what to fix, and they
are delivered once the cause is fixed. At the close deadline they are unsent; a
durable spool still has them for the next start. Everything is counted at the
emulator or on the recorder's counters, never timed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from _lifecycle_support import until

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    EventRecorder,
    ManualClock,
    NoCredentialsError,
    PersonalizeEventsClient,
    SqliteSpool,
)
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-setup"
GOOD = Credentials("AKIDSETUP", "the-right-secret")

pytestmark = pytest.mark.usefixtures("collect_after")


class SwitchedProvider:
    """A credential provider that answers as the test says: no credentials, the wrong secret, or the right ones."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.calls = 0

    async def resolve(self) -> Credentials:
        self.calls += 1
        if self.state == "none":
            raise NoCredentialsError("no credentials in this test's source yet", sources=("switched",))
        if self.state == "wrong":
            return Credentials(GOOD.access_key_id, "a-wrong-secret")
        return GOOD


def _event(n: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + n, item_id=f"item-{n}")


def _emulator_calls(emu: Emulator) -> int:
    return sum(emu.calls.values())


async def _hold_then_fix(
    emu: Emulator,
    recorder: EventRecorder,
    clock: ManualClock,
    fix: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    """Record 15 events; see them held through several tries; fix the cause; see them delivered once each."""
    for n in range(15):
        recorder.record(_event(n), session_id=f"s{n % 2}")
    tries = 0
    for _ in range(4):  # four rounds of the flush interval: the batches are tried again, never failed
        clock.advance(1.0)
        before = tries
        await until(lambda before=before: recorder.stats.retried > before, "a batch held again")
        tries = recorder.stats.retried
        assert recorder.stats.failed == 0
        assert recorder.stats.pending == 15
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once per condition, however many tries
    assert fault in errors[0].getMessage()
    assert "held" in errors[0].getMessage()
    assert emu.events(TRACKER) == []
    fix()
    for _ in range(4):
        clock.advance(1.0)
        await asyncio.sleep(0.05)
        if recorder.stats.sent == 15:
            break
    await until(lambda: recorder.stats.sent == 15, "the held events delivered")
    assert recorder.stats.failed == 0
    assert recorder.stats.pending == 0
    assert len({e["eventId"] for e in emu.events(TRACKER)}) == 15


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """No backoff waits: the held batches go again each flush interval of the ManualClock."""


async def test_no_credentials_hold_the_events_until_a_source_answers(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """No credential source answers: held and logged once with the fix; delivered once the provider answers."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    provider = SwitchedProvider("none")
    clock = ManualClock()
    async with (
        PersonalizeEventsClient(region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=provider) as client,
        client.event_recorder(tracking_id=TRACKER, clock=clock, max_concurrency=4) as recorder,
    ):

        def fix() -> None:
            provider.state = "good"

        await _hold_then_fix(emulator, recorder, clock, fix, caplog, "NoCredentialsError")
    assert "AWS_ACCESS_KEY_ID" in caplog.text  # what to fix


async def test_a_key_the_service_rejects_holds_the_events_until_the_right_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service rejects the signature (wrong secret): held, logged once; delivered with the right secret."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    provider = SwitchedProvider("wrong")
    clock = ManualClock()
    async with (
        Emulator(credentials={GOOD.access_key_id: GOOD.secret_access_key}) as emu,
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emu.endpoint_url, credentials=provider, config=ClientConfig(max_attempts=1)
        ) as client,
        client.event_recorder(tracking_id=TRACKER, clock=clock) as recorder,
    ):

        def fix() -> None:
            provider.state = "good"

        await _hold_then_fix(emu, recorder, clock, fix, caplog, "Signature")
        assert sum(n for (op, status), n in emu.calls.items() if status == 403) >= 4
    assert GOOD.secret_access_key not in caplog.text


async def test_an_unknown_tracker_holds_the_events_until_it_exists(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """ResourceNotFound for the tracker: held, logged once with the fix; delivered once the tracker exists."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    emulator.register(tracking_ids=["another-tracker"])
    clock = ManualClock()
    async with (
        PersonalizeEventsClient(region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=GOOD) as client,
        client.event_recorder(tracking_id=TRACKER, clock=clock) as recorder,
    ):

        def fix() -> None:
            emulator.register(tracking_ids=[TRACKER])

        await _hold_then_fix(emulator, recorder, clock, fix, caplog, "ResourceNotFoundException")
    assert "tracking id" in caplog.text  # what to fix


async def test_held_events_are_unsent_at_the_close_deadline_and_a_durable_spool_keeps_them(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Closed while held on a set-up error: not failed; the SQLite spool still has them, sent at the next start."""
    emulator.register(tracking_ids=["another-tracker"])
    path = tmp_path / "held.sqlite"
    failures: list[object] = []
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=GOOD
    ) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER, spool=SqliteSpool(path), on_failure=lambda ev, err: failures.append(err)
        )
        async with recorder:
            for n in range(12):
                recorder.record(_event(n), session_id="s")
            await until(lambda: emulator.calls[("PutEvents", 404)] >= 1, "the tracker refused")
            await recorder.close(timeout=0.2)
        assert failures == []
        assert recorder.stats.failed == 0
        assert recorder.stats.pending == 12
        emulator.register(tracking_ids=[TRACKER])
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path)) as again:
            await until(lambda: again.stats.sent == 12, "the kept events sent at the next start")
            assert again.stats.recovered == 12
    assert len({e["eventId"] for e in emulator.events(TRACKER)}) == 12


async def test_with_the_budget_empty_and_the_service_down_one_probe_at_a_time(emulator: Emulator) -> None:
    """Service down, budget empty (1 token; a retry costs 14): after the first attempts, one recorder call a round."""
    emulator.faults = Faults(server_error=1.0, latency=0.02, seed=3)
    async with (
        PersonalizeEventsClient(
            region="us-east-1",
            endpoint_url=emulator.endpoint_url,
            credentials=GOOD,
            config=ClientConfig(max_attempts=1, retry_budget=1),
        ) as client,
    ):
        clock = ManualClock()
        recorder = client.event_recorder(tracking_id=TRACKER, clock=clock, max_concurrency=8, flush_interval=1.0)
        async with recorder:
            for n in range(80):
                recorder.record(_event(n), session_id=f"s{n % 8}")  # eight full groups of ten
            await until(lambda: _emulator_calls(emulator) >= 8, "the first attempts")
            await until(lambda: recorder.stats.retried >= 8, "every batch waiting")
            first = _emulator_calls(emulator)
            for round_ in range(1, 7):
                clock.advance(1.0)  # every waiting batch is due again
                await until(lambda r=round_: _emulator_calls(emulator) - first >= r, "the round's probe")
                await asyncio.sleep(0.1)  # room for any other call to go out (none may)
                assert _emulator_calls(emulator) - first == round_  # one probe a round, not max_concurrency
            assert recorder.stats.failed == 0
            await recorder.close(timeout=0)
