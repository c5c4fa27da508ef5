"""The retry policy: which failures to retry, how long to wait, and the retry budget.

The policy asks each error for its own facts (``retryable``, ``throttling``,
``retry_after``) and never looks at status codes itself. Waits are capped
exponential backoff with full jitter; a ``Retry-After`` from the service wins
when present. A client-wide token bucket (the AWS SDKs' "standard" retry mode:
500 tokens, 5 per retry, 10 per retry after a timeout or dropped connection,
what a retry took back when the call then succeeds, else 1) stops a fleet of callers from multiplying load during an
outage: with the bucket empty, failures are returned at once.

``random`` and ``sleep`` are injectable so tests assert exact delays without
real time passing.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable
from typing import Final

from .errors import PersonalizeEventsError, TransportError

__all__ = ["RetryBudget", "RetryPolicy"]

RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
SUCCESS_REFUND: Final = 1


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

    def acquire(self, error: PersonalizeEventsError) -> bool:
        """Take the cost of retrying after ``error``; False when the budget cannot pay it."""
        cost = self.cost(error)
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def refund(self, retry_cost: int = 0) -> None:
        """Give tokens back after a success: what its last retry took (``retry_cost``), else one token."""
        amount = retry_cost or SUCCESS_REFUND
        self._tokens = min(self._capacity, self._tokens + amount)


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
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        after = error.retry_after
        if after is not None:
            return min(after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** (attempt - 1)))
        return self.random() * ceiling

    def should_retry(self, attempt: int, error: PersonalizeEventsError) -> bool:
        """True when ``error`` is retryable, attempts remain, and the budget pays for it."""
        if not error.retryable or attempt >= self.max_attempts:
            return False
        return self.budget.acquire(error)
