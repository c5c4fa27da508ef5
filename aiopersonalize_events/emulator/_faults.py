"""Injected faults and request-rate quotas: how the emulator misbehaves on purpose.

``Faults`` holds per-call probabilities and a latency; ``FaultInjector`` draws
one random number per call from a generator seeded with ``Faults.seed``, so
the same seed gives the same sequence of faults. ``Quotas`` is a token
bucket per operation and dataset group (or tracker) with an injectable
clock, answering ``ThrottlingException`` like the service's rate quotas.
"""

from __future__ import annotations

import enum
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from .. import _limits as L

__all__ = ["DEFAULT_QUOTAS", "Fault", "FaultInjector", "Faults", "Quotas", "TokenBucket"]


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"Faults.{attribute.name} must be a probability between 0 and 1")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Faults.{attribute.name} must be a finite number of seconds, at least 0")


def _seed(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("Faults.seed must be an integer or None")


@attrs.frozen(kw_only=True)
class Faults:
    """What the emulator does wrong, on purpose, to each API call.

    ``throttle``, ``server_error`` and ``disconnect`` are probabilities per
    call in [0, 1] (their sum at most 1): a throttled call gets 400
    ``ThrottlingException``, a server error 500 ``InternalFailure`` or 503
    ``ServiceUnavailableException`` (half each), a disconnect has its
    connection closed without an answer. ``latency`` delays every answer by
    that many seconds. ``seed`` makes the sequence of faults repeatable. A
    faulted call stores nothing.
    """

    throttle: float = attrs.field(default=0.0, validator=_rate)
    server_error: float = attrs.field(default=0.0, validator=_rate)
    disconnect: float = attrs.field(default=0.0, validator=_rate)
    latency: float = attrs.field(default=0.0, validator=_seconds)
    seed: int | None = attrs.field(default=None, validator=_seed)

    def __attrs_post_init__(self) -> None:
        if self.throttle + self.server_error + self.disconnect > 1.0 + 1e-9:
            raise ValueError("Faults: throttle + server_error + disconnect must not exceed 1")

    @property
    def any_rate(self) -> bool:
        """True when some call may be faulted."""
        return bool(self.throttle or self.server_error or self.disconnect)


class Fault(enum.Enum):
    """What happens to one call."""

    DISCONNECT = "disconnect"
    THROTTLE = "throttle"
    INTERNAL_FAILURE = "internal-failure"
    SERVICE_UNAVAILABLE = "service-unavailable"


class FaultInjector:
    """Draws the fault (or none) for each call, repeatably for a given ``Faults.seed``.

    One number is drawn per call while any rate is above zero; it falls in
    the disconnect band, then the throttle band, then the server error band
    (its first half 500, its second half 503), or past them all.
    """

    __slots__ = ("_random", "faults")

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)

    def __repr__(self) -> str:
        return f"FaultInjector({self.faults!r})"

    def draw(self) -> Fault | None:
        """The fault for the next call, or None."""
        faults = self.faults
        if not faults.any_rate:
            return None
        r = self._random.random()
        if r < faults.disconnect:
            return Fault.DISCONNECT
        r -= faults.disconnect
        if r < faults.throttle:
            return Fault.THROTTLE
        r -= faults.throttle
        if r < faults.server_error:
            return Fault.INTERNAL_FAILURE if r < faults.server_error / 2 else Fault.SERVICE_UNAVAILABLE
        return None


DEFAULT_QUOTAS: Final[Mapping[str, float]] = {
    "PutEvents": L.PUT_EVENTS_RATE,
    "PutItems": L.PUT_ITEMS_RATE,
    "PutUsers": L.PUT_USERS_RATE,
}
"""The service's default request-rate quotas (requests per second per dataset group)."""


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``; a call takes one."""

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = now

    def take(self, now: float) -> bool:
        """Take one token at time ``now``; False when none is left."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


_DATASET_GROUP: Final = re.compile(r"arn:[^:]*:personalize:([^:]*):([^:]*):dataset/([^/]+)/")


def quota_key(resource: str) -> str:
    """What a quota is counted per: the dataset group of a dataset ARN, else the id itself (a tracker)."""
    found = _DATASET_GROUP.match(resource)
    if found is None:
        return resource
    region, account, group = found.groups()
    return f"{region}:{account}:{group}"


class Quotas:
    """Request-rate quotas per operation and dataset group, as token buckets.

    ``rates`` maps operation names (``PutEvents``) to requests per second;
    operations not named are not limited. Each bucket holds one second's
    worth of requests (its burst) and is keyed by the dataset group of the
    request's dataset ARN, or by its tracking id. ``clock`` is monotonic
    seconds; tests inject their own.
    """

    __slots__ = ("_buckets", "clock", "rates")

    def __init__(self, rates: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        for name, rate in rates.items():
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"quota for {name} must be a positive number of requests per second")
        self.rates = dict(rates)
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def __repr__(self) -> str:
        return f"Quotas({self.rates!r})"

    def allow(self, operation: str, resource: str) -> bool:
        """Count one call of ``operation`` on ``resource``; False when it is over the quota."""
        rate = self.rates.get(operation)
        if rate is None:
            return True
        key = (operation, quota_key(resource))
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, max(rate, 1.0), now)
        return bucket.take(now)

    def reset(self) -> None:
        """Refill every bucket (forget past calls)."""
        self._buckets.clear()
