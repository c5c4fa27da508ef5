"""AWS Signature Version 4, checked the way the service checks it.

This is the emulator's own implementation (``hashlib`` and ``hmac``), not the
client's signer, so a signing bug in the client shows up here as the
service's ``InvalidSignatureException``. The canonical request is rebuilt
from the ``Authorization`` header's ``SignedHeaders`` and the request as it
arrived: method, path, query, those headers' values and the body's SHA-256.

The path is canonicalised as AWS does for every service but S3: empty and
``.`` segments dropped, ``..`` segments resolved, a trailing slash kept, and
each segment percent-encoded (RFC 3986 unreserved characters kept). The path
given is the one on the wire, already percent-encoded by the signer, so it is
encoded a second time, as the SDKs' signers do for these services.

Without credentials the verifier still reads the ``Authorization`` header and
checks its form and scope (algorithm, five-part credential, service
``personalize``, ``aws4_request``, a well-formed ``x-amz-date`` (a real date
and time in ISO-8601 basic format) that the scope's date matches, ``host``
signed, well-formed ``SignedHeaders`` and a signature of 64 hexadecimal
digits) but not the signature's value, the key id or the clock. No message
here ever contains a secret key or a session token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import parse_qsl, quote

import attrs
from multidict import MultiMapping

from ._answers import incomplete_signature, invalid_signature, missing_token, unrecognized_client

__all__ = [
    "SIGNING_SERVICE",
    "Authorization",
    "SignatureVerifier",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "normalize_path",
    "parse_authorization",
]

SIGNING_SERVICE: Final = "personalize"
"""The service name a credential scope must carry (not the endpoint prefix ``personalize-events``)."""

ALGORITHM: Final = "AWS4-HMAC-SHA256"
TERMINATOR: Final = "aws4_request"
DEFAULT_MAX_SKEW: Final = 900.0
"""Seconds a request's date may be away from the service's clock (15 minutes)."""

_AMZ_DATE: Final = re.compile(r"[0-9]{8}T[0-9]{6}Z")
"""ISO-8601 basic format in ASCII digits (``\\d`` would also take other scripts' digits)."""
_BASIC_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_SIGNATURE: Final = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
"""A lowercase HTTP header name (an RFC 9110 token)."""
_SPACES: Final = re.compile(r"\s+")
_REGION: Final = re.compile(r"[a-z0-9-]+")
_SECRET_HEADERS: Final = frozenset({"x-amz-security-token"})


@attrs.frozen
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str = attrs.field(repr=False)

    @property
    def scope(self) -> str:
        """The credential scope: ``date/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def parse_authorization(header: str) -> Authorization:
    """Read an ``Authorization`` header; raise ``IncompleteSignatureException`` when it cannot be read."""
    algorithm, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                params[name.strip()] = value.strip()
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if not params.get(name)]
    if missing:
        texts = [f"Authorization header requires '{name}' parameter." for name in missing]
        if algorithm != ALGORITHM:
            texts.insert(0, f"Only the {ALGORITHM} algorithm is supported.")
        raise incomplete_signature(" ".join(texts))
    credential = params["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise incomplete_signature(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got {len(credential)} elements."
        )
    signed = tuple(h.strip().lower() for h in params["SignedHeaders"].split(";"))
    key_id, date, region, service, terminator = credential
    return Authorization(
        access_key_id=key_id,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=signed,
        signature=params["Signature"].lower(),
    )


def _well_formed_basic(value: str) -> bool:
    """True when ``value`` is a real date and time in ISO-8601 basic format (``20150830T123600Z``)."""
    if _AMZ_DATE.fullmatch(value) is None:
        return False
    try:
        datetime.strptime(value, _BASIC_FORMAT)
    except ValueError:  # month 13, February 30, hour 25, second 60, ...
        return False
    return True


def _amz_date(headers: MultiMapping[str]) -> str:
    """The request's date in basic format, from ``x-amz-date`` or else ``Date``; refuse a malformed one.

    Checked whether or not signatures are verified: a request that the
    service could not even read the date of is refused in both modes.
    """
    values = headers.getall("x-amz-date", [])
    if not values:
        fallback = headers.getall("date", [])
        if not fallback:
            raise incomplete_signature(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            )
        try:
            parsed = parsedate_to_datetime(",".join(fallback))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            basic = parsed.astimezone(timezone.utc).strftime(_BASIC_FORMAT)
        except (TypeError, ValueError, OverflowError):
            raise incomplete_signature("Date must be in RFC 1123 format.") from None
        if not _well_formed_basic(basic):  # e.g. year 1, which strftime writes with one digit
            raise incomplete_signature("Date must be in RFC 1123 format.")
        return basic
    value = ",".join(v.strip() for v in values)  # a repeated header is one comma-joined value, as AWS reads it
    if not _well_formed_basic(value):
        raise incomplete_signature("Date must be in ISO-8601 'basic format'. Expected format like '20150830T123600Z'.")
    return value


def _epoch(amz_date: str) -> float:
    """Epoch seconds of a date already checked by ``_amz_date``."""
    return datetime.strptime(amz_date, _BASIC_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def _basic(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(_BASIC_FORMAT)


def normalize_path(path: str) -> str:
    """The path with empty and ``.`` segments removed and ``..`` segments resolved, as SigV4 does it.

    Consecutive slashes collapse to one; a ``..`` above the root stays at
    the root; a trailing slash is kept when anything is left before it. The
    result always starts with ``/`` (an empty path is ``/``).
    """
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    if not segments:
        return "/"
    trailing = "/" if path.endswith("/") else ""
    return "/" + "/".join(segments) + trailing


def canonical_uri(path: str) -> str:
    """SigV4's canonical URI of ``path`` for a service other than S3: normalised, then each segment encoded.

    Every character but the RFC 3986 unreserved ones (letters, digits,
    ``-._~``) becomes ``%XX`` of its UTF-8 bytes, upper-case hex; a ``%``
    already in the path is encoded again. Bytes the HTTP parser could not
    decode (kept as surrogate escapes) are encoded as the bytes they were.
    """
    normalized = normalize_path(path)
    return "/".join(quote(segment, safe="", errors="surrogateescape") for segment in normalized.split("/"))


def canonical_query(query: str) -> str:
    """The canonical query string: pairs percent-encoded (RFC 3986) and sorted."""
    if not query:
        return ""
    pairs = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    query: str,
    headers: MultiMapping[str],
    signed_headers: Iterable[str],
    payload_hash: str,
    redact: bool = False,
) -> str:
    """The SigV4 canonical request for what arrived; ``redact`` hides a session token's value.

    ``raw_path`` is the path as the request line carried it (see ``canonical_uri``).
    """
    names = list(signed_headers)
    lines = []
    for name in names:
        values = headers.getall(name, [])
        value = ",".join(_SPACES.sub(" ", v.strip()) for v in values)
        if redact and name in _SECRET_HEADERS and value:
            value = "<redacted>"
        lines.append(f"{name}:{value}\n")
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query),
            "".join(lines),
            ";".join(names),
            payload_hash,
        ]
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class SignatureVerifier:
    """Checks the SigV4 signature of each request, as the service does.

    ``credentials`` maps access key ids to secret keys; None checks only the
    form and scope of the signature. ``region``, when set, is the only region
    a credential scope may name. ``service`` is the signing name a scope
    must carry (``personalize``; another one only to check the verifier
    against the AWS SigV4 test suite). ``max_skew`` is how far (seconds) the
    request's date may be from ``wall_clock()``.
    """

    __slots__ = ("_credentials", "_keys", "max_skew", "region", "service", "wall_clock")

    def __init__(
        self,
        credentials: Mapping[str, str] | None,
        *,
        region: str | None = None,
        service: str = SIGNING_SERVICE,
        max_skew: float = DEFAULT_MAX_SKEW,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = dict(credentials) if credentials is not None else None
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self.region = region
        self.service = service
        self.max_skew = max_skew
        self.wall_clock = wall_clock

    def __repr__(self) -> str:
        keys = "any" if self._credentials is None else f"{len(self._credentials)} key id(s)"
        return f"SignatureVerifier(keys={keys}, region={self.region!r})"

    @property
    def verifying(self) -> bool:
        """True when signatures are checked against known secrets."""
        return self._credentials is not None

    def verify(self, method: str, raw_path: str, query: str, headers: MultiMapping[str], body: bytes) -> str:
        """Check one request; return its access key id or raise the service's error answer."""
        header = headers.get("authorization")
        if header is None or not header.strip():
            raise missing_token()
        auth = parse_authorization(header)
        amz_date = _amz_date(headers)
        if auth.terminator != TERMINATOR:
            raise invalid_signature(
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{auth.terminator}'."
            )
        if auth.service != self.service:
            raise invalid_signature(f"Credential should be scoped to correct service: '{self.service}'.")
        if _REGION.fullmatch(auth.region) is None or (self.region is not None and auth.region != self.region):
            raise invalid_signature("Credential should be scoped to a valid region.")
        if auth.date != amz_date[:8]:
            raise invalid_signature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        if "host" not in auth.signed_headers:
            raise invalid_signature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        for name in auth.signed_headers:
            if _HEADER_NAME.fullmatch(name) is None:
                raise invalid_signature(
                    "SignedHeaders must be a semicolon-separated list of header names; found an empty or invalid one."
                )
        if self._credentials is None:
            if _SIGNATURE.fullmatch(auth.signature) is None:
                raise invalid_signature("The request signature must be 64 hexadecimal digits.")
            return auth.access_key_id
        self._check_clock(amz_date)
        secret = self._credentials.get(auth.access_key_id)
        if secret is None:
            raise unrecognized_client()
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = canonical_request(method, raw_path, query, headers, auth.signed_headers, payload_hash)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{auth.scope}\n{digest}"
        key = self._signing_key(auth, secret)
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        # the form first: compare_digest refuses non-ASCII text instead of answering False
        if _SIGNATURE.fullmatch(auth.signature) is None or not hmac.compare_digest(expected, auth.signature):
            shown = canonical_request(method, raw_path, query, headers, auth.signed_headers, payload_hash, True)
            raise invalid_signature(
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for "
                f"details.\n\nThe Canonical String for this request should have been\n'{shown}'\n\n"
                f"The String-to-Sign should have been\n'{string_to_sign}'\n"
            )
        return auth.access_key_id

    def _check_clock(self, amz_date: str) -> None:
        sent = _epoch(amz_date)
        now = self.wall_clock()
        minutes = f"{self.max_skew / 60:g} min."
        if sent < now - self.max_skew:
            raise invalid_signature(
                f"Signature expired: {amz_date} is now earlier than {_basic(now - self.max_skew)} "
                f"({_basic(now)} - {minutes})"
            )
        if sent > now + self.max_skew:
            raise invalid_signature(
                f"Signature not yet current: {amz_date} is still later than {_basic(now + self.max_skew)} "
                f"({_basic(now)} + {minutes})"
            )

    def _signing_key(self, auth: Authorization, secret: str) -> bytes:
        cache_key = (auth.access_key_id, auth.date, auth.region, auth.service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > 256:
                self._keys.clear()
            key = _hmac(("AWS4" + secret).encode("utf-8"), auth.date)
            for part in (auth.region, auth.service, auth.terminator):
                key = _hmac(key, part)
            self._keys[cache_key] = key
        return key
