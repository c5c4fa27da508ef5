"""ClientConfig: the client's tunables, with their defaults in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final, Literal, cast, get_args

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


class _DefaultMode(str):
    """The ``retry_mode`` a ``ClientConfig`` got when neither an argument nor ``AWS_RETRY_MODE`` gave one.

    It is the text ``"standard"`` in every way, except that the client knows
    it was not asked for: the profile's ``retry_mode`` may then replace it.
    """

    __slots__ = ()


def mode_was_defaulted(mode: str) -> bool:
    """True when ``retry_mode`` came from neither an argument nor ``AWS_RETRY_MODE`` (the profile may set it)."""
    return isinstance(mode, _DefaultMode)


def parse_retry_mode(name: str, text: str) -> RetryMode:
    """A retry mode as the environment or a profile spells it (any case); ``ValidationError`` naming ``name``."""
    text = text.strip().lower()
    for mode in _RETRY_MODES:
        if text == mode:
            return mode  # type: ignore[return-value]  # one of the Literal's own values
    raise ValidationError(name, f"must be one of {', '.join(_RETRY_MODES)}")


def _new_retries_from_env() -> bool:
    """The AWS SDKs' updated 2026 retry behaviour, on unless ``AWS_NEW_RETRIES_2026=false`` (any case) opts out.

    botocore 1.44 made it the only behaviour (its ``NEW_RETRIES_ENABLED`` is
    always True); here the variable still turns it off, as a deprecated way
    back to the earlier standard behaviour.
    """
    return os.environ.get("AWS_NEW_RETRIES_2026", "").strip().lower() != "false"


class _DefaultBase(float):
    """The ``backoff_base`` a ``ClientConfig`` got when none was given: 0.1 s in every way.

    The earlier standard behaviour (``retries_2026=False``) waits from it; the
    2026 behaviour then waits from its own bases (50 ms, 1 s after throttling).
    A ``backoff_base`` given explicitly is a plain float and counts in both.
    """

    __slots__ = ()


_DEFAULT_BACKOFF_BASE: Final[float] = _DefaultBase(0.1)


def backoff_base_was_defaulted(value: float) -> bool:
    """True when ``backoff_base`` was not given (the 2026 behaviour then uses its published 50 ms base)."""
    return isinstance(value, _DefaultBase)


def _proxies(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    from ._network import check_proxies  # only for a config that names proxies: not at package import

    return check_proxies("proxies", value)


def _proxies_repr(value: Mapping[str, str] | None) -> str:
    if value is None:
        return "None"
    from ._network import proxies_repr

    return proxies_repr(value)


def _ca_bundle(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValidationError(attribute.name, "must be the path of a PEM file, or None")


def _retry_mode_from_env() -> RetryMode:
    """``AWS_RETRY_MODE`` when set (standard, adaptive or legacy, in any case), else standard."""
    text = os.environ.get("AWS_RETRY_MODE", "").strip().lower()
    if not text:
        return cast(RetryMode, _DefaultMode("standard"))
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
    Retries wait a random time between 0 and ``min(backoff_max, base * 2 **
    (attempt - 1))`` seconds (full jitter), the AWS SDKs' updated standard
    behaviour of 2026 (``retries_2026``, below): base 50 ms after a transient
    error (``backoff_base`` when given) and 1 s after throttling.
    ``retry_budget`` is the client-wide token bucket that stops retry storms:
    a retry takes 14 tokens (5 after throttling), a success gives back what
    its retry took (one token when it needed none), and with the bucket empty
    failures are returned at once instead of retried.
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
    ``AWS_RETRY_MODE``, else the profile's ``retry_mode`` (read when the
    client opens), else ``"standard"``; an argument always wins. Every mode
    uses this package's one retry engine: ``"standard"`` is it as described
    above (the SDKs' standard mode: capped exponential backoff with full
    jitter and the retry budget); ``"legacy"`` is taken as ``"standard"``
    (the retry budget stays on); ``"adaptive"`` adds the SDKs' client-side
    rate limiter: after a throttling answer every call of the client (the
    ``put_*`` calls, the recorder's and the batching helpers') waits for a
    token from a bucket whose rate follows CUBIC (cut to 70% of the measured
    rate at each throttle, growing back while calls succeed);
    ``rate_limit_fail_fast=True`` makes a call that would wait raise
    ``ClientRateLimitError`` instead. The shared config file's
    ``max_attempts`` is not read.

    ``retries_2026`` (default True, as in botocore 1.44, where it is the only
    behaviour) is the AWS SDKs' updated retry behaviour of 2026: the wait
    before a retry is ``random() * min(backoff_max, base * 2 ** (attempt -
    1))`` with base 50 ms after a transient error (or the ``backoff_base``
    given) and 1 s after throttling; a retry takes 5 tokens after throttling
    and 14 after any other error; and the service's ``x-amz-retry-after``
    (milliseconds) is honoured within a bound, ``max(t, min(hint, t + 5
    s))`` for the jittered wait ``t``. ``retries_2026=False`` (or
    ``AWS_NEW_RETRIES_2026=false``) is deprecated: it keeps the earlier
    standard behaviour, waits from ``backoff_base`` (0.1 s by default) or the
    service's ``Retry-After``, and retries costing 5 tokens (10 after a
    timeout or dropped connection).

    ``proxies`` maps ``"https"``/``"http"`` to a proxy URL (botocore's
    ``Config(proxies=...)``; a user name and password in it are sent as
    ``Proxy-Authorization`` and never shown); None, the default, reads
    ``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` (either case) when the
    client opens, and an empty mapping turns proxies off. ``ca_bundle`` is a
    PEM file whose CAs verify TLS servers in place of the system's; None
    reads ``AWS_CA_BUNDLE``, then the profile's ``ca_bundle``. Both apply to
    every HTTP call the client makes: the service's, and its credential
    sources' (STS, SSO, the container endpoint, instance metadata).
    """

    max_attempts: int = attrs.field(factory=_max_attempts_from_env, validator=_at_least_one)
    backoff_base: float = attrs.field(default=_DEFAULT_BACKOFF_BASE, validator=_positive)
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
    retries_2026: bool = attrs.field(factory=_new_retries_from_env)
    rate_limit_fail_fast: bool = False
    proxies: Mapping[str, str] | None = attrs.field(default=None, converter=_proxies, repr=_proxies_repr, hash=False)
    ca_bundle: str | None = attrs.field(default=None, validator=_ca_bundle)
