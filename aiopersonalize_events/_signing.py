"""SigV4 signing: the only module that imports ``aws_requests_auth``.

``aws-requests-auth`` is the signer. ``Signer.headers`` builds exactly the
headers its ``AWSRequestsAuth.get_aws_request_headers`` returns (the same
names, the same bytes), from the library's own public pieces: its
``get_canonical_path``/``get_canonical_querystring`` class methods, and its
module-level ``getSignatureKey`` and ``sign`` functions. It signs ``host`` and
``x-amz-date`` (and ``x-amz-security-token`` with temporary credentials) over
the body's SHA-256, and it signs the host it is given, so callers pass exactly
the ``Host`` header aiohttp will send.

What we do differently, all of it inside the ``Signer`` object and nothing to
the library or the process:

- the time comes from the signer's own clock (``time.time`` unless a test
  injects another), not from ``datetime.utcnow()``, which is deprecated since
  Python 3.12; so there is no warning to hide and no warnings filter to touch;
  the two date strings are made once per second;
- the canonical path and query string are computed once per URL (a small,
  bounded dict per signer);
- the signing key (four HMACs) is derived once per date and secret key, and
  only the latest one is kept, in the signer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Final

from aws_requests_auth.aws_auth import AWSRequestsAuth, getSignatureKey, sign

from ._credentials import Credentials

__all__ = ["SIGNING_NAME", "Signer"]

SIGNING_NAME: Final = "personalize"
"""The service's signing name (not its endpoint prefix, ``personalize-events``)."""

_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_URLS_KEPT: Final = 16
"""Canonical path and query strings remembered per signer (a client signs one or two URLs)."""


class _Url:
    """The one attribute aws-requests-auth's canonical path/query methods read from a request."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url


def _canonical(url: str) -> str:
    """``"\\n<path>\\n<query>\\n"``: what follows the method in the canonical request."""
    request = _Url(url)
    path: str = AWSRequestsAuth.get_canonical_path(request)
    query: str = AWSRequestsAuth.get_canonical_querystring(request)
    return "\n" + path + "\n" + query + "\n"


def _stamps(second: int) -> tuple[str, str]:
    """``(amz_date, date_stamp)`` for a whole UTC second: ``20160618T220405Z`` and ``20160618``."""
    t = time.gmtime(second)
    date_stamp = f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}"
    return f"{date_stamp}T{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}Z", date_stamp


class Signer:
    """Signs requests for one host, region and service name.

    ``headers(method, url, body, credentials)`` returns the headers to add:
    ``Authorization``, ``x-amz-date``, ``x-amz-content-sha256`` and, for
    temporary credentials, ``X-Amz-Security-Token``. ``clock`` gives the time
    in seconds since the epoch (``time.time`` by default).

    The signer keeps the signing key of the latest date and secret key; its
    ``repr`` shows only the host, region and service.
    """

    __slots__ = ("_clock", "_host", "_host_line", "_key", "_region", "_scope_tail", "_service", "_stamps", "_urls")

    def __init__(
        self, host: str, region: str, service: str = SIGNING_NAME, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._host = host
        self._region = region
        self._service = service
        self._clock = clock
        self._host_line = "host:" + host + "\nx-amz-date:"
        self._scope_tail = "/" + region + "/" + service + "/aws4_request"
        self._urls: dict[str, str] = {}
        # each cache is one tuple, replaced whole, so a reader never sees half an update
        self._stamps: tuple[int, str, str] = (-1, "", "")  # (second, amz_date, date_stamp)
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (date_stamp, secret key, signing key)

    def __repr__(self) -> str:
        return f"Signer(host={self._host!r}, region={self._region!r}, service={self._service!r})"

    def headers(self, method: str, url: str, body: bytes, credentials: Credentials) -> dict[str, str]:
        """Return the SigV4 headers for this request, signed now with ``credentials``."""
        second = int(self._clock())
        stamps = self._stamps
        if stamps[0] != second:
            stamps = self._stamps = (second, *_stamps(second))
        _, amz_date, date_stamp = stamps

        canonical = self._urls.get(url)
        if canonical is None:
            canonical = self._remember(url)

        token = credentials.session_token
        payload_hash = hashlib.sha256(body or b"").hexdigest()
        if token:
            signed_headers = "host;x-amz-date;x-amz-security-token"
            header_lines = self._host_line + amz_date + "\nx-amz-security-token:" + token + "\n"
        else:
            signed_headers = "host;x-amz-date"
            header_lines = self._host_line + amz_date + "\n"
        canonical_request = method + canonical + header_lines + "\n" + signed_headers + "\n" + payload_hash

        scope = date_stamp + self._scope_tail
        request_hash = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        string_to_sign = f"{_ALGORITHM}\n{amz_date}\n{scope}\n{request_hash}"
        signature: str = sign(self._signing_key(date_stamp, credentials.secret_access_key), string_to_sign).hex()
        headers = {
            "Authorization": (
                f"{_ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            ),
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash,
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers

    def _signing_key(self, date_stamp: str, secret: str) -> bytes:
        day, known, key = self._key
        if day == date_stamp and known == secret:
            return key
        derived: bytes = getSignatureKey(secret, date_stamp, self._region, self._service)
        self._key = (date_stamp, secret, derived)
        return derived

    def _remember(self, url: str) -> str:
        urls = self._urls
        if len(urls) >= _URLS_KEPT:
            urls.pop(next(iter(urls)), None)  # the oldest
        canonical = urls[url] = _canonical(url)
        return canonical
