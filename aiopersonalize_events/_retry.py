"""The one retry engine: which failures to retry, how long to wait, and the retry budget.

Every retry in the package goes through a ``RetryPolicy``: the client's own
attempts within one call, and the recorder's later re-sends of a batch whose
call failed. A caller holds a ``RetryToken`` per call (or per batch) and asks
the policy for the next one after a failure (``retry_token``); the policy
answers None when the error is not retryable, the attempts are used up, or
the client-wide budget cannot pay for it. ``record_success`` refunds what
the token's retry took.

The policy asks each error for its own facts (``retryable``,
``retry_after``) and never looks at status codes itself. Waits are capped
exponential backoff with full jitter; a ``Retry-After`` from the service wins
when present. The budget is the AWS SDKs' "standard" retry mode: 500 tokens,
a cost per retry, what a retry took back when the call then succeeds (else
1): with the bucket empty, failures are returned at once instead of
multiplying the load on a service in trouble.

By default (``ClientConfig.retries_2026``, on unless turned off; botocore
1.44 has nothing else) policies follow the AWS SDKs' updated behaviour of
2026 as botocore implements it (``RetryPolicy.for_config``): base delays of
50 ms (transient; an explicit ``backoff_base`` replaces it) and 1 s
(throttling), retry costs of 14 and 5 tokens, and ``x-amz-retry-after``
honoured within ``t + 5`` seconds. The deprecated earlier behaviour
(``retries_2026=False``) waits from ``backoff_base`` or ``Retry-After`` and
costs 5 per retry, 10 after a timeout or dropped connection.

``AdaptiveRateLimiter`` is the SDKs' "adaptive" mode: a client-side token
bucket, off until the first throttling answer, whose rate follows CUBIC
(botocore's ``ClientRateLimiter``, ``CubicCalculator``, ``RateClocker`` and
``TokenBucket``, one object per client here, on the event loop).

``random``, ``sleep`` and the limiter's ``clock`` are injectable so tests
assert exact delays without real time passing; ``set_testing(True)`` turns
every retry wait off for a test run (the limiter still paces).
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import attrs

from .errors import ClientRateLimitError, PersonalizeEventsError, TransportError

if TYPE_CHECKING:
    from ._config import ClientConfig

__all__ = [
    "AdaptiveRateLimiter",
    "AdaptiveStats",
    "RetryBudget",
    "RetryPolicy",
    "RetryToken",
    "is_testing",
    "set_testing",
    "wait_floor",
]

RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
SUCCESS_REFUND: Final = 1

# the AWS SDKs' updated retry behaviour (2026), as botocore's standard.py has it
RETRY_COST_2026: Final = 14
THROTTLING_RETRY_COST_2026: Final = 5
TRANSIENT_BASE_2026: Final = 0.05
THROTTLING_BASE_2026: Final = 1.0
RETRY_AFTER_EXTRA_2026: Final = 5.0

_testing = [False]


def set_testing(testing: bool) -> None:
    """Turn every retry wait off (``True``) or back on, process-wide: for test suites.

    With testing on, the client's backoff between attempts and the recorder's
    wait before re-sending a batch are zero; the number of attempts, the
    budget and every counter behave as in production.
    """
    _testing[0] = bool(testing)


def is_testing() -> bool:
    """True while ``set_testing(True)`` is in force."""
    return _testing[0]


def wait_floor(seconds: float) -> float:
    """``seconds``, or 0 while ``set_testing(True)`` is in force: the least wait of a sender's probe."""
    return 0.0 if _testing[0] else seconds


class RetryBudget:
    """A token bucket shared by all calls of one client; retries spend, successes refill.

    A retry costs ``retry_cost`` tokens (5), ``timeout_cost`` after a
    transport failure (10) and ``throttling_cost`` after throttling (when
    given; else as any other error). The 2026 behaviour is
    ``retry_cost=14, timeout_cost=14, throttling_cost=5``.
    """

    __slots__ = ("_capacity", "_tokens", "retry_cost", "throttling_cost", "timeout_cost")

    def __init__(
        self,
        capacity: int,
        *,
        retry_cost: int = RETRY_COST,
        timeout_cost: int = TIMEOUT_RETRY_COST,
        throttling_cost: int | None = None,
    ) -> None:
        self._capacity = capacity
        self._tokens = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.throttling_cost = throttling_cost

    @property
    def tokens(self) -> int:
        """Tokens left now."""
        return self._tokens

    def cost(self, error: PersonalizeEventsError) -> int:
        """Tokens a retry after ``error`` takes (by default 10 after a transport failure, else 5)."""
        if self.throttling_cost is not None and error.throttling:
            return self.throttling_cost
        return self.timeout_cost if isinstance(error, TransportError) else self.retry_cost

    def acquire(self, cost: int) -> bool:
        """Take ``cost`` tokens; False (taking none) when the budget cannot pay them."""
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def refund(self, retry_cost: int = 0) -> None:
        """Give tokens back after a success: what its last retry took (``retry_cost``), else one token."""
        amount = retry_cost or SUCCESS_REFUND
        self._tokens = min(self._capacity, self._tokens + amount)


class RetryToken:
    """Where one call (or one recorder batch) stands: the attempt to make next, its wait, and its cost.

    ``attempt`` is 1-based; ``delay`` is the wait before that attempt;
    ``cost`` the budget tokens its retry took (refunded on success).
    """

    __slots__ = ("attempt", "cost", "delay")

    def __init__(self, attempt: int = 1, delay: float = 0.0, cost: int = 0) -> None:
        self.attempt = attempt
        self.delay = delay
        self.cost = cost

    def __repr__(self) -> str:
        return f"RetryToken(attempt={self.attempt}, delay={self.delay:.3f}, cost={self.cost})"


class RetryPolicy:
    """Decides whether a failed attempt is retried and how long to wait first.

    ``max_attempts`` counts the first try. ``delay(attempt, error)`` for the
    attempt that just failed (1-based) is ``Retry-After`` when the error has
    one (capped at ``backoff_max``), else ``random() * min(backoff_max,
    backoff_base * 2 ** (attempt - 1))``. With ``throttling_backoff_base``
    set, a throttling error uses that base instead; with
    ``retry_after_extra`` set (the 2026 behaviour), the jittered wait ``t``
    is always drawn and the service's hint (``x-amz-retry-after``, else
    ``Retry-After``) counts within a bound: ``max(t, min(hint, t +
    retry_after_extra))``. ``rate_limiter`` is the adaptive mode's
    ``AdaptiveRateLimiter`` (None in the other modes), which every call of
    the client waits on before each attempt.
    """

    __slots__ = (
        "backoff_base",
        "backoff_max",
        "budget",
        "max_attempts",
        "random",
        "rate_limiter",
        "retry_after_extra",
        "sleep",
        "throttling_backoff_base",
    )

    max_attempts: int
    backoff_base: float
    backoff_max: float
    budget: RetryBudget
    random: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    throttling_backoff_base: float | None
    retry_after_extra: float | None
    rate_limiter: AdaptiveRateLimiter | None

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        budget: RetryBudget,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        throttling_backoff_base: float | None = None,
        retry_after_extra: float | None = None,
        rate_limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.budget = budget
        self.random = random
        self.sleep = sleep
        self.throttling_backoff_base = throttling_backoff_base
        self.retry_after_extra = retry_after_extra
        self.rate_limiter = rate_limiter

    @classmethod
    def for_config(cls, config: ClientConfig) -> RetryPolicy:
        """The policy a client with ``config`` uses: its attempts, backoff and budget, 2026 behaviour or not.

        The adaptive mode's limiter is added by the client once the mode is
        known (the profile may set it).
        """
        if config.retries_2026:
            from ._config import backoff_base_was_defaulted  # loaded already: ``config`` is one

            transient = config.backoff_base
            if backoff_base_was_defaulted(transient):
                transient = TRANSIENT_BASE_2026
            return cls(
                max_attempts=config.max_attempts,
                backoff_base=transient,
                backoff_max=config.backoff_max,
                budget=RetryBudget(
                    config.retry_budget,
                    retry_cost=RETRY_COST_2026,
                    timeout_cost=RETRY_COST_2026,
                    throttling_cost=THROTTLING_RETRY_COST_2026,
                ),
                throttling_backoff_base=THROTTLING_BASE_2026,
                retry_after_extra=RETRY_AFTER_EXTRA_2026,
            )
        return cls(
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            budget=RetryBudget(config.retry_budget),
        )

    def delay(self, attempt: int, error: PersonalizeEventsError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); 0 while testing."""
        if _testing[0]:
            return 0.0
        extra = self.retry_after_extra
        if extra is None:
            after = error.retry_after
            if after is not None:
                return min(after, self.backoff_max)
        base = self.backoff_base
        if self.throttling_backoff_base is not None and error.throttling:
            base = self.throttling_backoff_base
        jittered = self.random() * min(self.backoff_max, base * (2.0 ** (attempt - 1)))
        if extra is not None:
            hint = error.amz_retry_after
            if hint is None:
                hint = error.retry_after
            if hint is not None:
                return max(jittered, min(hint, jittered + extra))
        return jittered

    def first_token(self) -> RetryToken:
        """The token of a call's first attempt (no wait, no cost)."""
        return RetryToken()

    def retry_token(
        self, token: RetryToken, error: PersonalizeEventsError, *, bounded: bool = True
    ) -> RetryToken | None:
        """The token for the next attempt after ``token``'s attempt failed with ``error``, or None.

        None when ``error`` is not retryable, when ``bounded`` and
        ``max_attempts`` attempts were made, or when the budget cannot pay for
        the retry (nothing is taken from it then). Otherwise the retry's cost
        is taken from the budget now.
        """
        if not error.retryable or (bounded and token.attempt >= self.max_attempts):
            return None
        cost = self.budget.cost(error)
        if not self.budget.acquire(cost):
            return None
        return RetryToken(token.attempt + 1, self.delay(token.attempt, error), cost)

    def record_success(self, token: RetryToken) -> None:
        """A call succeeded: refund what its last retry took (or one token for a first-try success)."""
        self.budget.refund(token.cost)


# --- adaptive mode: the client-side rate limiter ------------------------------------------------------------


@attrs.frozen
class AdaptiveStats:
    """What the adaptive rate limiter is doing, at one moment.

    ``enabled`` turns True at the first throttling answer (before it, calls
    are not paced); ``rate`` is the send rate allowed now (calls per second,
    None while not enabled); ``measured_rate`` the rate answers arrive at;
    ``throttles`` the throttling answers seen; ``waits`` and ``waited`` the
    calls that waited for a token and the seconds they waited in all;
    ``refused`` the calls refused at once (``rate_limit_fail_fast``).
    """

    enabled: bool
    rate: float | None
    measured_rate: float
    throttles: int
    waits: int
    waited: float
    refused: int


class AdaptiveRateLimiter:
    """The AWS SDKs' adaptive retry mode: a token bucket whose rate follows CUBIC on throttling answers.

    One per client, shared by every call it makes (``put_*``, the recorder,
    the batching helpers): ``acquire()`` before each attempt takes a token
    (waiting for one, or with ``fail_fast`` raising ``ClientRateLimitError``
    at once), ``record(throttled)`` after each answer adjusts the rate. As in
    botocore: the bucket is off until the first throttle; a throttle sets
    the rate to ``beta`` (0.7) times the rate in use (the measured one, or
    the bucket's if lower) and remembers it as ``w_max``; while calls
    succeed the rate grows as ``scale * (t - k) ** 3 + w_max`` (``scale``
    0.4, ``k = cbrt(w_max * (1 - beta) / scale)``, ``t`` seconds since the
    throttle), never above twice the measured rate; the bucket never fills
    slower than ``min_rate`` (0.5 per second) and holds at most one second's
    tokens. The measured rate is smoothed (0.8) over half-second buckets.
    ``clock`` (seconds) and ``sleep`` are injectable for tests.
    """

    __slots__ = (
        "_capacity",
        "_count",
        "_enabled",
        "_fill_rate",
        "_k",
        "_last_bucket",
        "_last_fail",
        "_last_refill",
        "_max_capacity",
        "_measured",
        "_refused",
        "_throttles",
        "_w_max",
        "_waited",
        "_waits",
        "clock",
        "fail_fast",
        "sleep",
    )

    BETA: Final = 0.7
    SCALE: Final = 0.4
    MIN_RATE: Final = 0.5
    SMOOTHING: Final = 0.8
    BUCKET_SECONDS: Final = 0.5
    MAX_RATE_SCALE: Final = 2.0

    def __init__(
        self,
        *,
        fail_fast: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.fail_fast = fail_fast
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self._enabled = False
        self._w_max = 0.0
        self._k = 0.0
        self._last_fail = now
        self._fill_rate = 1.0
        self._max_capacity = 1.0
        self._capacity = 0.0
        self._last_refill: float | None = None
        self._measured = 0.0
        self._count = 0
        self._last_bucket = float(math.floor(now))
        self._throttles = 0
        self._waits = 0
        self._waited = 0.0
        self._refused = 0

    def __repr__(self) -> str:
        rate = f"{self._fill_rate:.3g}/s" if self._enabled else "off"
        return f"AdaptiveRateLimiter(rate={rate}, throttles={self._throttles}, fail_fast={self.fail_fast})"

    @property
    def stats(self) -> AdaptiveStats:
        """A snapshot of the limiter's rate and counters."""
        return AdaptiveStats(
            enabled=self._enabled,
            rate=self._fill_rate if self._enabled else None,
            measured_rate=self._measured,
            throttles=self._throttles,
            waits=self._waits,
            waited=self._waited,
            refused=self._refused,
        )

    # -- the token bucket ---------------------------------------------------------------------------------

    def _refill(self) -> None:
        now = self.clock()
        if self._last_refill is None:
            self._last_refill = now
            return
        self._capacity = min(self._max_capacity, self._capacity + (now - self._last_refill) * self._fill_rate)
        self._last_refill = now

    def _set_rate(self, rate: float) -> None:
        self._refill()  # what accrued so far, at the old rate
        self._fill_rate = max(rate, self.MIN_RATE)
        self._max_capacity = max(rate, 1.0)
        self._capacity = min(self._capacity, self._max_capacity)

    async def acquire(self) -> None:
        """Take a token before an attempt: at once while the limiter is off, else waiting for one.

        With ``fail_fast`` a call that would wait raises ``ClientRateLimitError``
        instead (nothing is sent).
        """
        if not self._enabled:
            return
        while True:
            self._refill()
            if self._capacity >= 1.0 - 1e-9:  # a wait of exactly the deficit may fall short by a rounding
                self._capacity = max(0.0, self._capacity - 1.0)
                return
            wait = (1.0 - self._capacity) / self._fill_rate
            if self.fail_fast:
                self._refused += 1
                raise ClientRateLimitError(
                    f"the client's adaptive rate limiter allows {self._fill_rate:.3g} calls per second after "
                    f"throttling and has no token for {wait:.3f}s (rate_limit_fail_fast); nothing was sent"
                )
            self._waits += 1
            self._waited += wait
            await self.sleep(wait)

    # -- answers: the measured rate and CUBIC ---------------------------------------------------------------

    def _measure(self) -> float:
        now = self.clock()
        bucket = math.floor(now / self.BUCKET_SECONDS) * self.BUCKET_SECONDS
        self._count += 1
        if bucket > self._last_bucket:
            current = self._count / (bucket - self._last_bucket)
            self._measured = current * self.SMOOTHING + self._measured * (1.0 - self.SMOOTHING)
            self._count = 0
            self._last_bucket = bucket
        return self._measured

    def record(self, throttled: bool) -> None:
        """Adjust the rate after an attempt's answer: ``throttled`` when the service asked to slow down."""
        measured = self._measure()
        now = self.clock()
        if not throttled:
            rate = self.SCALE * (now - self._last_fail - self._k) ** 3 + self._w_max
        else:
            self._throttles += 1
            in_use = min(measured, self._fill_rate) if self._enabled else measured
            self._w_max = in_use
            self._k = (in_use * (1.0 - self.BETA) / self.SCALE) ** (1.0 / 3.0)
            self._last_fail = now
            rate = in_use * self.BETA
            self._enabled = True
        self._set_rate(min(rate, self.MAX_RATE_SCALE * measured))
