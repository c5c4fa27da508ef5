"""The one delivery engine: send batches, send again what failed, and tell the owner how each ended.

Every component that delivers batches in the background drives a ``Delivery``:
the recorder, the Redis forwarder and the command line's ``put-*`` runs. The
owner keeps its own state (what is pending, where a batch came from) and hears
each batch's outcome through the four methods of an ``Outcomes`` object:

- ``sent(batch)``: the service accepted it;
- ``refused(batch, error)``: the service refused these records for good
  (``error.fault`` is ``Fault.RECORDS``); with a ``split`` function the engine
  first sends the records of a refused batch one call each, so that only the
  records to blame are refused;
- ``held(batch, error)``: it will be sent again later, because the failure may
  pass (``Fault.TRANSIENT``) or because the set-up is wrong (``Fault.SETUP``:
  no credentials, credentials the service rejects, no permission, an unknown
  tracker or dataset). The records stay the owner's, pending;
- ``unsent(batch, error)``: the engine stopped (``stop()``, or the deadline
  passed) with the batch not delivered; ``error`` is its last failure, None
  when it was stopped before or while being sent. Not a failure of the
  records: a durable owner keeps them.

The rules, the same for every owner:

- at most ``max_concurrency`` calls at once; a batch waiting to be sent again
  holds no slot (it sits in a heap by due time, with one timer on ``clock``);
  a sender whose call ended takes the next ready batch itself (no task per
  call while batches are ready); every call, a re-send too, first waits for
  the rate ``limiter`` when there is one;
- a transient failure is sent again after the wait the client's
  ``RetryPolicy`` gives (``retry_token(..., bounded=False)``: backoff with
  jitter, ``Retry-After`` honoured, its cost taken from the client-wide retry
  budget). The client's own attempts within the call count too. When the
  budget cannot pay, the batch waits at least ``min_wait`` and then goes as a
  *probe*: one probe at a time, whoever owns the batches; a probe costs no
  token, and when one gets through, the next waiting batch goes at once;
- a set-up error holds the batch (probes again, one at a time, on the
  policy's backoff, at least ``min_wait``), takes no token, and is logged at
  ERROR once per condition with what to fix (``error.fix``); once a call gets
  through, the held batches go at once, and that is logged too;
- with a ``deadline`` (clock time), waits are cut to it, and a batch that
  fails at or after it is ``unsent``. ``stop()`` ends everything now:
  batches queued or waiting are ``unsent``; calls in flight get ``grace``
  seconds, then are cancelled (``unsent``).

The engine belongs to the event loop it first runs in; ``submit()`` and the
other plain methods are called on that loop's thread. It never looks inside
a batch: ``send(batch)`` makes the call, ``size(batch)`` counts its records
for the log, ``split(batch)`` (optional) cuts it into single records.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Generic, Protocol, TypeVar

from ._batching import AcquireLimit
from ._clock import Clock
from ._retry import RetryPolicy, RetryToken
from .errors import Fault, PersonalizeEventsError

__all__ = ["Delivery", "Outcomes"]

B = TypeVar("B")
B_contra = TypeVar("B_contra", contravariant=True)

_log: Final = logging.getLogger("aiopersonalize_events.delivery")


class Outcomes(Protocol[B_contra]):
    """What a ``Delivery`` tells its owner about each batch (see the module documentation)."""

    def sent(self, batch: B_contra) -> None:
        """The service accepted ``batch``."""

    def refused(self, batch: B_contra, error: PersonalizeEventsError) -> None:
        """The service refused ``batch``'s records for good (``error.fault`` is ``RECORDS``)."""

    def held(self, batch: B_contra, error: PersonalizeEventsError) -> None:
        """``batch`` failed with ``error`` and will be sent again later (transient, or set-up wrong)."""

    def unsent(self, batch: B_contra, error: PersonalizeEventsError | None) -> None:
        """The engine stopped, or its deadline passed, with ``batch`` not delivered."""


class _Job(Generic[B]):
    """One batch in the engine: where its retries stand, and why it waits."""

    __slots__ = ("batch", "error", "probe", "token")

    def __init__(self, batch: B) -> None:
        self.batch = batch
        self.token = RetryToken()
        self.error: PersonalizeEventsError | None = None
        self.probe = False  # it may go only as the one probe (budget empty, or set-up wrong)


def _wake(engine: Delivery[B]) -> None:
    engine._timer = None
    engine._pump()


class Delivery(Generic[B]):
    """Sends batches with ``send``, sends again what failed, and reports each outcome to ``outcomes``.

    ``policy`` is the client's ``RetryPolicy`` (its budget is shared with the
    client's own retries); ``max_concurrency`` bounds the calls at once;
    ``limiter`` paces every call; ``clock`` (an event loop or a
    ``ManualClock``; the running loop when None) measures the waits;
    ``min_wait`` is the least wait of a probe; ``name`` leads the log lines,
    which go to ``logger``. See the module documentation for the rules.
    """

    def __init__(
        self,
        send: Callable[[B], Awaitable[object]],
        outcomes: Outcomes[B],
        *,
        policy: RetryPolicy,
        max_concurrency: int,
        limiter: AcquireLimit | None = None,
        clock: Clock | None = None,
        min_wait: float = 0.0,
        size: Callable[[B], int] = len,  # type: ignore[assignment]
        split: Callable[[B], Sequence[B]] | None = None,
        refill: Callable[[], None] | None = None,
        name: str = "delivery",
        logger: logging.Logger = _log,
    ) -> None:
        self._send = send
        self._outcomes = outcomes
        self._policy = policy
        self._max = max_concurrency
        self._limiter = limiter
        self._clock = clock
        self._min_wait = float(min_wait)
        self._size = size
        self._split = split
        self._refill = refill
        self._name = name
        self._log = logger
        self.deadline: float | None = None
        """Clock time after which nothing is sent again (None: no deadline)."""
        self._ready: deque[_Job[B]] = deque()
        self._later: list[tuple[float, int, _Job[B]]] = []
        self._order = itertools.count()
        self._flying: dict[asyncio.Task[None], _Job[B]] = {}
        self._probe: _Job[B] | None = None
        self._timer: object | None = None
        self._timer_at = 0.0
        self._stopped = False
        self._conditions: dict[tuple[str, str], PersonalizeEventsError] = {}
        self._context = contextvars.Context()  # the calls are nobody's request: not the submitter's context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    # -- what owners see ------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Calls being made now."""
        return len(self._flying)

    @property
    def queued(self) -> int:
        """Batches ready to go, waiting for a slot."""
        return len(self._ready)

    @property
    def waiting(self) -> int:
        """Batches waiting to be sent again (after a transient failure, or held on a set-up error)."""
        return len(self._later)

    @property
    def busy(self) -> bool:
        """True while any batch is queued, in flight or waiting."""
        return bool(self._ready or self._flying or self._later)

    @property
    def setup_errors(self) -> tuple[PersonalizeEventsError, ...]:
        """The set-up errors holding batches now (one per condition), as last seen."""
        return tuple(self._conditions.values())

    def submit(self, batch: B) -> None:
        """Queue ``batch`` for its first attempt; it goes as soon as a slot is free."""
        if self._stopped:
            self._outcomes.unsent(batch, None)
            return
        self._ready.append(_Job(batch))
        self._pump()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no batch is queued, in flight or waiting (True), or ``timeout`` seconds passed (False)."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while self.busy:
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return False
            await self._wait_change(left)
        return True

    async def room(self) -> None:
        """Wait until a new batch would go at once: nothing queued and a slot free (back-pressure for intake)."""
        while not self._stopped and (self._ready or len(self._flying) >= self._max):
            await self._wait_change(None)

    def halt(self) -> None:
        """Start nothing more: every batch queued or waiting is ``unsent`` now; calls in flight go on. Idempotent."""
        self._stopped = True
        self._cancel_timer()
        jobs = list(self._ready)
        self._ready.clear()
        while self._later:
            jobs.append(heapq.heappop(self._later)[2])
        for job in jobs:
            self._outcomes.unsent(job.batch, job.error)
        self._changes()

    def abandon(self) -> None:
        """Stop now, without waiting: ``halt()``, and the calls in flight are cancelled (their batches ``unsent``)."""
        self.halt()
        self.hurry()

    async def stop(self, grace: float = 0.0) -> None:
        """``halt()``; calls in flight get ``grace`` seconds to end, then are cancelled; returns once all ended.

        A call that ends within the grace is reported as usual (a failure is
        ``unsent``: nothing is sent again). Idempotent.
        """
        self.halt()
        tasks = list(self._flying)
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        self.hurry()
        tasks = [task for task in tasks if not task.done()]
        if tasks:
            await asyncio.wait(tasks)

    def hurry(self) -> None:
        """Cancel the calls in flight now (their batches are ``unsent``); for a stop that must not wait."""
        for task in list(self._flying):
            task.cancel()

    # -- the loop side --------------------------------------------------------------------------------------

    def _time(self) -> float:
        if self._clock is not None:
            return self._clock.time()
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def _pump(self) -> None:
        """Start what may start: due re-sends into the queue, queued batches into free slots; arm the timer."""
        if self._stopped:
            return
        later = self._later
        if later:
            now = self._time()
            while later and later[0][0] <= now:
                self._ready.append(heapq.heappop(later)[2])
        ready = self._ready
        while ready and len(self._flying) < self._max:
            job = ready.popleft()
            if job.probe and not self._as_probe(job):
                continue
            self._launch(job)
        if later:
            self._arm()

    def _launch(self, job: _Job[B]) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task: asyncio.Task[None] = self._context.run(loop.create_task, self._sender(job))
        self._flying[task] = job
        task.add_done_callback(self._ended)

    def _as_probe(self, job: _Job[B]) -> bool:
        """A batch that waited for the budget (or on a set-up error) asks again; False: it waits once more."""
        error = job.error
        assert error is not None
        if error.fault is Fault.TRANSIENT:
            token = self._policy.retry_token(job.token, error, bounded=False)
            if token is not None:  # the budget pays again: an ordinary retry
                job.token = token
                job.probe = False
                return True
        if self._probe is None:  # the one probe: costs no token; its success lets the others go
            self._probe = job
            job.token = RetryToken(job.token.attempt + 1)
            return True
        self._wait(job, self._probe_wait(job, error))
        return False

    def _next(self) -> _Job[B] | None:
        """The ready batch a sender whose call ended may take at once; None leaves it to ``_pump``."""
        if self._stopped:
            return None
        ready = self._ready
        if not ready and self._refill is not None:
            self._refill()
        if ready and not ready[0].probe:
            return ready.popleft()
        return None

    async def _sender(self, job: _Job[B]) -> None:
        task = asyncio.current_task()
        while True:
            await self._attempt(job)
            # No longer the probe once its outcome is reported, not when the task's done callback runs a loop
            # turn later: a re-send falling due in between (the owner moved the clock) would find the probe busy
            # and wait another round, with no call in flight.
            self._job_ended(job)
            following = self._next()
            if following is None or task is None:
                return
            job = self._flying[task] = following

    async def _attempt(self, job: _Job[B]) -> None:
        """One call for ``job``, and what follows from its answer."""
        try:
            if self._limiter is not None:  # every call, a re-send too, waits for its turn
                await self._limiter.acquire()
            await self._send(job.batch)
        except asyncio.CancelledError:
            self._outcomes.unsent(job.batch, job.error)
            raise
        except PersonalizeEventsError as error:
            self._failed(job, error)
        except Exception as exc:  # a bug or misuse: fail loudly, never lose the records quietly
            self._log.exception("%s: a send failed unexpectedly", self._name)
            wrapped = PersonalizeEventsError(f"unexpected error while sending: {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            self._outcomes.refused(job.batch, wrapped)
        else:
            if job.token.cost:
                self._policy.record_success(job.token)
            if self._conditions:
                self._fixed()
            job.error = None  # its traceback holds the sending frame: no cycle to wait for
            self._outcomes.sent(job.batch)

    def _failed(self, job: _Job[B], error: PersonalizeEventsError) -> None:
        job.token.attempt += max(0, error.attempts - 1)  # the client's own attempts count too
        fault = error.fault
        if fault is Fault.RECORDS:
            job.error = None
            parts = self._split(job.batch) if self._split is not None else ()
            if len(parts) > 1:  # find the records refused: one call each, before anything else
                self._ready.extendleft(_Job(part) for part in reversed(parts))
                return
            self._outcomes.refused(job.batch, error)
            return
        now = self._time()
        deadline = self.deadline
        if self._stopped or (deadline is not None and now >= deadline):
            self._outcomes.unsent(job.batch, error)
            return
        job.error = error
        if fault is Fault.SETUP:
            self._setup_error(error)
            job.probe = True
            delay = self._probe_wait(job, error)
        else:
            token = self._policy.retry_token(job.token, error, bounded=False)
            if token is None:  # the budget is empty: wait, then go as a probe
                job.probe = True
                delay = self._probe_wait(job, error)
                self._log.debug(
                    "%s: retry budget empty; a batch of %d waits %.2fs", self._name, self._size(job.batch), delay
                )
            else:
                job.token = token
                delay = token.delay
                self._log.debug(
                    "%s: sending a batch of %d again in %.2fs after %s", self._name, self._size(job.batch), delay, error
                )
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - now))
        self._outcomes.held(job.batch, error)
        if self._stopped:  # the owner stopped on hearing it (a command line's run does, on a set-up error)
            self._outcomes.unsent(job.batch, error)
            return
        self._wait(job, delay, now)

    def _probe_wait(self, job: _Job[B], error: PersonalizeEventsError) -> float:
        return max(self._policy.delay(job.token.attempt, error), self._min_wait)

    def _wait(self, job: _Job[B], delay: float, now: float | None = None) -> None:
        when = (self._time() if now is None else now) + delay
        heapq.heappush(self._later, (when, next(self._order), job))

    def _arm(self) -> None:
        """One timer, for the earliest re-send."""
        when = self._later[0][0]
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._cancel_timer()
        clock: Clock = self._clock if self._clock is not None else (self._loop or asyncio.get_running_loop())
        self._timer = clock.call_at(when, _wake, self)
        self._timer_at = when

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()  # type: ignore[attr-defined]

    def _ended(self, task: asyncio.Task[None]) -> None:
        job = self._flying.pop(task, None)
        if job is not None and (task.cancelled() or task.exception() is not None):
            self._job_ended(job)  # a sender that returned ended its job itself (which may be the probe again by now)
        if not task.cancelled() and task.exception() is not None:  # cannot happen by design
            self._log.error("%s: a sender died: %r", self._name, task.exception())
        self._pump()  # a slot is free
        self._changes()

    def _job_ended(self, job: _Job[B]) -> None:
        """A sender is done with ``job``: a probe that got through lets the next waiting batch go now."""
        if job is self._probe:
            self._probe = None
            if job.error is None and self._later:
                due, order, first = heapq.heappop(self._later)
                heapq.heappush(self._later, (min(due, self._time()), order, first))
                self._pump()

    # -- set-up conditions ----------------------------------------------------------------------------------

    def _setup_error(self, error: PersonalizeEventsError) -> None:
        """Log a set-up error at ERROR once per condition (its class and code), with what to fix."""
        key = (type(error).__name__, str(getattr(error, "code", "")))
        if key not in self._conditions:
            text = str(error)
            name = type(error).__name__
            self._log.error(
                "%s: %s; records are held (not failed) and sent again once this is fixed: %s",
                self._name,
                text if text.startswith(name) or name == "ServiceError" else f"{name}: {text}",
                error.fix or "check the client's set-up",
            )
        self._conditions[key] = error

    def _fixed(self) -> None:
        """A call got through after set-up errors: say so, and let every held batch go now."""
        names = ", ".join(sorted({name for name, _ in self._conditions}))
        self._conditions.clear()
        self._log.warning("%s: calls are accepted again (after %s); sending the held records", self._name, names)
        if self._later:
            now = self._time()
            for index, (due, order, job) in enumerate(self._later):
                error = job.error
                if error is not None and error.fault is Fault.SETUP:
                    job.probe = False
                    self._later[index] = (min(due, now), order, job)
            heapq.heapify(self._later)
            self._pump()

    # -- waiting for changes --------------------------------------------------------------------------------

    def _changes(self) -> None:
        changed = self._changed
        if changed is not None:
            changed.set()

    async def _wait_change(self, timeout: float | None) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        if timeout is None:
            await self._changed.wait()
            return
        waiter = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait([waiter], timeout=timeout)
        finally:
            waiter.cancel()
