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
5 per retry, 10 per retry after a timeout or dropped connection, what a retry
took back when the call then succeeds (else 1): with the bucket empty,
failures are returned at once instead of multiplying the load on a service
in trouble.

``random`` and ``sleep`` are injectable so tests assert exact delays without
real time passing; ``set_testing(True)`` turns every wait off for a test run.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable
from typing import Final

from .errors import PersonalizeEventsError, TransportError

__all__ = ["RetryBudget", "RetryPolicy", "RetryToken", "is_testing", "set_testing", "wait_floor"]

RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
SUCCESS_REFUND: Final = 1

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
    """A token bucket shared by all calls of one client; retries spend, successes refill."""

    __slots__ = ("_capacity", "_tokens")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._tokens = capacity

    @property
    def tokens(self) -> int:
        """Tokens left now."""
        return self._tokens

    @staticmethod
    def cost(error: PersonalizeEventsError) -> int:
        """Tokens a retry after ``error`` takes: 10 after a transport failure, else 5."""
        return TIMEOUT_RETRY_COST if isinstance(error, TransportError) else RETRY_COST

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
    backoff_base * 2 ** (attempt - 1))``.
    """

    __slots__ = ("backoff_base", "backoff_max", "budget", "max_attempts", "random", "sleep")

    max_attempts: int
    backoff_base: float
    backoff_max: float
    budget: RetryBudget
    random: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        budget: RetryBudget,
        random: Callable[[], float] = _random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.budget = budget
        self.random = random
        self.sleep = sleep

    def delay(self, attempt: int, error: PersonalizeEventsError) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); 0 while testing."""
        if _testing[0]:
            return 0.0
        after = error.retry_after
        if after is not None:
            return min(after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** (attempt - 1)))
        return self.random() * ceiling

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
