"""The answers the emulator sends: the service's error codes, statuses, headers and JSON bodies.

Every error answer is JSON ``{"message": ...}`` with the code in the
``x-amzn-ErrorType`` header as the service writes it
(``Code:http://internal.amazon.com/coral/<namespace>/``: clients take the text
before the first ``:``). Every answer, success or not, carries a fresh
``x-amzn-RequestId``.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

from aiohttp import web

__all__ = [
    "Refusal",
    "error_response",
    "incomplete_signature",
    "internal_failure",
    "invalid_input",
    "invalid_signature",
    "missing_token",
    "new_request_id",
    "resource_not_found",
    "service_unavailable",
    "success_response",
    "throttled",
    "too_large",
    "unknown_operation",
    "unrecognized_client",
]

_SERVICE_NAMESPACE: Final = "com.amazonaws.personalize.events"
"""Where the service's modelled errors live (InvalidInputException, ...)."""
_FRAMEWORK_NAMESPACE: Final = "com.amazon.coral.service"
"""Where the errors every AWS JSON service can send live (signature, unknown operation, internal failure)."""
_AVAILABILITY_NAMESPACE: Final = "com.amazon.coral.availability"
"""Where throttling and unavailability errors live."""

_JSON: Final = "application/json"
_SUCCESS_BODY: Final = b"{}"


class Refusal(Exception):
    """One error answer of the service: HTTP status, error code and message.

    Raised anywhere in the request pipeline (signature check, validation,
    resource lookup, faults, quotas) and turned into the service's answer by
    ``error_response``. The message never holds a secret: callers build it
    from member names and limits, not from credentials.
    """

    def __init__(self, status: int, code: str, message: str, namespace: str = _FRAMEWORK_NAMESPACE) -> None:
        super().__init__(f"{code} (HTTP {status}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.namespace = namespace


def new_request_id() -> str:
    """A fresh request id, in the service's UUID form."""
    return str(uuid.uuid4())


def success_response(request_id: str) -> web.Response:
    """HTTP 200 with the service's empty JSON object body."""
    return web.Response(body=_SUCCESS_BODY, status=200, headers={"x-amzn-RequestId": request_id, "Content-Type": _JSON})


def error_response(refusal: Refusal, request_id: str) -> web.Response:
    """The service's error answer for ``refusal``: status, ``x-amzn-ErrorType`` and ``{"message": ...}``."""
    body = json.dumps({"message": refusal.message}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": f"{refusal.code}:http://internal.amazon.com/coral/{refusal.namespace}/",
        "Content-Type": _JSON,
    }
    return web.Response(body=body, status=refusal.status, headers=headers)


def invalid_input(message: str) -> Refusal:
    """400 ``InvalidInputException``, the service's answer to a value it does not take."""
    return Refusal(400, "InvalidInputException", message, _SERVICE_NAMESPACE)


def resource_not_found(message: str) -> Refusal:
    """404 ``ResourceNotFoundException``: an unknown tracking id or dataset ARN."""
    return Refusal(404, "ResourceNotFoundException", message, _SERVICE_NAMESPACE)


def throttled() -> Refusal:
    """400 ``ThrottlingException`` with the service's ``Rate exceeded``."""
    return Refusal(400, "ThrottlingException", "Rate exceeded", _AVAILABILITY_NAMESPACE)


def internal_failure() -> Refusal:
    """500 ``InternalFailure``."""
    return Refusal(
        500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."
    )


def service_unavailable() -> Refusal:
    """503 ``ServiceUnavailableException``."""
    return Refusal(503, "ServiceUnavailableException", "Service Unavailable", _AVAILABILITY_NAMESPACE)


def missing_token() -> Refusal:
    """403 ``MissingAuthenticationTokenException``: no ``Authorization`` header at all."""
    return Refusal(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def incomplete_signature(message: str) -> Refusal:
    """400 ``IncompleteSignatureException``: an ``Authorization`` header that cannot be read."""
    return Refusal(400, "IncompleteSignatureException", message)


def invalid_signature(message: str) -> Refusal:
    """403 ``InvalidSignatureException``: wrong scope, stale date or a signature that does not match."""
    return Refusal(403, "InvalidSignatureException", message)


def unrecognized_client() -> Refusal:
    """403 ``UnrecognizedClientException``: the access key id is not known."""
    return Refusal(403, "UnrecognizedClientException", "The security token included in the request is invalid.")


def unknown_operation() -> Refusal:
    """404 ``UnknownOperationException``: a method and path that name no operation."""
    return Refusal(404, "UnknownOperationException", "The requested operation is not recognized by the service.")


def too_large(limit: int) -> Refusal:
    """413 ``RequestEntityTooLargeException``: a body larger than the emulator reads."""
    return Refusal(413, "RequestEntityTooLargeException", f"Request body is larger than {limit} bytes.")
