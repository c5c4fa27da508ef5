"""Our client's stages timed in a tight loop (no I/O), and what candidate replacements would cost.

``python -m benchmarks.stages [--quick]`` times, in one fresh process and
without any I/O, each step our ``put_events`` takes for one call of ten
events (building the events as a user does, from a properties dict and a
datetime; the request shape, to_wire, the JSON body, signing, headers), the
parts of the costly ones, and measured alternatives: a small in-house SigV4
signer, a hand-written ``to_wire``, ``orjson`` when it is installed. Each
alternative is checked to give identical output before it is timed. Nothing
in the package is changed or patched: the alternatives live here as sketches.

A stage timed in a tight loop runs much faster than the same code inside the
real request loop (warm caches and branch predictors, no event loop between
the steps): the harness reports these figures beside the in-place ones of
``benchmarks.hotpath``, and the in-place ones are those to quote.

Figures are microseconds per PutEvents call (ten events): every callable is
timed once per round, round after round (so noise on a shared machine falls
on all alike), with the garbage collector off; the median over rounds is
reported, and the minimum beside it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
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


# -- the measurements -----------------------------------------------------------------------


def _optional(module: str, name: str) -> Any:
    """``module.name`` if both exist, else None: the library's internals move while it is optimised."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _first(*places: tuple[str, str]) -> Any:
    """The first ``module.name`` of ``places`` that exists (internals move between versions), else None."""
    for module, name in places:
        found = _optional(module, name)
        if found is not None:
            return found
    return None


def _same_second(make_a: Callable[[], dict[str, str]], make_b: Callable[[float], dict[str, str]]) -> bool | None:
    """Compare two signers' headers made at the same second (retried across a second boundary)."""
    for _ in range(5):
        now = time.time()
        a, b = make_a(), make_b(now)
        if a.get("x-amz-date") == b.get("x-amz-date"):
            return a == b
    return None


def measure(quick: bool = False) -> dict[str, Any]:
    """Time every stage and alternative; return ``{"stages": [...], "alternatives": [...], "checks": {...}}``.

    Everything past the public API is looked up defensively (a stage whose
    internals moved is reported ``n/a`` with the reason, the rest still runs).
    Each stage names the in-place stage it belongs to (``inplace``), so the
    report can set the tight-loop figure beside the in-place one.
    """
    from aiopersonalize_events import Credentials, Event
    from aiopersonalize_events.serde import to_wire

    put_events_request = _optional("aiopersonalize_events._shapes", "PutEventsRequest")
    client_module = sys.modules.get("aiopersonalize_events._client") or _optional("aiopersonalize_events", "_client")
    shapes = sys.modules.get("aiopersonalize_events._shapes")
    signer_cls = _optional("aiopersonalize_events._signing", "Signer")

    rounds = Rounds(0.01 if quick else 0.02)
    now = _dt.datetime.now
    utc = _dt.timezone.utc

    def build_events() -> list[Any]:
        return [
            Event(
                event_type="click",
                sent_at=now(utc),
                item_id=ITEMS[k],
                properties={"device": "mobile", "page": "product", "position": k},
            )
            for k in range(10)
        ]

    events = build_events()
    stages: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}

    def stage(
        name: str, fn: Callable[[], object] | None, note: str = "", part_of: str | None = None, inplace: str = ""
    ) -> None:
        entry: dict[str, Any] = {"name": name, "us": None, "note": note, "part_of": part_of, "inplace": inplace}
        if fn is None:
            entry["note"] = "n/a (not found in this version of the library)"
        else:
            try:
                rounds.add("stage:" + name, fn)
            except Exception as exc:  # an internal renamed meanwhile: report, do not fail the run
                entry["note"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
        stages.append(entry)

    build_name = "build 10 Events (user code + validation)"
    stage(build_name, build_events, "Event(...) x10, a properties dict and a datetime each", inplace="events")
    props = {"device": "mobile", "page": "product", "position": 3}
    to_properties = _first(
        ("aiopersonalize_events._validators", "to_properties"), ("aiopersonalize_events._shapes", "_to_properties")
    )
    stage(
        "  properties mapping -> JSON text, x10",
        (lambda: [to_properties("properties", props, 1024, True) for _ in range(10)]) if to_properties else None,
        getattr(to_properties, "__module__", "") + "." + getattr(to_properties, "__name__", ""),
        part_of=build_name,
    )
    to_epoch = _first(("aiopersonalize_events._validators", "to_epoch"), ("aiopersonalize_events._shapes", "_to_epoch"))
    stamp = now(utc)
    stage(
        "  sent_at datetime -> epoch seconds, x10",
        (lambda: [to_epoch("sent_at", stamp) for _ in range(10)]) if to_epoch else None,
        getattr(to_epoch, "__module__", "") + "." + getattr(to_epoch, "__name__", ""),
        part_of=build_name,
    )
    stage("  datetime.now(timezone.utc), x10 (user code)", lambda: [now(utc) for _ in range(10)], part_of=build_name)

    request: Any = None
    if put_events_request is not None:
        try:
            request = put_events_request(
                tracking_id="bench-tracking-0000", session_id="session-0001", event_list=events
            )
        except Exception as exc:
            checks["PutEventsRequest"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
    stage(
        "PutEventsRequest(...)",
        (lambda: put_events_request(tracking_id="bench-tracking-0000", session_id="session-0001", event_list=events))
        if request is not None
        else None,
        "tuple conversion, id checks, event size checks",
        inplace="request",
    )
    wire: Any = None
    if request is not None:
        try:
            wire = to_wire(request)
        except Exception as exc:
            checks["to_wire"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
    stage("to_wire(request)", (lambda: to_wire(request)) if wire is not None else None, inplace="serialise")

    stdlib_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    dumps_wire = getattr(client_module, "dumps_wire", None) or _optional("aiopersonalize_events._json", "dumps_wire")
    float_agrees = getattr(client_module, "float_agrees", None) or _optional(
        "aiopersonalize_events._json", "float_agrees"
    )
    body_name = "JSON body"
    encode_body: Callable[[], bytes] | None = None
    if wire is not None and dumps_wire is not None:
        with_orjson = getattr(sys.modules.get("aiopersonalize_events._json"), "HAVE_ORJSON", False)
        body_name = "JSON body: _json.dumps_wire" + (" (orjson installed)" if with_orjson else " (stdlib)")

        def encode_body() -> bytes:
            # as the client does it: check that every event value writes the same in orjson and the stdlib
            agree = float_agrees is None or all(float_agrees(e.event_value) for e in request.event_list)
            return bytes(dumps_wire(wire, agree))

    elif wire is not None:
        body_name = "JSON body: stdlib encoder (the client's own encoder not found)"

        def encode_body() -> bytes:
            return stdlib_encode(wire).encode("utf-8")

    body = encode_body() if encode_body is not None else stdlib_encode({"x": 1}).encode()
    stage(body_name, encode_body, f"{len(body)} bytes", inplace="serialise")

    credentials = Credentials("AKIDEXAMPLE000000000", "bench/secret/key/0000000000000000000000")
    signer: Any = None
    if signer_cls is not None:
        try:
            signer = signer_cls(HOST, "us-east-1")
            signer.headers("POST", URL, body, credentials)
        except Exception as exc:
            checks["Signer"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
            signer = None
    sign_name = "sign: _signing.Signer.headers"
    stage(
        sign_name,
        (lambda: signer.headers("POST", URL, body, credentials)) if signer is not None else None,
        inplace="signing",
    )
    stage(
        "  sha256 of the body",
        lambda: hashlib.sha256(body).hexdigest(),
        part_of=sign_name,
    )
    base_headers = {"Content-Type": "application/json", "User-Agent": "aiopersonalize-events/0 Python/3 aiohttp/3"}
    signed = signer.headers("POST", URL, body, credentials) if signer is not None else {}

    def build_headers() -> dict[str, str]:
        headers = dict(base_headers)
        headers.update(signed)
        return headers

    stage("headers dict (copy base + update with signed)", build_headers, inplace="other")
    call_module = sys.modules.get("aiopersonalize_events._call") or _optional("aiopersonalize_events", "_call")
    check_body = getattr(call_module, "_check_success_body", None)
    check_body = check_body or getattr(client_module, "_check_success_body", None)
    meta_cls = getattr(client_module, "ResponseMetadata", None)
    stage(
        "answer: _check_success_body + ResponseMetadata",
        (lambda: (check_body(b"{}", {}), meta_cls(request_id="x", http_status=200, retry_attempts=0)))
        if check_body is not None and meta_cls is not None
        else None,
        inplace="other",
    )

    # -- alternatives, each checked for identical output first ------------------------------
    alternatives: list[dict[str, Any]] = []

    def alternative(name: str, replaces: str, fn: Callable[[], object], sketch: str) -> None:
        entry: dict[str, Any] = {"name": name, "replaces": replaces, "us": None, "sketch": sketch}
        try:
            rounds.add("alt:" + name, fn)
        except Exception as exc:
            entry["note"] = f"n/a ({type(exc).__name__}: {exc})"[:120]
        alternatives.append(entry)

    sketch = SigV4Sketch(HOST, "us-east-1")
    key, secret = credentials.access_key_id, credentials.secret_access_key
    alternative(
        "in-house SigV4 (SigV4Sketch), key cached per day",
        sign_name,
        lambda: sketch.headers("POST", URL, body, key, secret, None, time.time()),
        "benchmarks/stages.py SigV4Sketch",
    )
    if signer is not None:
        checks["sigv4_sketch_identical"] = _same_second(
            lambda: dict(signer.headers("POST", URL, body, credentials)),
            lambda t: sketch.headers("POST", URL, body, key, secret, None, t),
        )
        with_token = Credentials(key, secret, "session-token-value")
        checks["sigv4_sketch_identical_with_token"] = _same_second(
            lambda: dict(signer.headers("POST", URL, body, with_token)),
            lambda t: sketch.headers("POST", URL, body, key, secret, "session-token-value", t),
        )
    if wire is not None:
        checks["to_wire_sketch_identical"] = put_events_wire_sketch(request) == wire
        alternative(
            "hand-written to_wire for PutEventsRequest",
            "to_wire(request)",
            lambda: put_events_wire_sketch(request),
            "benchmarks/stages.py put_events_wire_sketch",
        )
        checks["json_body_identical_to_stdlib"] = stdlib_encode(wire).encode() == body
        alternative(
            "stdlib JSONEncoder.encode (for reference)",
            body_name,
            lambda: stdlib_encode(wire).encode("utf-8"),
            "json.JSONEncoder(separators=(',', ':'), ensure_ascii=False).encode",
        )
    try:
        import orjson
    except ImportError:
        checks["orjson"] = "not installed"
    else:
        if wire is not None:
            checks["orjson_identical"] = orjson.dumps(wire) == body
            alternative("orjson.dumps(wire)", body_name, lambda: orjson.dumps(wire), "orjson.dumps")
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
