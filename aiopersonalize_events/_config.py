"""ClientConfig: the client's tunables, with their defaults in one place."""

from __future__ import annotations

import os
from typing import Any, Final, Literal, get_args

import attrs

from ._validators import check_positive_int
from .errors import ValidationError

__all__ = ["ClientConfig", "RetryMode"]

RetryMode = Literal["standard", "adaptive", "legacy"]
"""The AWS SDKs' retry modes; see ``ClientConfig.retry_mode`` for what each means here."""

_RETRY_MODES: Final[tuple[str, ...]] = get_args(RetryMode)
_DEFAULT_MAX_ATTEMPTS: Final = 3


def _max_attempts_from_env() -> int:
    """``AWS_MAX_ATTEMPTS`` (the AWS SDKs' setting, the first try included) when set, else 3."""
    text = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not text:
        return _DEFAULT_MAX_ATTEMPTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError("AWS_MAX_ATTEMPTS", "must be a whole number of at least 1 (attempts, the first included)")
    return value


def _retry_mode_from_env() -> RetryMode:
    """``AWS_RETRY_MODE`` when set (standard, adaptive or legacy, in any case), else standard."""
    text = os.environ.get("AWS_RETRY_MODE", "").strip().lower()
    if not text:
        return "standard"
    for mode in _RETRY_MODES:
        if text == mode:
            return mode  # type: ignore[return-value]  # one of the Literal's own values
    raise ValidationError("AWS_RETRY_MODE", f"must be one of {', '.join(_RETRY_MODES)}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(attribute.name, "must be a positive number")


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValidationError(attribute.name, "must be a positive number or None")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    check_positive_int(attribute.name, value)


def _retry_mode(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in _RETRY_MODES:
        raise ValidationError(attribute.name, f"must be one of {', '.join(_RETRY_MODES)}")


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
    connection; each wait for data, the answer's headers as a whole within
    ``connect_timeout + read_timeout`` of the attempt's start, and the whole
    answer body), so a server that trickles its answer cannot hold a call
    open; ``attempt_timeout`` bounds one attempt as a whole once it has a
    connection slot (None: no bound); ``max_connections`` bounds the pooled
    connections, and a call waits for a free one at most ``pool_timeout``
    seconds (None, the default: as long as it takes), then fails with
    ``PoolTimeoutError`` without sending (a pool wait is never reported as a
    service timeout, retried, or charged to the budget); ``use_fips_endpoint`` and
    ``use_dualstack_endpoint`` pick those endpoint variants;
    ``user_agent_extra`` is appended to the ``User-Agent``;
    ``max_response_bytes`` caps how much of an answer is read.

    As in the AWS SDKs, ``max_attempts`` not given is ``AWS_MAX_ATTEMPTS``
    when that is set (else 3), and ``retry_mode`` not given is
    ``AWS_RETRY_MODE`` (else ``"standard"``); both are read when the
    ``ClientConfig`` is made, and an argument always wins. Every mode uses
    this package's one retry engine: ``"standard"`` is it as described above
    (the SDKs' standard mode: capped exponential backoff with full jitter and
    the retry budget); ``"legacy"`` is taken as ``"standard"`` (the retry
    budget stays on); ``"adaptive"`` is also taken as ``"standard"``: there is
    no client-side rate limiter that slows down after throttling, so pace
    sending with ``requests_per_second`` (the ``*_batched`` helpers) instead.
    The shared config file's ``max_attempts`` and ``retry_mode`` are not read.
    """

    max_attempts: int = attrs.field(factory=_max_attempts_from_env, validator=_at_least_one)
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
    retry_mode: RetryMode = attrs.field(factory=_retry_mode_from_env, validator=_retry_mode)
