"""The delivery engine on a ManualClock: every outcome, the probe rule, slots while waiting, the deadline.

No server: ``send`` is the test's own coroutine, answering as the test says, and
time moves only when the test advances the clock. These rules hold for every
owner of the engine (recorder, forwarder, command line).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from aiopersonalize_events._clock import ManualClock
from aiopersonalize_events._delivery import Delivery
from aiopersonalize_events._retry import RetryBudget, RetryPolicy
from aiopersonalize_events.errors import (
    EndpointConnectionError,
    Fault,
    InvalidInputException,
    NoCredentialsError,
    PersonalizeEventsError,
    ServiceError,
    ThrottlingException,
    parse_error,
)

Batch = tuple[str, ...]


class Owner:
    """Keeps what the engine reported, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Batch, str | None]] = []

    def sent(self, batch: Batch) -> None:
        self.log.append(("sent", batch, None))

    def refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self.log.append(("refused", batch, type(error).__name__))

    def held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self.log.append(("held", batch, type(error).__name__))

    def unsent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        self.log.append(("unsent", batch, None if error is None else type(error).__name__))

    def of(self, kind: str) -> list[Batch]:
        return [batch for what, batch, _ in self.log if what == kind]


class Service:
    """The test's ``send``: answers each call with the next scripted outcome (None accepts), counting calls at once."""

    def __init__(self, answer: Callable[[Batch], PersonalizeEventsError | None]) -> None:
        self.answer = answer
        self.calls: list[Batch] = []
        self.at_once = 0
        self.most_at_once = 0
        self.gate: asyncio.Event | None = None

    async def send(self, batch: Batch) -> None:
        self.calls.append(batch)
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            error = self.answer(batch)
            if error is not None:
                raise error
        finally:
            self.at_once -= 1


def policy(tokens: int = 500) -> RetryPolicy:
    """Full jitter drawn as 1.0: the wait after attempt n is min(8, 2 ** (n - 1)) seconds."""
    return RetryPolicy(
        max_attempts=3, backoff_base=1.0, backoff_max=8.0, budget=RetryBudget(tokens), random=lambda: 1.0
    )


def engine(
    service: Service, owner: Owner, clock: ManualClock, *, tokens: int = 500, concurrency: int = 4, **options: object
) -> Delivery[Batch]:
    return Delivery(
        service.send,
        owner,
        policy=policy(tokens),
        max_concurrency=concurrency,
        clock=clock,
        name="test",
        **options,  # type: ignore[arg-type]
    )


async def settle() -> None:
    """Let the engine's tasks run until they wait for the clock or the gate."""
    for _ in range(20):
        await asyncio.sleep(0)


def throttled() -> ThrottlingException:
    return ThrottlingException("slow down", code="ThrottlingException", http_status=400)


async def test_accepted_batches_are_reported_sent_without_any_timer() -> None:
    """Batches the service accepts are reported sent, in order, and nothing waits on the clock."""
    clock, owner = ManualClock(), Owner()
    service = Service(lambda batch: None)
    delivery = engine(service, owner, clock)
    for name in ("a", "b", "c"):
        delivery.submit((name,))
    await settle()
    assert owner.log == [("sent", ("a",), None), ("sent", ("b",), None), ("sent", ("c",), None)]
    assert clock.next_due() is None
    assert not delivery.busy


async def test_a_transient_failure_is_sent_again_after_the_policys_wait() -> None:
    """Throttled once: held, sent again exactly 1 s later (the policy's backoff), then sent; the budget refills."""
    clock, owner = ManualClock(), Owner()
    answers = [throttled(), None]
    service = Service(lambda batch: answers.pop(0))
    delivery = engine(service, owner, clock)
    delivery.submit(("a",))
    await settle()
    assert owner.log == [("held", ("a",), "ThrottlingException")]
    assert clock.next_due() == 1.0
    assert delivery.waiting == 1
    assert delivery.in_flight == 0
    clock.advance(0.999)
    await settle()
    assert len(service.calls) == 1
    clock.advance(0.001)
    await settle()
    assert owner.of("sent") == [("a",)]
    assert delivery._policy.budget.tokens == 500


async def test_retry_after_is_honoured() -> None:
    """A Retry-After of 3 s from the service is the wait before the batch goes again."""
    clock, owner = ManualClock(), Owner()
    answers: list[PersonalizeEventsError | None] = [
        ServiceError("busy", code="ServiceUnavailable", http_status=503, retry_after=3.0),
        None,
    ]
    service = Service(lambda batch: answers.pop(0))
    delivery = engine(service, owner, clock)
    delivery.submit(("a",))
    await settle()
    assert clock.next_due() == 3.0
    clock.advance(3.0)
    await settle()
    assert owner.of("sent") == [("a",)]


async def test_the_clients_own_attempts_count_towards_the_backoff() -> None:
    """An error after the client's three attempts makes the next wait the fourth step of the backoff (8 s)."""
    clock, owner = ManualClock(), Owner()
    error = throttled()
    error.attempts = 3
    answers: list[PersonalizeEventsError | None] = [error, None]
    service = Service(lambda batch: answers.pop(0))
    delivery = engine(service, owner, clock)
    delivery.submit(("a",))
    await settle()
    assert clock.next_due() == 4.0  # attempt 3 failed: min(8, 2 ** 2)


async def test_refused_records_fail_for_good_and_a_split_finds_the_one_to_blame() -> None:
    """InvalidInput on a batch of three: one call each; only the record refused alone is reported refused."""
    clock, owner = ManualClock(), Owner()

    def answer(batch: Batch) -> PersonalizeEventsError | None:
        if len(batch) > 1 or batch == ("b",):
            return InvalidInputException("bad", http_status=400)
        return None

    service = Service(answer)
    delivery = engine(service, owner, clock, split=lambda batch: [(record,) for record in batch])
    delivery.submit(("a", "b", "c"))
    await settle()
    assert service.calls == [("a", "b", "c"), ("a",), ("b",), ("c",)]
    assert owner.of("refused") == [("b",)]
    assert owner.of("sent") == [("a",), ("c",)]
    assert clock.next_due() is None


async def test_refused_without_a_split_fails_the_whole_batch() -> None:
    """Without a split function the refused batch is reported refused as it is, never sent again."""
    clock, owner = ManualClock(), Owner()
    service = Service(lambda batch: InvalidInputException("bad", http_status=400))
    delivery = engine(service, owner, clock)
    delivery.submit(("a", "b"))
    await settle()
    assert owner.log == [("refused", ("a", "b"), "InvalidInputException")]
    assert len(service.calls) == 1


async def test_a_setup_error_holds_logs_once_with_the_fix_and_delivers_once_fixed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No credentials: held (never refused), logged once at ERROR with the fix, no token taken; sent once fixed."""
    caplog.set_level(logging.DEBUG)
    clock, owner = ManualClock(), Owner()
    fixed = [False]
    service = Service(lambda batch: None if fixed[0] else NoCredentialsError(sources=("environment",)))
    delivery = engine(service, owner, clock, min_wait=1.0)
    delivery.submit(("a",))
    delivery.submit(("b",))
    await settle()
    service.most_at_once = 0
    for _ in range(5):
        clock.advance(clock.next_due() or 0.0)  # type: ignore[operator]
        await settle()
    assert owner.of("refused") == []
    assert owner.of("sent") == []
    assert {batch for batch in owner.of("held")} == {("a",), ("b",)}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "held" in errors[0].getMessage()
    assert "AWS_ACCESS_KEY_ID" in errors[0].getMessage()
    assert delivery._policy.budget.tokens == 500
    assert service.most_at_once == 1  # after the first attempts, one probe at a time
    fixed[0] = True
    clock.advance(clock.next_due() or 0.0)  # type: ignore[operator]
    await settle()
    assert sorted(owner.of("sent")) == [("a",), ("b",)]
    assert any("accepted again" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert not delivery.busy


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "UnrecognizedClientException"),
        (403, "InvalidSignatureException"),
        (400, "ExpiredTokenException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
    ],
)
def test_setup_answers_of_the_service_are_the_setups_fault(status: int, code: str) -> None:
    """Rejected credentials, no permission and an unknown tracker are set-up errors with a fix, not the records'."""
    error = parse_error(status, {}, b'{"__type": "%s", "message": "no"}' % code.encode())
    assert error.fault is Fault.SETUP
    assert error.fix


def test_transient_and_refusal_answers_are_classified_on_the_error() -> None:
    """Throttling, 5xx and connection failures are transient; InvalidInput is the records' fault."""
    assert throttled().fault is Fault.TRANSIENT
    assert parse_error(503, {}, b"").fault is Fault.TRANSIENT
    assert EndpointConnectionError("down").fault is Fault.TRANSIENT
    assert parse_error(400, {}, b'{"__type": "InvalidInputException"}').fault is Fault.RECORDS
    assert throttled().fix is None


async def test_with_the_budget_empty_only_one_probe_is_in_flight() -> None:
    """Service down, budget empty: after the first attempts, one call at a time goes out as a probe."""
    clock, owner = ManualClock(), Owner()
    down = [True]
    service = Service(lambda batch: parse_error(503, {}, b"") if down[0] else None)
    delivery = engine(service, owner, clock, tokens=0, concurrency=8, min_wait=1.0)
    for n in range(8):
        delivery.submit((f"b{n}",))
    await settle()
    first = len(service.calls)
    assert first == 8
    assert delivery.waiting == 8
    service.most_at_once = 0
    for _ in range(10):
        clock.advance(clock.next_due() - clock.time())  # type: ignore[operator]
        await settle()
    assert service.most_at_once == 1
    probes = len(service.calls) - first
    assert probes >= 1
    down[0] = False
    while delivery.busy:
        clock.advance(clock.next_due() - clock.time())  # type: ignore[operator]
        await settle()
    assert len(owner.of("sent")) == 8
    assert service.most_at_once == 1  # each probe that got through let the next one go, one after the other


async def test_a_waiting_batch_holds_no_slot() -> None:
    """With one slot, a batch waiting to be sent again leaves it free: the next batch goes meanwhile."""
    clock, owner = ManualClock(), Owner()
    answers: list[PersonalizeEventsError | None] = [throttled(), None, None]
    service = Service(lambda batch: answers.pop(0))
    delivery = engine(service, owner, clock, concurrency=1)
    delivery.submit(("a",))
    await settle()
    assert delivery.waiting == 1
    delivery.submit(("b",))
    await settle()
    assert owner.of("sent") == [("b",)]
    clock.advance(1.0)
    await settle()
    assert owner.of("sent") == [("b",), ("a",)]


async def test_the_concurrency_bound_holds() -> None:
    """Ten batches, two slots: never more than two calls at once, all sent."""
    clock, owner = ManualClock(), Owner()
    service = Service(lambda batch: None)
    service.gate = asyncio.Event()
    delivery = engine(service, owner, clock, concurrency=2)
    for n in range(10):
        delivery.submit((str(n),))
    await settle()
    assert delivery.in_flight == 2
    assert delivery.queued == 8
    service.gate.set()
    assert await delivery.drain(5)
    assert service.most_at_once == 2
    assert len(owner.of("sent")) == 10


async def test_past_the_deadline_a_failed_batch_is_unsent_not_failed() -> None:
    """With a deadline at 2 s, a wait is cut to it; failing again there, the batch is reported unsent."""
    clock, owner = ManualClock(), Owner()
    error = throttled()
    error.attempts = 3  # next wait would be 4 s
    service = Service(lambda batch: error)
    delivery = engine(service, owner, clock)
    delivery.deadline = 2.0
    delivery.submit(("a",))
    await settle()
    assert clock.next_due() == 2.0
    clock.advance(2.0)
    await settle()
    assert owner.log[-1] == ("unsent", ("a",), "ThrottlingException")
    assert owner.of("refused") == []
    assert not delivery.busy


async def test_stop_reports_waiting_and_in_flight_batches_unsent() -> None:
    """stop(): a batch waiting is unsent at once; a call in flight past the grace is cancelled and unsent."""
    clock, owner = ManualClock(), Owner()
    answers: list[PersonalizeEventsError | None] = [throttled()]
    service = Service(lambda batch: answers.pop(0) if answers else None)
    delivery = engine(service, owner, clock)
    delivery.submit(("a",))
    await settle()
    service.gate = asyncio.Event()  # the next call hangs
    delivery.submit(("b",))
    await settle()
    assert delivery.in_flight == 1
    assert delivery.waiting == 1
    await delivery.stop(grace=0)
    assert ("unsent", ("a",), "ThrottlingException") in owner.log
    assert ("unsent", ("b",), None) in owner.log
    assert not delivery.busy
    delivery.submit(("c",))  # after a stop nothing goes out
    assert owner.log[-1] == ("unsent", ("c",), None)
    assert len(service.calls) == 2


async def test_the_rate_limiter_paces_every_call_retries_too() -> None:
    """Every call, a re-send too, first takes a turn from the limiter."""
    clock, owner = ManualClock(), Owner()
    turns: list[int] = []

    class Limiter:
        async def acquire(self) -> None:
            turns.append(len(turns))

    answers: list[PersonalizeEventsError | None] = [throttled(), None]
    service = Service(lambda batch: answers.pop(0))
    delivery = engine(service, owner, clock, limiter=Limiter())
    delivery.submit(("a",))
    await settle()
    clock.advance(1.0)
    await settle()
    assert len(turns) == 2 == len(service.calls)


class ProbeCounting(Service):
    """A ``Service`` that also counts the calls after the ``first`` ones (the probes) in flight at once."""

    def __init__(self, answer: Callable[[Batch], PersonalizeEventsError | None], *, first: int) -> None:
        super().__init__(answer)
        self.first = first
        self.probes = 0
        self.most_probes = 0

    async def send(self, batch: Batch) -> None:
        probe = len(self.calls) >= self.first
        self.probes += probe
        self.most_probes = max(self.most_probes, self.probes)
        try:
            await super().send(batch)
        finally:
            self.probes -= probe


async def test_a_probe_that_failed_is_no_longer_the_probe_once_its_outcome_is_reported() -> None:
    """Set-up wrong, two batches held: the owner moves the clock to the next re-send as soon as it hears "held"
    (before the probe's task has ended), and such a move lets the next probe go: the re-sends never stall."""
    clock, owner = ManualClock(), Owner()
    service = ProbeCounting(lambda batch: NoCredentialsError(sources=("environment",)), first=2)
    delivery = engine(service, owner, clock, min_wait=1.0)
    loop = asyncio.get_running_loop()
    moves = [8]

    def held(batch: Batch, error: PersonalizeEventsError) -> None:
        owner.log.append(("held", batch, type(error).__name__))
        if moves[0]:
            moves[0] -= 1
            loop.call_soon(move)  # runs before the sender task's done callback

    def move() -> None:
        due = clock.next_due()
        clock.advance(1.0 if due is None else max(0.0, due - clock.time()))

    owner.held = held  # type: ignore[method-assign]
    delivery.submit(("a",))
    delivery.submit(("b",))
    for _ in range(10):
        await settle()
    assert owner.of("refused") == []
    assert service.most_probes == 1  # after the two first sends, one probe at a time
    # The two first sends, then a probe for each move of the clock after a held outcome, but one: the two first
    # outcomes move the clock twice before the first probe has gone out. (Before the fix: 3 calls, then none.)
    assert len(service.calls) == 2 + 8 - 1, service.calls
    assert moves == [0]
    delivery.abandon()


async def test_a_probe_sent_again_before_its_first_task_ended_stays_the_one_probe() -> None:
    """The probe fails and the owner moves the clock at once, so the same batch goes again as the probe before its
    first task has ended: that task's end must not free the probe rule while the new call is in flight."""
    clock, owner = ManualClock(), Owner()
    service = Service(lambda batch: NoCredentialsError(sources=("environment",)))
    delivery = engine(service, owner, clock, min_wait=1.0)
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()

    def next_due() -> None:
        clock.advance(clock.next_due() - clock.time())  # type: ignore[operator]

    def held(batch: Batch, error: PersonalizeEventsError) -> None:
        owner.log.append(("held", batch, type(error).__name__))
        if owner.of("held").count(("a",)) == 2:  # a's first probe failed: the clock moves on at once (to b's re-send,
            service.gate = gate  # past a's own), and a's second probe stays in flight
            loop.call_soon(next_due)

    owner.held = held  # type: ignore[method-assign]
    delivery.submit(("b",))
    await settle()
    for _ in range(2):  # b's waits grow (1 s, 2 s, then 4 s): its next re-send is at 7
        next_due()
        await settle()
    assert clock.time() == 3.0
    assert clock.next_due() == 7.0
    delivery.submit(("a",))  # a first attempt goes at once; it fails and waits 1 s
    await settle()
    next_due()  # a's first probe (at 4) fails; its re-send is due at 6, and the clock moves to 7
    await settle()
    assert service.calls == [("b",)] * 3 + [("a",)] * 3, service.calls
    assert service.at_once == 1  # a's second probe, in flight
    for _ in range(3):  # b falls due while a's probe is in flight: it waits, it does not go beside it
        if clock.next_due() is None:  # nothing waits: b went
            break
        next_due()
        await settle()
    assert service.calls[6:] == [], service.calls
    assert service.at_once == 1  # still only a's probe
    gate.set()
    delivery.abandon()
    await settle()
