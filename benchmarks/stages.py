"""Where our client's CPU goes, stage by stage, and what candidate replacements would cost.

``python -m benchmarks.stages [--quick]`` times, in one fresh process and
without any I/O, each step our ``put_events`` takes for one call of ten
events (building the events as a user does, the request shape, cattrs,
JSON, signing, headers), the parts of the costly ones, and measured
alternatives: a cached SigV4 signing key, a small in-house SigV4 signer,
a hand-written ``to_wire``, ``orjson`` when it is installed. Each alternative
is checked to give byte-identical output before it is timed. Nothing in the
package is changed: the alternatives live here as sketches for the proposals.

Figures are microseconds per PutEvents call (ten events): every callable is
timed once per round, round after round (so noise on a shared machine falls
on all alike), with the garbage collector off; the median over rounds is
reported, and the minimum beside it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import gc
import hashlib
import hmac
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["Rounds", "SigV4Sketch", "main", "measure", "put_events_wire_sketch"]

ITEMS = [f"item-{i:06d}" for i in range(100)]
URL = "http://127.0.0.1:8000/events"
HOST = "127.0.0.1:8000"
FIXED_NOW = 1764115200.25  # 2025-11-26T00:00:00.25Z, for the equality checks


class Rounds:
    """Timeit-style timing of many callables, interleaved so that machine noise falls on all of them alike.

    ``add(key, fn)`` calibrates a loop count for ``fn`` (about ``min_time``
    per sample); ``run(rounds)`` then times every callable once per round,
    round after round, with the garbage collector off; ``us(key)`` is the
    median over rounds of the microseconds per call, ``best(key)`` the minimum.
    """

    def __init__(self, min_time: float) -> None:
        self.min_time = min_time
        self._fns: dict[str, tuple[Callable[[], object], int]] = {}
        self._samples: dict[str, list[float]] = {}

    def add(self, key: str, fn: Callable[[], object]) -> None:
        fn()  # fail here, not in the middle of the rounds
        number = 1
        while True:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            if time.perf_counter() - start >= self.min_time or number >= 1 << 20:
                break
            number *= 2
        self._fns[key] = (fn, number)
        self._samples[key] = []

    def run(self, rounds: int) -> None:
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(rounds):
                for key, (fn, number) in self._fns.items():
                    start = time.perf_counter()
                    for _ in range(number):
                        fn()
                    self._samples[key].append((time.perf_counter() - start) / number * 1e6)
        finally:
            if was_enabled:
                gc.enable()

    def us(self, key: str) -> float | None:
        samples = self._samples.get(key)
        return statistics.median(samples) if samples else None

    def best(self, key: str) -> float | None:
        samples = self._samples.get(key)
        return min(samples) if samples else None


# -- sketches of the proposed replacements ----------------------------------------------


class SigV4Sketch:
    """SigV4 for one host, region and service, with the derived key cached per (secret, day).

    The sketch behind proposal "own signer": the same headers as
    aws-requests-auth (``Authorization``, ``x-amz-date``,
    ``x-amz-content-sha256``, ``X-Amz-Security-Token``), with the constant
    parts precomputed, ``time.gmtime`` instead of ``datetime.utcnow`` (no
    deprecation warning to silence), the canonical path computed once per
    URL, and one-shot ``hmac.digest``.
    """

    def __init__(self, host: str, region: str, service: str = "personalize") -> None:
        self._host_line = f"host:{host}\nx-amz-date:"
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._region = region.encode()
        self._service = service.encode()
        self._key: tuple[str, str, bytes] | None = None
        self._paths: dict[str, str] = {}

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == day and cached[1] == secret:
            return cached[2]
        key = hmac.digest(("AWS4" + secret).encode(), day.encode(), "sha256")
        for part in (self._region, self._service, b"aws4_request"):
            key = hmac.digest(key, part, "sha256")
        self._key = (day, secret, key)
        return key

    def _canonical_path(self, url: str) -> str:
        """The canonical URI and query lines, computed once per URL (the client has one per operation)."""
        found = self._paths.get(url)
        if found is None:
            parts = urlsplit(url)
            query = "&".join(sorted(q for q in parts.query.split("&") if q))
            found = self._paths[url] = f"{quote(parts.path or '/', safe='/-_.~')}\n{query}"
        return found

    def headers(
        self, method: str, url: str, body: bytes, access_key: str, secret: str, token: str | None, now: float
    ) -> dict[str, str]:
        """The signed headers for one request at ``now`` (epoch seconds)."""
        amzdate = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amzdate[:8]
        payload_hash = hashlib.sha256(body).hexdigest()
        path_and_query = self._canonical_path(url)
        if token:
            canonical_headers = f"{self._host_line}{amzdate}\nx-amz-security-token:{token}\n"
            signed = "host;x-amz-date;x-amz-security-token"
        else:
            canonical_headers = f"{self._host_line}{amzdate}\n"
            signed = "host;x-amz-date"
        canonical = f"{method}\n{path_and_query}\n{canonical_headers}\n{signed}\n{payload_hash}"
        scope = day + self._scope_tail
        to_sign = f"AWS4-HMAC-SHA256\n{amzdate}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(secret, day), to_sign.encode(), "sha256").hex()
        headers = {
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
            ),
            "x-amz-date": amzdate,
            "x-amz-content-sha256": payload_hash,
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers


def _epoch(value: float) -> int | float:
    whole = int(value)
    return whole if whole == value else value


def _event_wire(e: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"eventType": e.event_type, "sentAt": _epoch(e.sent_at)}
    if e.event_id is not None:
        out["eventId"] = e.event_id
    if e.event_value is not None:
        out["eventValue"] = e.event_value
    if e.item_id is not None:
        out["itemId"] = e.item_id
    if e.properties is not None:
        out["properties"] = e.properties
    if e.recommendation_id is not None:
        out["recommendationId"] = e.recommendation_id
    if e.impression is not None:
        out["impression"] = list(e.impression)
    if e.metric_attribution is not None:
        out["metricAttribution"] = {"eventAttributionSource": e.metric_attribution.event_attribution_source}
    return out


def put_events_wire_sketch(request: Any) -> dict[str, Any]:
    """A hand-written ``to_wire`` for ``PutEventsRequest`` (the sketch behind the cattrs proposal)."""
    out: dict[str, Any] = {
        "trackingId": request.tracking_id,
        "sessionId": request.session_id,
        "eventList": [_event_wire(e) for e in request.event_list],
    }
    if request.user_id is not None:
        out["userId"] = request.user_id
    return out


class _FixedDatetime:
    """Stands in for the ``datetime`` module inside aws_requests_auth so its signature is reproducible."""

    class datetime:  # mirrors the module attribute it replaces
        @staticmethod
        def utcnow() -> _dt.datetime:
            return _dt.datetime.fromtimestamp(FIXED_NOW, _dt.timezone.utc).replace(tzinfo=None)


# -- the measurements -----------------------------------------------------------------------


def measure(quick: bool = False) -> dict[str, Any]:
    """Time every stage and alternative; return ``{"stages": [...], "alternatives": [...], "checks": {...}}``."""
    from aws_requests_auth import aws_auth

    from aiopersonalize_events import Credentials, Event
    from aiopersonalize_events import _client as client_module
    from aiopersonalize_events import _shapes as shapes
    from aiopersonalize_events._shapes import PutEventsRequest
    from aiopersonalize_events._signing import Signer
    from aiopersonalize_events.serde import to_wire

    rounds = Rounds(0.01 if quick else 0.02)

    now = time.time

    def build_events() -> list[Any]:
        return [
            Event(
                event_type="click",
                item_id=ITEMS[k],
                sent_at=now(),
                properties={"device": "mobile", "page": "product", "position": k},
            )
            for k in range(10)
        ]

    events = build_events()
    request = PutEventsRequest(tracking_id="bench-tracking-0000", session_id="session-0001", event_list=events)
    wire = to_wire(request)
    stdlib_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    dumps_wire = getattr(client_module, "dumps_wire", None)
    floats_agree = getattr(client_module, "_floats_agree", None)
    if dumps_wire is not None and floats_agree is not None:  # the client's own body encoder (orjson when installed)
        with_orjson = getattr(sys.modules.get("aiopersonalize_events._json"), "HAVE_ORJSON", False)
        body_name = "JSON body: _json.dumps_wire" + (" (orjson installed)" if with_orjson else " (stdlib)")

        def encode_body() -> bytes:
            return bytes(dumps_wire(wire, floats_agree(request)))
    else:  # older layouts: a module-level encoder, else the stdlib
        encode = getattr(client_module, "_dumps", None) or getattr(client_module, "_encode", None) or stdlib_encode
        body_name = "JSON body: encode + utf-8"

        def encode_body() -> bytes:
            return bytes(encode(wire).encode("utf-8"))

    body = encode_body()
    key_fn = aws_auth.getSignatureKey
    key_cached = hasattr(key_fn, "cache_info")  # _signing may wrap it in an LRU cache
    derive_key = getattr(key_fn, "__wrapped__", key_fn)
    credentials = Credentials("AKIDEXAMPLE000000000", "bench/secret/key/0000000000000000000000")
    signer = Signer(HOST, "us-east-1")
    base_headers = {"Content-Type": "application/json", "User-Agent": "aiopersonalize-events/0 Python/3 aiohttp/3"}
    props = {"device": "mobile", "page": "product", "position": 3}

    stages: list[dict[str, Any]] = []

    def stage(name: str, fn: Callable[[], object], note: str = "", part_of: str | None = None) -> None:
        entry: dict[str, Any] = {"name": name, "us": None, "note": note, "part_of": part_of}
        try:
            rounds.add("stage:" + name, fn)
        except Exception as exc:  # an internal renamed meanwhile: report, do not fail the run
            entry["note"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
        stages.append(entry)

    signed = signer.headers("POST", URL, body, credentials)

    def build_headers() -> dict[str, str]:
        headers = dict(base_headers)
        headers.update(signed)
        return headers

    stage("build 10 Events (user code + validation)", build_events, "Event(...) x10 with a properties mapping")
    if hasattr(shapes, "_to_properties"):
        stage(
            "  properties mapping -> JSON text, x10",
            lambda: [shapes._to_properties("properties", props, 1024, True) for _ in range(10)],
            "_shapes._to_properties",
            part_of="build 10 Events (user code + validation)",
        )
    if hasattr(shapes, "_to_epoch"):
        stage(
            "  sent_at -> epoch seconds, x10",
            lambda: [shapes._to_epoch("sent_at", 1764115200.25) for _ in range(10)],
            "_shapes._to_epoch",
            part_of="build 10 Events (user code + validation)",
        )
    stage(
        "PutEventsRequest(...)",
        lambda: PutEventsRequest(tracking_id="bench-tracking-0000", session_id="session-0001", event_list=events),
        "tuple conversion, id checks, check_event_size x10",
    )
    stage("to_wire(request) (cattrs)", lambda: to_wire(request))
    stage(body_name, encode_body, f"{len(body)} bytes")
    stage("sign: Signer.headers (aws-requests-auth)", lambda: signer.headers("POST", URL, body, credentials))
    stage(
        "  signing key derivation (4 HMACs)",
        lambda: derive_key("secret", "20251126", "us-east-1", "personalize"),
        "cached by _signing: paid once a day, not per call" if key_cached else "recomputed on every call",
        part_of="sign: Signer.headers (aws-requests-auth)",
    )

    class _R:
        url = URL

    stage(
        "  canonical path + query (urlparse x2, quote)",
        lambda: (
            aws_auth.AWSRequestsAuth.get_canonical_path(_R),
            aws_auth.AWSRequestsAuth.get_canonical_querystring(_R),
        ),
        part_of="sign: Signer.headers (aws-requests-auth)",
    )
    stage(
        "  utcnow + strftime x2",
        lambda: (lambda d: (d.strftime("%Y%m%dT%H%M%SZ"), d.strftime("%Y%m%d")))(_dt.datetime.now()),
        part_of="sign: Signer.headers (aws-requests-auth)",
    )
    stage(
        "  sha256 of the body",
        lambda: hashlib.sha256(body).hexdigest(),
        part_of="sign: Signer.headers (aws-requests-auth)",
    )
    stage("headers dict (copy base + update with signed)", build_headers)

    def warnings_guard() -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)

    stage(
        "  catch_warnings around signing (Python 3.12+ only)",
        warnings_guard,
        "what _signing pays per call on 3.12+ to silence utcnow's warning",
        part_of="sign: Signer.headers (aws-requests-auth)",
    )
    check_body = getattr(client_module, "_check_success_body", None)
    meta_cls = getattr(client_module, "ResponseMetadata", None)
    if check_body is not None and meta_cls is not None:
        stage(
            "answer: _check_success_body + ResponseMetadata",
            lambda: (check_body(b"{}"), meta_cls(request_id="x", http_status=200, retry_attempts=0)),
        )

    # -- alternatives, each checked for identical output first ------------------------------
    alternatives: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}

    def alternative(name: str, replaces: str, fn: Callable[[], object], sketch: str) -> None:
        entry: dict[str, Any] = {"name": name, "replaces": replaces, "us": None, "sketch": sketch}
        try:
            rounds.add("alt:" + name, fn)
        except Exception as exc:
            entry["note"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
        alternatives.append(entry)

    if key_cached:
        checks["signing_key_cache"] = "already in _signing"
    else:
        cached_key = functools.lru_cache(maxsize=4)(key_fn)

        def sign_cached() -> object:
            aws_auth.getSignatureKey = cached_key
            try:
                return signer.headers("POST", URL, body, credentials)
            finally:
                aws_auth.getSignatureKey = key_fn

        alternative(
            "aws-requests-auth with getSignatureKey cached",
            "sign: Signer.headers (aws-requests-auth)",
            sign_cached,
            "functools.lru_cache(maxsize=4) around aws_auth.getSignatureKey (a module global it looks up per call)",
        )
    sketch = SigV4Sketch(HOST, "us-east-1")
    key, secret = credentials.access_key_id, credentials.secret_access_key
    alternative(
        "in-house SigV4 (SigV4Sketch), key cached per day",
        "sign: Signer.headers (aws-requests-auth)",
        lambda: sketch.headers("POST", URL, body, key, secret, None, now()),
        "benchmarks/stages.py SigV4Sketch",
    )
    saved = aws_auth.datetime
    aws_auth.datetime = _FixedDatetime
    try:
        theirs = signer.headers("POST", URL, body, credentials)
        theirs_token = Signer(HOST, "us-east-1").headers(
            "POST", URL, body, Credentials(key, secret, "session-token-value")
        )
    finally:
        aws_auth.datetime = saved
    checks["sigv4_sketch_identical"] = theirs == sketch.headers("POST", URL, body, key, secret, None, FIXED_NOW)
    checks["sigv4_sketch_identical_with_token"] = theirs_token == sketch.headers(
        "POST", URL, body, key, secret, "session-token-value", FIXED_NOW
    )

    checks["to_wire_sketch_identical"] = put_events_wire_sketch(request) == wire
    alternative(
        "hand-written to_wire for PutEventsRequest",
        "to_wire(request) (cattrs)",
        lambda: put_events_wire_sketch(request),
        "benchmarks/stages.py put_events_wire_sketch",
    )
    checks["json_body_identical_to_stdlib"] = stdlib_encode(wire).encode() == body
    alternative(
        "stdlib JSONEncoder.encode (for reference)",
        body_name,
        lambda: stdlib_encode(wire).encode("utf-8"),
        "json.JSONEncoder(separators=(',', ':'), ensure_ascii=False).encode: a new C encoder per call",
    )
    try:
        import orjson
    except ImportError:
        checks["orjson"] = "not installed"
    else:
        checks["orjson_identical"] = orjson.dumps(wire) == body
        alternative("orjson.dumps(wire)", body_name, lambda: orjson.dumps(wire), "orjson.dumps")
        if hasattr(shapes, "_to_properties"):
            compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
            checks["orjson_properties_identical"] = orjson.dumps(props).decode() == compact(props)
            alternative(
                "properties via orjson.dumps(...).decode(), x10",
                "  properties mapping -> JSON text, x10",
                lambda: [orjson.dumps(props).decode() for _ in range(10)],
                "orjson for the mapping, same reserved-key and length checks",
            )
    props_encode = getattr(shapes, "_dumps", None) or json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    alternative(
        "properties: the encoder alone (no checks), x10",
        "  properties mapping -> JSON text, x10",
        lambda: [props_encode(props) for _ in range(10)],
        "the encoding alone, without the key and size checks: the floor of the current path",
    )
    rounds.run(7 if quick else 15)
    for entry in stages:
        entry["us"] = rounds.us("stage:" + entry["name"])
        entry["best_us"] = rounds.best("stage:" + entry["name"])
    for entry in alternatives:
        entry["us"] = rounds.us("alt:" + entry["name"])
        entry["best_us"] = rounds.best("alt:" + entry["name"])
    return {"stages": stages, "alternatives": alternatives, "checks": checks, "quick": quick}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.stages [--quick]``: print ``RESULT {json}``."""
    parser = argparse.ArgumentParser(description="time our client's per-call stages and candidate replacements")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(measure(args.quick)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
