"""The exceptions this library raises, and how a service error answer becomes one.

The tree::

    PersonalizeEventsError
    ├── ValidationError            bad input, raised before any I/O (also a ValueError)
    ├── NoRegionError              no region given or found (also a ValueError); fault SETUP
    ├── NoCredentialsError         no credential source gave credentials; fault SETUP
    ├── ClientStateError           a closed client, or one used from another event loop (also a RuntimeError)
    ├── TransportError             the request did not get a service answer
    │   ├── EndpointConnectionError    could not connect
    │   │   └── TLSVerificationError       the endpoint's certificate did not verify (no CA bundle for it?); fault SETUP
    │   ├── ConnectTimeoutError        connecting took longer than connect_timeout
    │   ├── ReadTimeoutError           the answer took longer than read_timeout
    │   ├── ConnectionClosedError      the connection dropped before a full answer
    │   ├── PoolTimeoutError           no pooled connection came free in time; nothing was sent
    │   ├── ClientRateLimitError       the adaptive mode's rate limiter refused at once (fail fast); nothing was sent
    │   └── InvalidResponseError       an answer that is not the service's (garbage, too large)
    └── ServiceError(code, message, http_status, request_id)
        ├── InvalidInputException      400, modelled
        ├── ResourceNotFoundException  404, modelled
        ├── ResourceInUseException     409, modelled
        ├── ThrottlingException        throttling codes, any 429
        └── AccessDeniedException      403

An unknown error code is a plain ``ServiceError``. Each error carries its own
retry facts (``retryable``, ``throttling``, ``retry_after``); the retry policy
reads only those. No message here ever includes a credential.

Each error also says whose fault it is, in ``fault`` (a ``Fault``), which is
what every sender of the package asks (the delivery engine, the recorder, the
forwarder, the command line); none lists statuses or codes of its own:

- ``Fault.RECORDS``: the service refused these records (``InvalidInputException``
  and other 4xx about the request, a ``ValidationError``). They fail for good
  (after a split into single records, where the operation allows, to find the
  bad ones).
- ``Fault.SETUP``: the set-up is wrong, not the records: no credentials
  (``NoCredentialsError``), credentials the service rejects (``UnrecognizedClientException``,
  ``InvalidSignatureException``, ``ExpiredTokenException``, ... and any 401/403),
  ``AccessDeniedException``, an unknown tracker or dataset or the wrong region
  (``ResourceNotFoundException``, 404), no region, a client closed or in another
  loop, an answer from something that is not the service, an endpoint whose TLS
  certificate does not verify (``TLSVerificationError``). The records are held
  and tried again slowly; ``fix`` says what the operator should change.
- ``Fault.TRANSIENT``: it may pass by itself (throttling, 5xx, connection
  failures and timeouts, a dataset being changed): retried with backoff.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import ClassVar, Final

__all__ = [
    "AccessDeniedException",
    "ClientRateLimitError",
    "ClientStateError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "EndpointConnectionError",
    "Fault",
    "InvalidInputException",
    "InvalidResponseError",
    "NoCredentialsError",
    "NoRegionError",
    "PersonalizeEventsError",
    "PoolTimeoutError",
    "ReadTimeoutError",
    "ResourceInUseException",
    "ResourceNotFoundException",
    "ServiceError",
    "TLSVerificationError",
    "ThrottlingException",
    "TransportError",
    "ValidationError",
    "parse_error",
]


class Fault(enum.Enum):
    """Whose fault a failure is, which decides what a sender does with the records (see the module documentation)."""

    RECORDS = "records"
    """The service refused these records: they fail for good."""
    SETUP = "setup"
    """The set-up is wrong (credentials, permissions, tracker, region): hold the records, tell the operator."""
    TRANSIENT = "transient"
    """It may pass by itself: retry with backoff."""


class PersonalizeEventsError(Exception):
    """Base class of every exception this library raises.

    Catch it to handle any failure of a call made through this library; the
    subclasses say what kind of failure it was, whether a retry may help
    (``retryable``) and whose fault it is (``fault``).
    """

    retryable: ClassVar[bool] = False
    throttling: ClassVar[bool] = False
    attempts: int = 1
    """How many attempts the client made before raising this error."""
    amz_retry_after: float | None = None
    """Seconds from the service's ``x-amz-retry-after`` header (sent in milliseconds), if it sent one."""
    _fault: ClassVar[Fault | None] = None  # a class's own answer; None: from ``retryable``
    _fix: ClassVar[str | None] = None

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked us to wait before retrying, if it said."""
        return None

    @property
    def fault(self) -> Fault:
        """Whose fault this failure is: ``TRANSIENT`` when a retry may help, else ``RECORDS`` (refused for good)."""
        if self._fault is not None:
            return self._fault
        return Fault.TRANSIENT if self.retryable else Fault.RECORDS

    @property
    def fix(self) -> str | None:
        """For a ``Fault.SETUP`` error, what the operator should change; None otherwise."""
        return self._fix if self.fault is Fault.SETUP else None


class ValidationError(PersonalizeEventsError, ValueError):
    """A value does not satisfy the service's limits; raised before any I/O.

    ``path`` names the member, e.g. ``event_list[3].properties``; ``message``
    says what is wrong. The offending value is never repeated in the text,
    since ids and properties may be sensitive.
    """

    _fault = Fault.RECORDS

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def prefixed(self, prefix: str) -> ValidationError:
        """Return the same error with ``prefix`` put in front of its path.

        ``prefix`` is a member name (``event_list``) or an index (``[3]``).
        """
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        return ValidationError(path, self.message)

    def __reduce__(self) -> tuple[type[ValidationError], tuple[str, str]]:
        return (ValidationError, (self.path, self.message))


class NoRegionError(PersonalizeEventsError, ValueError):
    """No region was given and none was found in the environment or profile."""

    _fault = Fault.SETUP
    _fix = "set a region (region=..., AWS_REGION, or the profile's region)"


class NoCredentialsError(PersonalizeEventsError):
    """No credential source gave credentials; ``sources`` lists those tried.

    The message names the sources in the order they were tried and why each
    one gave nothing; it never contains a key or token.
    """

    _fault = Fault.SETUP
    _fix = "give the client credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, a role, or a provider"

    def __init__(self, message: str = "no AWS credentials found", sources: tuple[str, ...] = ()) -> None:
        self.sources = sources
        text = message if not sources else f"{message}; tried: {', '.join(sources)}"
        super().__init__(text)


class ClientStateError(PersonalizeEventsError, RuntimeError):
    """The client cannot make this call in its state: it is closed, or it opened in another event loop.

    A client (and its HTTP session) belongs to the event loop it first ran in;
    make one client per loop. Nothing was sent.
    """

    _fault = Fault.SETUP
    _fix = "use an open client, in the event loop it was opened in"


class TransportError(PersonalizeEventsError):
    """The request got no answer from the service: connection failure or timeout.

    Raised after the client's retries are spent. Whether the service received
    the records is unknown, so resending them (with the same event ids) is safe.
    """

    retryable = True


class EndpointConnectionError(TransportError):
    """The client could not open a connection to the endpoint."""


class TLSVerificationError(EndpointConnectionError):
    """The endpoint's TLS certificate did not verify against the CAs in use; nothing was sent.

    The same certificate fails the same way on every attempt, so this is the
    set-up's fault (``Fault.SETUP``) and is not retried. It usually means the
    endpoint (a local emulator, a proxy that inspects TLS) uses a private CA:
    point ``AWS_CA_BUNDLE``, the profile's ``ca_bundle`` or
    ``ClientConfig(ca_bundle=...)`` at that CA's PEM file (``fix`` says so).
    """

    retryable = False
    _fault = Fault.SETUP
    _fix = (
        "if the endpoint uses a private CA, point AWS_CA_BUNDLE, the profile's ca_bundle or "
        "ClientConfig(ca_bundle=...) at its PEM file; else check the endpoint URL's host name"
    )


class ConnectTimeoutError(TransportError):
    """Opening the connection took longer than ``ClientConfig.connect_timeout``."""


class ReadTimeoutError(TransportError):
    """The service did not answer within ``ClientConfig.read_timeout``."""


class ConnectionClosedError(TransportError):
    """The connection was closed before a complete answer arrived."""


class PoolTimeoutError(TransportError):
    """No pooled connection came free within ``ClientConfig.pool_timeout``; the request was not sent.

    A wait for the pool is not a service timeout: it is not retried and does
    not spend the retry budget, and the records were certainly not stored
    (its ``fault`` is still ``TRANSIENT``: a sender may try them again later).
    """

    retryable = False
    _fault = Fault.TRANSIENT


class ClientRateLimitError(TransportError):
    """The client's own adaptive rate limiter had no token and ``rate_limit_fail_fast`` is on; nothing was sent.

    Raised at once, without retries (as botocore's ``CapacityNotAvailableError``);
    it counts as throttling and is retryable, so a recorder sends the batch
    again later.
    """

    throttling = True


class InvalidResponseError(TransportError):
    """The answer was not one the service sends: a body too large or not JSON where JSON is due.

    This usually means a proxy or another server answered; it is not retried.
    """

    retryable = False
    _fault = Fault.SETUP
    _fix = "check the endpoint URL and any proxy: something other than the service answered"


class ServiceError(PersonalizeEventsError):
    """The service answered with an error.

    ``code`` is the service's error code (``InvalidInputException``, ...),
    ``message`` its text, ``http_status`` the HTTP status and ``request_id``
    the ``x-amzn-RequestId`` of the answer, for AWS support.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int = 0,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code or type(self).__name__
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        self._retry_after = retry_after
        text = f"{self.code} (HTTP {http_status}): {message}" if message else f"{self.code} (HTTP {http_status})"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """True when a retry may succeed: throttling, 5xx, and transient codes."""
        return self.throttling or self.http_status in _RETRYABLE_STATUSES or self.code in _TRANSIENT_CODES

    @property
    def throttling(self) -> bool:  # type: ignore[override]
        """True when the service asked the client to slow down."""
        return self.code in _THROTTLING_CODES or self.http_status == 429

    @property
    def retry_after(self) -> float | None:
        """Seconds from a ``Retry-After`` header, when the answer had one."""
        return self._retry_after

    @property
    def fault(self) -> Fault:
        """``TRANSIENT`` for throttling, 5xx, transient codes and a busy resource; ``SETUP`` for refused
        credentials, permissions and unknown resources (401, 403, 404); ``RECORDS`` for other refusals."""
        if self.retryable or self.code in _BUSY_CODES:
            return Fault.TRANSIENT
        if self.code in _SETUP_FIXES or self.http_status in (401, 403, 404):
            return Fault.SETUP
        return Fault.RECORDS

    @property
    def fix(self) -> str | None:
        """What the operator should change when the set-up is wrong (``fault`` is ``SETUP``)."""
        if self.fault is not Fault.SETUP:
            return None
        return _SETUP_FIXES.get(self.code) or _STATUS_FIXES.get(self.http_status) or _CREDENTIALS_FIX


class InvalidInputException(ServiceError):
    """The service refused a value (HTTP 400); never retried."""


class ResourceNotFoundException(ServiceError):
    """The tracking id or dataset ARN does not exist (HTTP 404)."""


class ResourceInUseException(ServiceError):
    """The dataset is being changed by another operation (HTTP 409)."""


class ThrottlingException(ServiceError):
    """The service throttled the call (HTTP 400 or 429); retried with backoff."""


class AccessDeniedException(ServiceError):
    """The credentials are not allowed to call this operation (HTTP 403)."""


_THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_TRANSIENT_CODES: Final = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
_RETRYABLE_STATUSES: Final = frozenset({500, 502, 503, 504})
_BUSY_CODES: Final = frozenset({"ResourceInUseException"})  # the dataset is being changed: it passes by itself
_CREDENTIALS_FIX: Final = "the service rejected the credentials: check the key id and secret, or refresh the token"
_ACCESS_FIX: Final = "allow these credentials to call the operation on this tracker or dataset (IAM policy)"
_RESOURCE_FIX: Final = "check the tracking id or dataset ARN, and that the region is the one it lives in"
_SETUP_FIXES: Final[Mapping[str, str]] = {
    "AccessDeniedException": _ACCESS_FIX,
    "ResourceNotFoundException": _RESOURCE_FIX,
    "UnrecognizedClientException": _CREDENTIALS_FIX,
    "InvalidClientTokenId": _CREDENTIALS_FIX,
    "InvalidSignatureException": _CREDENTIALS_FIX,
    "SignatureDoesNotMatch": _CREDENTIALS_FIX,
    "IncompleteSignature": _CREDENTIALS_FIX,
    "MissingAuthenticationTokenException": _CREDENTIALS_FIX,
    "ExpiredTokenException": "the session token expired: refresh the credentials",
    "ExpiredToken": "the session token expired: refresh the credentials",
}
_STATUS_FIXES: Final[Mapping[int, str]] = {403: _ACCESS_FIX, 404: _RESOURCE_FIX}

_CLASSES: Final[Mapping[str, type[ServiceError]]] = {
    cls.__name__: cls
    for cls in (
        InvalidInputException,
        ResourceNotFoundException,
        ResourceInUseException,
        ThrottlingException,
        AccessDeniedException,
    )
}


def _error_code(headers: Mapping[str, str], body: Mapping[str, object] | None) -> str | None:
    header = headers.get("x-amzn-ErrorType") or headers.get("X-Amzn-Errortype")
    if header:
        return header.split(":", 1)[0].strip() or None
    if body is not None:
        raw = body.get("__type") or body.get("code") or body.get("Code")
        if isinstance(raw, str) and raw:
            return raw.rsplit("#", 1)[-1]
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date; rare for AWS, and a backoff is a safe answer
    return seconds if 0 <= seconds < 3600 else None


def _amz_retry_after(headers: Mapping[str, str]) -> float | None:
    """``x-amz-retry-after``: whole milliseconds, as botocore reads it; anything else is ignored."""
    value = headers.get("x-amz-retry-after")
    if not value or not value.strip().isdigit():
        return None
    return min(int(value.strip()), 3_600_000) / 1000.0


_TITLE: Final = re.compile(rb"<title[^>]*>\s*([1-5][0-9][0-9])\s+([A-Za-z -]{2,40}?)\s*</title>", re.IGNORECASE)


def _standard_title(body: bytes) -> str | None:
    """``502 Bad Gateway`` when a markup page's title is an HTTP status and its standard phrase, else None.

    What is returned is the standard phrase (from ``http.HTTPStatus``), never
    the body's own text: a page that echoes a request cannot pass a value.
    """
    if body.lstrip()[:1] != b"<":
        return None
    found = _TITLE.search(body[:4096])
    if found is None:
        return None
    try:
        known = HTTPStatus(int(found.group(1)))
    except ValueError:
        return None

    def letters(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalpha())

    if letters(found.group(2).decode("ascii")) != letters(known.phrase):
        return None
    return f"{known.value} {known.phrase}"


def _foreign_body(body: bytes, headers: Mapping[str, str], status: int = 0) -> str:
    """What is shown of an answer body that is not the service's JSON: its length and content type, no word of it.

    With ``status``, the status's standard reason phrase comes first; a
    proxy's or load balancer's page titled with a standard status line
    (``502 Bad Gateway``) is said to be so: ``Gateway Timeout, with a body
    that is not the service's JSON (93 bytes, text/html, titled '502 Bad
    Gateway')``. Both come from ``http.HTTPStatus``, never from the body,
    which may echo the request.
    """
    kind = headers.get("Content-Type") or headers.get("content-type") or ""
    kind = kind.split(";", 1)[0].strip()[:64]
    if not kind.isascii() or not kind.isprintable():
        kind = "an odd content type"
    text = f"a body that is not the service's JSON ({len(body)} bytes, {kind or 'no content type'}"
    title = _standard_title(body)
    text += f", titled {title!r})" if title else ")"
    try:
        phrase = HTTPStatus(status).phrase if status else ""
    except ValueError:
        phrase = ""
    return f"{phrase}, with {text}" if phrase else text


def parse_error(status: int, headers: Mapping[str, str], body: bytes) -> ServiceError:
    """Turn an error answer (status, headers, body bytes) into the matching ``ServiceError``.

    The code comes from ``x-amzn-ErrorType`` (text before the first ``:``) or
    the body's ``__type`` (text after the last ``#``); the message from
    ``message`` or ``Message``. A body that is not JSON (a proxy's HTML page,
    or one echoing the request) still gives a ``ServiceError`` carrying the
    status; its message says only the body's length and content type, never
    a word of it (it may repeat the request's ids and properties), and a
    ``message`` that is not text is left out for the same reason.
    """
    data: Mapping[str, object] | None = None
    message = ""
    if body:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            message = _foreign_body(body, headers, status)
        else:
            if isinstance(parsed, dict):
                data = parsed
                raw = parsed.get("message", parsed.get("Message", ""))
                message = raw if isinstance(raw, str) else ""
    code = _error_code(headers, data)
    if data is not None and code is None and not message:  # JSON, but not the service's (an echo, say)
        message = _foreign_body(body, headers, status)
    request_id = headers.get("x-amzn-RequestId") or headers.get("x-amz-request-id")
    if code is None:
        code = {429: "ThrottlingException", 403: "AccessDeniedException"}.get(status, f"HTTP{status}")
    cls = _CLASSES.get(code)
    if cls is None and status == 429:
        cls = ThrottlingException
    if cls is None and code in _THROTTLING_CODES:
        cls = ThrottlingException
    error = (cls or ServiceError)(
        message,
        code=code,
        http_status=status,
        request_id=request_id,
        retry_after=_retry_after(headers),
    )
    error.amz_retry_after = _amz_retry_after(headers)
    return error
