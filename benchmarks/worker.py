"""One benchmark client in its own process: ``python benchmarks/worker.py MODE key=value ...``.

Modes (each prints one ``RESULT {json}`` line on stdout and exits):

``throughput client=ours|aiobotocore|floor workload=user|prebuilt|floats url=... concurrency=N duration=S
max_calls=M warmup=W``
    ``concurrency`` tasks loop on PutEvents calls of ten events until
    ``duration`` seconds pass or ``max_calls`` calls were made (after
    ``warmup`` untimed calls); reports calls, wall and CPU seconds of this
    process over the timed section, latency percentiles and peak RSS.
    ``sample=PATH`` samples the timed section's Python stacks on process CPU
    time (``SIGPROF``, ``sample_hz`` per CPU second) and writes them to PATH
    in py-spy's raw (collapsed) format. ``callgrind=1`` runs the timed section
    inside ``operator.call`` (3.10: ``sys.call_tracing``) so that ``valgrind --tool=callgrind
    --collect-atstart=no --toggle-collect=_operator_call`` counts it alone.
``first client=... workload=... url=... t0=MONOTONIC``
    imports the client, makes one call and reports the seconds since ``t0``
    (the parent's ``time.monotonic()`` just before it started this process).
``recorder url=... duration=S max_events=N prebuilt=0|1``
    events recorded through ``client.event_recorder()`` as fast as the
    recorder drains them; reports events/s delivered and CPU per event.
``recins url=... events=N callgrind=0|1``
    the recorder's instruction count mode: ``events`` of the user's events
    recorded (bursts of 50, as ``recorder``) with a flush interval longer
    than the run, so that calls hold ten events (as at full speed) and not
    what a slowed-down clock would cut; ``callgrind=1`` runs recording and
    the final flush inside ``operator.call`` (see ``throughput``).
``recmem url=... events=N``
    bytes of memory (tracemalloc) per event queued in the recorder.
``recmicro url=... events=N repeats=R``
    microseconds per ``record()`` call, median of ``repeats``.

The workloads (``workload=``), the same ten events per call for every client:

``user`` (the headline)
    each call builds its ten events as a user writes them: ours ten
    ``Event(...)`` from a ``properties`` dict and ``datetime.now(timezone.utc)``;
    aiobotocore ten dicts with ``properties`` as ``json.dumps(...)`` and
    ``sentAt`` the datetime, as a boto3 user writes them; the floor the same
    dicts with ``sentAt`` as epoch seconds (``time.time()``), one compact JSON
    body and SigV4 signing by hand (stdlib ``hashlib``/``hmac``, the signing
    key cached per day): the least a client can do for the same call.
``prebuilt`` (lighter)
    ten events built once and reused by every call (ours ``Event`` objects,
    aiobotocore dicts); the floor posts one constant pre-built body with
    constant headers, no signing and no serialising (the floor of the first
    harness).
``floats``
    the first harness's workload: ours and aiobotocore build the events per
    call from ``time.time()`` floats (our float fast path); the floor as in
    ``prebuilt``.

The user code of a call is the function ``build_events`` and the call itself
``user_call``, and the timed section runs inside ``_timed_section``: the
in-place stage profile (``benchmarks.hotpath``) finds the stages by these
names.

Only the standard library is imported at the top, so that the import and
first-call figures measure the client library and nothing of the harness.
"""

from __future__ import annotations

import sys
import time

_START = time.monotonic()

import asyncio  # noqa: E402  (after _START on purpose; every client imports it anyway)
import json  # noqa: E402
from collections.abc import Awaitable, Callable, Coroutine  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

TRACKING_ID = "bench-tracking-0000"
ACCESS_KEY = "AKIDEXAMPLE000000000"
SECRET_KEY = "bench/secret/key/0000000000000000000000"
REGION = "us-east-1"
EVENTS_PER_CALL = 10
FLUSH_TIMEOUT = 60.0  # a recorder that cannot drain fails the run instead of hanging it
SESSIONS = [f"session-{i:04d}" for i in range(64)]
ITEMS = [f"item-{i:06d}" for i in range(100)]
WORKLOADS = ("user", "prebuilt", "floats")
# each event's properties encode to about 50 bytes: {"device":"mobile","page":"product","position":3}

Call = Callable[[int], Awaitable[Any]]


class Workload:
    """A client ready to make PutEvents calls: ``call(n)`` makes the n-th, ``close()`` ends it."""

    def __init__(self, call: Call, close: Callable[[], Awaitable[Any]]) -> None:
        self.call = call
        self.close = close


def _counted(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` inside the C function callgrind's toggle names (``benchmarks.instructions.TOGGLE``)."""
    if sys.version_info >= (3, 11):
        import operator

        return operator.call(func, *args)  # type: ignore[attr-defined, unused-ignore]
    return sys.call_tracing(func, args)  # 3.10: no operator.call; with no tracer set, this only calls func


def _check_workload(workload: str) -> None:
    if workload not in WORKLOADS:
        raise SystemExit(f"unknown workload {workload!r}; one of {', '.join(WORKLOADS)}")


async def make_ours(url: str, concurrency: int, workload: str = "user") -> Workload:
    """Our client, used as a user would: one client reused, the call's events built per ``workload``."""
    from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient

    _check_workload(workload)
    client = PersonalizeEventsClient(
        region=REGION,
        endpoint_url=url,
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        config=ClientConfig(max_connections=concurrency),
    )
    await client.__aenter__()
    now = datetime.now
    utc = timezone.utc
    clock = time.time

    if workload == "floats":

        def build_events(n: int) -> list[Any]:
            return [
                Event(
                    event_type="click",
                    item_id=ITEMS[(n + k) % 100],
                    sent_at=clock(),
                    properties={"device": "mobile", "page": "product", "position": k},
                )
                for k in range(EVENTS_PER_CALL)
            ]
    else:

        def build_events(n: int) -> list[Any]:
            return [
                Event(
                    event_type="click",
                    sent_at=now(utc),
                    item_id=ITEMS[(n + k) % 100],
                    properties={"device": "mobile", "page": "product", "position": k},
                )
                for k in range(EVENTS_PER_CALL)
            ]

    put_events = client.put_events
    if workload == "prebuilt":
        prebuilt = build_events(0)

        async def user_call(n: int) -> Any:
            return await put_events(tracking_id=TRACKING_ID, session_id=SESSIONS[n % 64], event_list=prebuilt)
    else:

        async def user_call(n: int) -> Any:
            events = build_events(n)
            return await put_events(tracking_id=TRACKING_ID, session_id=SESSIONS[n % 64], event_list=events)

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return Workload(user_call, close)


async def make_aiobotocore(url: str, concurrency: int, workload: str = "user") -> Workload:
    """aiobotocore: one session, one client reused, its pool sized to the concurrency."""
    from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]
    from aiobotocore.session import get_session  # type: ignore[import-untyped, unused-ignore]

    _check_workload(workload)
    session = get_session()
    context = session.create_client(
        "personalize-events",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=AioConfig(max_pool_connections=concurrency),
    )
    client = await context.__aenter__()
    now = datetime.now
    utc = timezone.utc
    dumps = json.dumps

    if workload == "floats":
        clock = time.time
        compact = json.JSONEncoder(separators=(",", ":")).encode

        def build_events(n: int) -> list[dict[str, Any]]:
            return [
                {
                    "eventType": "click",
                    "itemId": ITEMS[(n + k) % 100],
                    "sentAt": clock(),
                    "properties": compact({"device": "mobile", "page": "product", "position": k}),
                }
                for k in range(EVENTS_PER_CALL)
            ]
    else:

        def build_events(n: int) -> list[dict[str, Any]]:
            return [
                {
                    "eventType": "click",
                    "sentAt": now(utc),
                    "itemId": ITEMS[(n + k) % 100],
                    "properties": dumps({"device": "mobile", "page": "product", "position": k}),
                }
                for k in range(EVENTS_PER_CALL)
            ]

    put_events = client.put_events
    if workload == "prebuilt":
        prebuilt = build_events(0)

        async def user_call(n: int) -> Any:
            return await put_events(trackingId=TRACKING_ID, sessionId=SESSIONS[n % 64], eventList=prebuilt)
    else:

        async def user_call(n: int) -> Any:
            events = build_events(n)
            return await put_events(trackingId=TRACKING_ID, sessionId=SESSIONS[n % 64], eventList=events)

    async def close() -> None:
        await context.__aexit__(None, None, None)

    return Workload(user_call, close)


class FloorSigner:
    """SigV4 for the floor, as a hand-written client would do it: stdlib only, the signing key cached per day.

    Signs ``host`` and ``x-amz-date`` over the body's SHA-256, for one host,
    path, region and service; ``sigv4_headers(body, now)`` returns the
    request's headers (content type included).
    """

    def __init__(self, host: str, path: str, region: str = REGION, service: str = "personalize") -> None:
        import hashlib
        import hmac

        self._sha256 = hashlib.sha256
        self._hmac = hmac.digest
        self._head = f"POST\n{path}\n\nhost:{host}\nx-amz-date:"
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._parts = (region.encode(), service.encode(), b"aws4_request")
        self._credential = f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
        self._key: tuple[str, bytes] = ("", b"")

    def _signing_key(self, day: str) -> bytes:
        if self._key[0] != day:
            key = self._hmac(("AWS4" + SECRET_KEY).encode(), day.encode(), "sha256")
            for part in self._parts:
                key = self._hmac(key, part, "sha256")
            self._key = (day, key)
        return self._key[1]

    def sigv4_headers(self, body: bytes, now: float) -> dict[str, str]:
        """The signed headers of one request at ``now`` (epoch seconds)."""
        amzdate = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amzdate[:8]
        payload_hash = self._sha256(body).hexdigest()
        canonical = f"{self._head}{amzdate}\n\nhost;x-amz-date\n{payload_hash}"
        scope = day + self._scope_tail
        to_sign = f"AWS4-HMAC-SHA256\n{amzdate}\n{scope}\n{self._sha256(canonical.encode()).hexdigest()}"
        signature = self._hmac(self._signing_key(day), to_sign.encode(), "sha256").hex()
        return {
            "Content-Type": "application/json",
            "x-amz-date": amzdate,
            "x-amz-content-sha256": payload_hash,
            "Authorization": f"{self._credential}{scope}, SignedHeaders=host;x-amz-date, Signature={signature}",
        }


def floor_request() -> tuple[bytes, dict[str, str]]:
    """The constant body and headers of the pre-built floor: one call's bytes, as a signed call's headers look."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    body = {
        "trackingId": TRACKING_ID,
        "sessionId": SESSIONS[0],
        "eventList": [
            {
                "eventType": "click",
                "sentAt": 1764000000.123,
                "itemId": ITEMS[k],
                "properties": dumps({"device": "mobile", "page": "product", "position": k}),
            }
            for k in range(EVENTS_PER_CALL)
        ],
    }
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "bench-floor/1.0 aiohttp",
        "x-amz-date": "20251126T000000Z",
        "x-amz-content-sha256": "0" * 64,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20251126/{REGION}/personalize/aws4_request, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
        ),
    }
    return dumps(body).encode(), headers


async def make_floor(url: str, concurrency: int, workload: str = "user") -> Workload:
    """The raw aiohttp floor: one session; the user's dicts, one JSON body and SigV4, or constant bytes (prebuilt)."""
    import aiohttp

    _check_workload(workload)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    target = url + "/events"
    post = session.post

    if workload == "user":
        from urllib.parse import urlsplit

        signer = FloorSigner(urlsplit(target).netloc, "/events")
        sigv4_headers = signer.sigv4_headers
        dumps = json.dumps
        encode = json.JSONEncoder(separators=(",", ":")).encode
        clock = time.time

        def build_events(n: int) -> list[dict[str, Any]]:
            return [
                {
                    "eventType": "click",
                    "sentAt": clock(),
                    "itemId": ITEMS[(n + k) % 100],
                    "properties": dumps({"device": "mobile", "page": "product", "position": k}),
                }
                for k in range(EVENTS_PER_CALL)
            ]

        def encode_body(session_id: str, events: list[dict[str, Any]]) -> bytes:
            return encode({"trackingId": TRACKING_ID, "sessionId": session_id, "eventList": events}).encode()

        async def user_call(n: int) -> Any:
            events = build_events(n)
            body = encode_body(SESSIONS[n % 64], events)
            async with post(target, data=body, headers=sigv4_headers(body, clock())) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
    else:
        body, headers = floor_request()

        async def user_call(n: int) -> Any:
            async with post(target, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

    async def close() -> None:
        await session.close()

    return Workload(user_call, close)


MAKERS: dict[str, Callable[[str, int, str], Awaitable[Workload]]] = {
    "ours": make_ours,
    "aiobotocore": make_aiobotocore,
    "floor": make_floor,
}


class _Drive:
    """Run ``concurrency`` tasks over ``call`` until a count or a deadline; count and time each call."""

    def __init__(self, call: Call, limit: int, deadline: float | None, latencies: list[float] | None) -> None:
        self.call = call
        self.limit = limit
        self.deadline = deadline
        self.latencies = latencies
        self.issued = 0
        self.done = 0
        self.errors = 0
        self.first_error: str | None = None

    async def task(self) -> None:
        clock = time.perf_counter
        deadline = self.deadline
        latencies = self.latencies
        call = self.call
        while self.issued < self.limit and (deadline is None or clock() < deadline):
            self.issued += 1
            started = clock()
            try:
                await call(self.issued)
            except Exception as exc:
                self.errors += 1
                if self.first_error is None:
                    self.first_error = f"{type(exc).__name__}: {exc}"[:300]
            else:
                self.done += 1
            if latencies is not None:
                latencies.append(clock() - started)

    async def run(self, concurrency: int) -> None:
        await asyncio.gather(*(self.task() for _ in range(concurrency)))


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def _max_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class StackSampler:
    """Samples the main thread's Python stack every ``1/hz`` seconds of process CPU time (``SIGPROF``).

    The profiler of last resort when py-spy is not installed: no thread and no
    tracing hook, so the code runs as it does unprofiled (each sample costs a
    few microseconds). A sample is taken at the next bytecode boundary after
    the timer fires, so time in a C function counts to its Python caller.
    ``collapsed()`` gives py-spy's raw format: ``frame;frame;...;leaf count``
    lines, root first, each frame ``function (path:first line)``.
    """

    def __init__(self, hz: float = 1000.0) -> None:
        self.hz = hz
        self.counts: dict[tuple[Any, ...], int] = {}
        self._previous: Any = None

    def _sample(self, _signum: int, frame: Any) -> None:
        codes = []
        while frame is not None:
            codes.append(frame.f_code)
            frame = frame.f_back
        key = tuple(codes)
        self.counts[key] = self.counts.get(key, 0) + 1

    def start(self) -> None:
        import signal

        self._previous = signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, 1.0 / self.hz, 1.0 / self.hz)

    def stop(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)

    def collapsed(self) -> str:
        prefixes = sorted((p.rstrip("/") + "/" for p in sys.path if p), key=len, reverse=True)

        def short(path: str) -> str:
            for prefix in prefixes:
                if path.startswith(prefix):
                    return path[len(prefix) :]
            return path

        names: dict[Any, str] = {}
        lines = []
        for codes, count in self.counts.items():
            frames = []
            for code in reversed(codes):
                name = names.get(code)
                if name is None:
                    function = getattr(code, "co_qualname", code.co_name)  # Python 3.11+, as py-spy shows it
                    name = names[code] = f"{function} ({short(code.co_filename)}:{code.co_firstlineno})"
                frames.append(name)
            lines.append(f"{';'.join(frames)} {count}")
        return "\n".join(lines) + "\n"


def _timed_section(loop: asyncio.AbstractEventLoop, timed: _Drive, concurrency: int) -> None:
    """The measured part of a throughput run (profiles and instruction counts keep only what runs in here)."""
    loop.run_until_complete(timed.run(concurrency))


def throughput(args: dict[str, str]) -> dict[str, Any]:
    """The throughput mode (see the module docstring)."""
    import gc

    client = args["client"]
    workload_name = args.get("workload", "user")
    concurrency = int(args["concurrency"])
    duration = float(args.get("duration", "2"))
    max_calls = int(args.get("max_calls", "1000000"))
    warmup = int(args.get("warmup", "0"))
    sampler = StackSampler(float(args.get("sample_hz", "1000"))) if args.get("sample") else None
    callgrind = args.get("callgrind") == "1"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        workload = loop.run_until_complete(MAKERS[client](args["url"], concurrency, workload_name))
        try:
            warm = _Drive(workload.call, warmup, None, None)
            loop.run_until_complete(warm.run(concurrency))
            gc.collect()
            latencies: list[float] = []
            timed = _Drive(workload.call, max_calls, None, latencies)
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            timed.deadline = wall0 + duration
            if sampler is not None:
                sampler.start()
            if callgrind:
                _counted(_timed_section, loop, timed, concurrency)
            else:
                _timed_section(loop, timed, concurrency)
            if sampler is not None:
                sampler.stop()
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
            loop.run_until_complete(workload.close())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    if sampler is not None:
        from pathlib import Path

        Path(args["sample"]).write_text(sampler.collapsed())
    latencies.sort()
    calls = timed.done
    return {
        "mode": "throughput",
        "client": client,
        "workload": workload_name,
        "concurrency": concurrency,
        "warmup_calls": warm.issued,
        "warmup_errors": warm.errors,
        "calls": calls,
        "errors": timed.errors,
        "first_error": timed.first_error or warm.first_error,
        "events": calls * EVENTS_PER_CALL,
        "wall_s": wall,
        "cpu_s": cpu,
        "calls_per_s": calls / wall if wall else 0.0,
        "events_per_s": calls * EVENTS_PER_CALL / wall if wall else 0.0,
        "cpu_s_per_1000_calls": 1000.0 * cpu / calls if calls else float("nan"),
        "cpu_us_per_call": 1e6 * cpu / calls if calls else float("nan"),
        "p50_ms": 1000.0 * _percentile(latencies, 0.50),
        "p99_ms": 1000.0 * _percentile(latencies, 0.99),
        "max_rss_kb": _max_rss_kb(),
        "samples": sum(sampler.counts.values()) if sampler is not None else None,
    }


async def first(args: dict[str, str]) -> dict[str, Any]:
    """The first-call mode: import, build the client, make one call."""
    t0 = float(args["t0"])
    started = time.monotonic()
    workload = await MAKERS[args["client"]](args["url"], 1, args.get("workload", "user"))
    ready = time.monotonic()
    try:
        await workload.call(0)
        done = time.monotonic()
    finally:
        await workload.close()
    return {
        "mode": "first",
        "client": args["client"],
        "since_spawn_s": done - t0,
        "interpreter_s": _START - t0,
        "client_setup_s": ready - started,
        "first_call_s": done - ready,
        "max_rss_kb": _max_rss_kb(),
    }


# -- the recorder ---------------------------------------------------------------------


def _stat(stats: Any, name: str) -> int:
    value = stats[name] if isinstance(stats, dict) else getattr(stats, name)
    return int(value)


async def _ours_client(url: str) -> Any:
    from aiopersonalize_events import Credentials, PersonalizeEventsClient

    client = PersonalizeEventsClient(region=REGION, endpoint_url=url, credentials=Credentials(ACCESS_KEY, SECRET_KEY))
    if not hasattr(client, "event_recorder"):
        raise SystemExit("SKIP: PersonalizeEventsClient.event_recorder does not exist yet")
    return client


def _event_factory() -> Callable[[int], Any]:
    """The user's event: built from a ``properties`` dict and ``datetime.now(timezone.utc)``."""
    from aiopersonalize_events import Event

    now = datetime.now
    utc = timezone.utc

    def build(n: int) -> Any:
        return Event(
            event_type="click",
            sent_at=now(utc),
            item_id=ITEMS[n % 100],
            properties={"device": "mobile", "page": "product", "position": n % 10},
        )

    return build


async def _warm_up(rec: Any, build: Callable[[int], Any]) -> None:
    """Record and send 2,000 events before measuring: connections, code paths, the id pool."""
    for i in range(2000):
        rec.record(build(i), session_id=SESSIONS[i % 64])
    await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)


async def _produce(
    rec: Any, build: Callable[[int], Any], pool: list[Any], limit: int, deadline: float, high_water: int
) -> int:
    """Record up to ``limit`` events (until ``deadline`` on ``perf_counter``) as a busy service would; the count.

    Bursts of 50 events of 64 sessions, built per event (or taken from
    ``pool`` when it is not empty), then a yield so the recorder's task and
    the sends run; a pause while more than ``high_water`` are pending.
    """
    record = rec.record
    clock = time.perf_counter
    size = len(pool)
    i = 0
    while i < limit and clock() < deadline:
        if _stat(rec.stats, "pending") > high_water:
            await asyncio.sleep(0.0005)  # back off while the recorder drains
            continue
        burst = min(50, limit - i)
        if size:
            for _ in range(burst):
                record(pool[i % size], session_id=SESSIONS[i % 64])
                i += 1
        else:
            for _ in range(burst):
                record(build(i), session_id=SESSIONS[i % 64])
                i += 1
        await asyncio.sleep(0)
    return i


async def recorder(args: dict[str, str]) -> dict[str, Any]:
    """Sustained events/s through the recorder into the stub (the producer yields and backs off as a service would)."""
    duration = float(args.get("duration", "3"))
    max_events = int(args.get("max_events", "2000000"))
    prebuilt = args.get("prebuilt") == "1"
    high_water = int(args.get("high_water", "4000"))
    build = _event_factory()
    pool = [build(i) for i in range(1000)] if prebuilt else []
    client = await _ours_client(args["url"])
    async with client:
        rec = client.event_recorder(tracking_id=TRACKING_ID)
        async with rec:
            await _warm_up(rec, build)
            warm_stats = rec.stats
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            clock = time.perf_counter
            i = await _produce(rec, build, pool, max_events, wall0 + duration, high_water)
            produced_s = clock() - wall0
            await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)
            wall = clock() - wall0
            cpu = time.process_time() - cpu0
            stats = rec.stats
    sent = _stat(stats, "sent") - _stat(warm_stats, "sent")
    return {
        "mode": "recorder",
        "prebuilt": prebuilt,
        "recorded": i,
        "sent": sent,
        "sent_total": _stat(stats, "sent"),
        "failed": _stat(stats, "failed"),
        "dropped": _stat(stats, "dropped"),
        "pending": _stat(stats, "pending"),
        "retried": _stat(stats, "retried"),
        "wall_s": wall,
        "produce_s": produced_s,
        "cpu_s": cpu,
        "events_per_s": sent / wall if wall else 0.0,
        "cpu_us_per_event": 1e6 * cpu / sent if sent else float("nan"),
        "max_rss_kb": _max_rss_kb(),
    }


async def recmem(args: dict[str, str]) -> dict[str, Any]:
    """Bytes traced by tracemalloc per event held in the recorder's queue (nothing is sent meanwhile)."""
    import gc
    import tracemalloc

    n = int(args.get("events", "5000"))
    build = _event_factory()
    client = await _ours_client(args["url"])
    tracemalloc.start()
    async with client:
        rec = client.event_recorder(tracking_id=TRACKING_ID)
        async with rec:
            for i in range(20):  # make every lazily created structure exist first
                rec.record(build(i), session_id=SESSIONS[i % 64])
            await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
            events = [build(i) for i in range(n)]
            gc.collect()
            built = tracemalloc.get_traced_memory()[0]
            # no await between here and the measurements: the background task cannot send
            for i, event in enumerate(events):
                rec.record(event, session_id=SESSIONS[i % 64])
            gc.collect()
            queued = tracemalloc.get_traced_memory()[0]
            del events
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
            stats = rec.stats
            await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)
    tracemalloc.stop()
    return {
        "mode": "recmem",
        "events": n,
        "pending_when_measured": _stat(stats, "pending"),
        "dropped": _stat(stats, "dropped"),
        "bytes_per_event_built": (built - base) / n,
        "bytes_per_event_queue_overhead": (queued - built) / n,
        "bytes_per_queued_event": (held - base) / n,
    }


async def recmicro(args: dict[str, str]) -> dict[str, Any]:
    """Microseconds per ``record()`` call on pre-built events (timeit-style: gc off, median of repeats)."""
    import gc
    import statistics

    n = int(args.get("events", "1000"))
    repeats = int(args.get("repeats", "25"))
    build = _event_factory()
    client = await _ours_client(args["url"])
    samples: list[float] = []
    build_samples: list[float] = []
    async with client:
        rec = client.event_recorder(tracking_id=TRACKING_ID)
        async with rec:
            record = rec.record
            for r in range(repeats + 2):
                gc.collect()
                gc.disable()
                t = time.perf_counter()
                pairs = [(build(i), SESSIONS[i % 64]) for i in range(n)]
                t_built = time.perf_counter()
                for event, session in pairs:
                    record(event, session_id=session)
                t_done = time.perf_counter()
                gc.enable()
                if r >= 2:  # the first two are warm-up
                    build_samples.append(1e6 * (t_built - t) / n)
                    samples.append(1e6 * (t_done - t_built) / n)
                await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)
            stats = rec.stats
    return {
        "mode": "recmicro",
        "events": n,
        "repeats": repeats,
        "record_us": statistics.median(samples),
        "record_us_min": min(samples),
        "event_build_us": statistics.median(build_samples),
        "dropped": _stat(stats, "dropped"),
        "sent": _stat(stats, "sent"),
    }


async def _recins_open(url: str) -> tuple[Any, Any, Callable[[int], Any]]:
    client = await _ours_client(url)
    await client.__aenter__()
    rec = client.event_recorder(tracking_id=TRACKING_ID, flush_interval=3600.0)
    await rec.__aenter__()
    build = _event_factory()
    await _warm_up(rec, build)
    return client, rec, build


async def _recins_run(rec: Any, build: Callable[[int], Any], events: int) -> None:
    await _produce(rec, build, [], events, float("inf"), 4000)
    await asyncio.wait_for(rec.flush(), FLUSH_TIMEOUT)


def _recins_section(loop: asyncio.AbstractEventLoop, rec: Any, build: Callable[[int], Any], events: int) -> None:
    """The counted part of ``recins``: recording ``events`` events and the flush that sends the last ones."""
    loop.run_until_complete(_recins_run(rec, build, events))


def recins(args: dict[str, str]) -> dict[str, Any]:
    """The recorder's instruction-count mode (see the module docstring)."""
    import gc

    events = int(args.get("events", "10000"))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        client, rec, build = loop.run_until_complete(_recins_open(args["url"]))
        before = rec.stats
        gc.collect()
        cpu0 = time.process_time()
        if args.get("callgrind") == "1":
            _counted(_recins_section, loop, rec, build, events)
        else:
            _recins_section(loop, rec, build, events)
        cpu = time.process_time() - cpu0
        after = rec.stats
        loop.run_until_complete(rec.__aexit__(None, None, None))
        loop.run_until_complete(client.__aexit__(None, None, None))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return {
        "mode": "recins",
        "events": events,
        "sent": _stat(after, "sent") - _stat(before, "sent"),
        "retried": _stat(after, "retried") - _stat(before, "retried"),
        "cpu_us_per_event": 1e6 * cpu / events,
    }


MODES: dict[str, Callable[[dict[str, str]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "first": first,
    "recorder": recorder,
    "recmem": recmem,
    "recmicro": recmicro,
}


SYNC_MODES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {"throughput": throughput, "recins": recins}
"""The modes that run their own event loop (their counted section is synchronous)."""


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    """``MODE key=value ...`` to (mode, {key: value})."""
    if not argv or (argv[0] not in MODES and argv[0] not in SYNC_MODES):
        raise SystemExit(f"usage: worker.py {{{'|'.join([*SYNC_MODES, *MODES])}}} key=value ...")
    pairs = {}
    for item in argv[1:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {item!r}")
        pairs[key] = value
    return argv[0], pairs


def main(argv: list[str] | None = None) -> int:
    """Run one mode and print ``RESULT {json}``."""
    mode, args = parse(sys.argv[1:] if argv is None else argv)
    try:
        result = SYNC_MODES[mode](args) if mode in SYNC_MODES else asyncio.run(MODES[mode](args))
    except KeyboardInterrupt:
        return 130
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
