"""ClientConfig: the client's tunables, with their defaults in one place."""

from __future__ import annotations

from typing import Any

import attrs

from ._validators import check_positive_int
from .errors import ValidationError

__all__ = ["ClientConfig"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(attribute.name, "must be a positive number")


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValidationError(attribute.name, "must be a positive number or None")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    check_positive_int(attribute.name, value)


def _header_text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Text that can go into an HTTP header as it is: printable ASCII, no line breaks."""
    if value is None:
        return
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        raise ValidationError(attribute.name, "must be printable ASCII text (no line breaks or control characters)")


@attrs.frozen(kw_only=True)
class ClientConfig:
    """How the client connects, times out and retries.

    ``max_attempts`` counts the first try (3: one call and up to two retries).
    Retries wait a random time between 0 and ``min(backoff_max,
    backoff_base * 2 ** (attempt - 1))`` seconds (full jitter), or the
    ``Retry-After`` the service sent. ``retry_budget`` is the client-wide
    token bucket that stops retry storms: a retry takes 5 tokens (10 after a
    timeout or dropped connection), a success gives back what its retry took
    (one token when it needed none), and with the
    bucket empty failures are returned at once instead of retried.
    ``connect_timeout`` and ``read_timeout`` are seconds (opening a
    connection; each wait for data, and the whole answer body);
    ``attempt_timeout`` bounds one attempt as a whole once it has a
    connection slot, so a server that trickles its answer's headers cannot
    hold a call open (None: no bound); ``max_connections`` bounds the pooled
    connections, and a call waits for a free one at most ``pool_timeout``
    seconds (None, the default: as long as it takes), then fails with
    ``PoolTimeoutError`` without sending (a pool wait is never reported as a
    service timeout, retried, or charged to the budget); ``use_fips_endpoint`` and
    ``use_dualstack_endpoint`` pick those endpoint variants;
    ``user_agent_extra`` is appended to the ``User-Agent``;
    ``max_response_bytes`` caps how much of an answer is read.
    """

    max_attempts: int = attrs.field(default=3, validator=_at_least_one)
    backoff_base: float = attrs.field(default=0.1, validator=_positive)
    backoff_max: float = attrs.field(default=20.0, validator=_positive)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    read_timeout: float = attrs.field(default=15.0, validator=_positive)
    attempt_timeout: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    pool_timeout: float | None = attrs.field(default=None, validator=_positive_or_none)
    max_connections: int = attrs.field(default=64, validator=_at_least_one)
    user_agent_extra: str | None = attrs.field(default=None, validator=_header_text)
    use_fips_endpoint: bool = False
    use_dualstack_endpoint: bool = False
    retry_budget: int = attrs.field(default=500, validator=_at_least_one)
    max_response_bytes: int = attrs.field(default=1024 * 1024, validator=_at_least_one)
