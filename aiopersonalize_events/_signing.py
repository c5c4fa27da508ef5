"""SigV4 signing: the only module that imports ``aws_requests_auth``.

``aws-requests-auth`` signs ``host`` and ``x-amz-date`` (and
``x-amz-security-token`` with temporary credentials) over the body's SHA-256.
It signs the host we give it, so callers pass exactly the ``Host`` header
aiohttp will send. It calls ``datetime.utcnow()``, deprecated since Python
3.12; that warning is silenced here so it never reaches a user's test suite.

The signer derives the signing key (four HMACs) on every call, although it
changes only with the date, region and service. Its module-level
``getSignatureKey`` is wrapped once in a small LRU cache here: the result is
the same key, computed once a day instead of once a request.
"""

from __future__ import annotations

import functools
import sys
import warnings

import attrs
from aws_requests_auth import aws_auth as _aws_auth
from aws_requests_auth.aws_auth import AWSRequestsAuth

from ._credentials import Credentials

__all__ = ["SIGNING_NAME", "Signer"]

SIGNING_NAME = "personalize"
"""The service's signing name (not its endpoint prefix, ``personalize-events``)."""

_WARNS = sys.version_info >= (3, 12)


def _cache_signing_keys() -> None:
    derive = _aws_auth.getSignatureKey
    if getattr(derive, "cache_info", None) is None:  # not wrapped yet (by us, in this process)
        _aws_auth.getSignatureKey = functools.lru_cache(maxsize=32)(derive)


_cache_signing_keys()


@attrs.frozen
class _Request:
    """The three attributes aws-requests-auth reads from a request."""

    url: str
    method: str
    body: bytes


class Signer:
    """Signs requests for one host, region and service name.

    ``headers(method, url, body, credentials)`` returns the headers to add:
    ``Authorization``, ``x-amz-date``, ``x-amz-content-sha256`` and, for
    temporary credentials, ``X-Amz-Security-Token``.
    """

    __slots__ = ("_auth",)

    def __init__(self, host: str, region: str, service: str = SIGNING_NAME) -> None:
        # the keys are passed per call; the object only holds host, region and service
        self._auth = AWSRequestsAuth("", "", host, region, service)

    def headers(self, method: str, url: str, body: bytes, credentials: Credentials) -> dict[str, str]:
        """Return the SigV4 headers for this request, signed now with ``credentials``."""
        request = _Request(url, method, body)
        if _WARNS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return self._sign(request, credentials)
        return self._sign(request, credentials)

    def _sign(self, request: _Request, credentials: Credentials) -> dict[str, str]:
        result: dict[str, str] = self._auth.get_aws_request_headers(
            r=request,
            aws_access_key=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_token=credentials.session_token,
        )
        return result
