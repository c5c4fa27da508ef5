"""Smoke tests of the benchmark harness (``benchmarks/``) at a tiny size, so it does not rot.

They check that the pieces work and that what the stub received matches
what the clients say they sent; they never assert anything about speed.
The aiobotocore client is skipped when aiobotocore is not installed, the
recorder checks while ``client.event_recorder`` does not exist, and the real
callgrind run while valgrind is not installed (its parser is still checked on
output captured from a real run).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import hotpath, instructions, report, run  # noqa: E402
from benchmarks.procs import Stub, WorkerSkipped, child_env, run_worker  # noqa: E402

THROUGHPUT_KEYS = {
    "calls",
    "errors",
    "events",
    "wall_s",
    "cpu_s",
    "calls_per_s",
    "events_per_s",
    "cpu_s_per_1000_calls",
    "p50_ms",
    "p99_ms",
    "max_rss_kb",
    "warmup_calls",
}


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    with Stub("raw") as server:
        yield server


def _read_answers(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    answers: list[bytes] = []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, "the stub closed the connection early"
        data += chunk
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                break
            head = data[:end]
            if head.startswith(b"HTTP/1.1 100"):
                data = data[end + 4 :]
                continue
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(data) < end + 4 + length:
                break
            answers.append(data[: end + 4 + length])
            data = data[end + 4 + length :]
    return answers


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def test_stub_answers_pipelined_and_split_requests(stub: Stub) -> None:
    """Two requests in one write and one whose body comes in pieces each get a 200 {} answer, in order."""
    before = stub.stats()
    body = b'{"eventList":[{"eventType":"click"},{"eventType":"view"}]}'
    with socket.create_connection(("127.0.0.1", stub.port), timeout=10) as sock:
        sock.sendall(_post(body) + _post(body))
        third = _post(body)
        sock.sendall(third[:30])
        sock.sendall(third[30:-10])
        sock.sendall(third[-10:])
        answers = _read_answers(sock, 3)
    after = stub.stats()
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and a.endswith(b"\r\n\r\n{}") for a in answers)
    assert all(b"x-amzn-RequestId: " in a for a in answers)
    assert len({a.split(b"x-amzn-RequestId: ")[1].split(b"\r\n")[0] for a in answers}) == 3
    assert after["requests"] - before["requests"] == 3
    assert after["events"] - before["events"] == 6
    assert after["body_bytes"] - before["body_bytes"] == 3 * len(body)


def test_stub_handles_chunked_bodies_and_expect_continue(stub: Stub) -> None:
    """A chunked body is read to its end, and Expect: 100-continue gets its interim answer first."""
    before = stub.stats()
    chunked = (
        b"POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'C\r\n{"eventType"\r\n9\r\n:"click"}\r\n0\r\n\r\n'
    )
    body = b'{"eventType":"click"}'
    with socket.create_connection(("127.0.0.1", stub.port), timeout=10) as sock:
        sock.sendall(chunked)
        assert len(_read_answers(sock, 1)) == 1
        head = _post(body, b"Expect: 100-continue\r\n")
        sock.sendall(head[: -len(body)])
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert len(_read_answers(sock, 1)) == 1
    after = stub.stats()
    assert after["requests"] - before["requests"] == 2
    assert after["events"] - before["events"] == 2


@pytest.mark.parametrize("workload", ["user", "prebuilt"])
@pytest.mark.parametrize("client", ["floor", "ours", "aiobotocore"])
def test_throughput_worker_makes_exactly_the_calls_it_reports(stub: Stub, client: str, workload: str) -> None:
    """Each client and workload, 20 timed calls at c=2 after 4 warm-up: the stub sees 24 requests of 10 events."""
    if client == "aiobotocore":
        pytest.importorskip("aiobotocore", reason="aiobotocore is optional; the harness skips it too")
    before = stub.stats()
    params = {
        "client": client,
        "workload": workload,
        "url": stub.url,
        "concurrency": 2,
        "duration": 60,
        "max_calls": 20,
        "warmup": 4,
    }
    result = run_worker("throughput", params, timeout=60)
    after = stub.stats()
    assert result.keys() >= THROUGHPUT_KEYS | {"cpu_us_per_call", "workload"}
    assert (result["calls"], result["errors"], result["warmup_calls"]) == (20, 0, 4)
    assert result["workload"] == workload
    assert after["requests"] - before["requests"] == 24
    assert after["events"] - before["events"] == 240
    summary = report.summarise_throughput([{**result, "label": client, "rep": 0}], [client], [2], ["user", "prebuilt"])
    assert [(row["workload"], row["label"]) for row in summary] == [(workload, client)]
    assert summary[0]["calls_per_s"] == result["calls_per_s"]


def test_floor_signs_each_user_call_with_sigv4() -> None:
    """The user-workload floor signs like SigV4 over the body's hash: a fresh date and signature per body."""
    from benchmarks.worker import ACCESS_KEY, FloorSigner

    signer = FloorSigner("127.0.0.1:8000", "/events")
    first = signer.sigv4_headers(b'{"a":1}', 1764115200.0)
    again = signer.sigv4_headers(b'{"a":1}', 1764115200.0)
    other = signer.sigv4_headers(b'{"a":2}', 1764115200.0)
    assert first == again
    assert first["x-amz-date"] == "20251126T000000Z"
    assert first["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20251126/us-east-1/")
    assert first["Authorization"] != other["Authorization"]
    assert first["x-amz-content-sha256"] != other["x-amz-content-sha256"]


def test_in_place_sampler_sees_the_stages_of_a_real_run(stub: Stub) -> None:
    """The worker's SIGPROF sampler records the timed section, and the stage rules find the user code and signing."""
    profile = hotpath.profile_in_place(stub.url, child_env(), "ours", "user", duration=0.6, method="sigprof")
    assert profile["samples"] > 0
    stages = {s["stage"]: s for s in profile["stages"]}
    assert list(stages) == list(hotpath.STAGE_ORDER)
    assert sum(s["samples"] for s in stages.values()) == profile["samples"]
    assert abs(sum(s["us_per_call"] for s in stages.values()) - profile["cpu_us_per_call"]) < 1e-6
    assert profile["worker"]["errors"] == 0


def test_first_call_worker_reports_its_phases(stub: Stub) -> None:
    """The first-call mode makes one request and reports the time since the parent started it."""
    import time

    before = stub.stats()
    params = {"client": "ours", "workload": "user", "url": stub.url, "t0": repr(time.monotonic())}
    result = run_worker("first", params, timeout=60)
    after = stub.stats()
    assert after["requests"] - before["requests"] == 1
    assert result["since_spawn_s"] >= result["client_setup_s"] + result["first_call_s"]


def test_recorder_workers_deliver_every_event(stub: Stub) -> None:
    """The recorder modes: every recorded event reaches the stub, none dropped; the micro and memory modes report."""
    before = stub.stats()
    params: dict[str, Any] = {"url": stub.url, "duration": 0.2, "max_events": 300, "prebuilt": 0}
    try:
        result = run_worker("recorder", params, timeout=90)
    except WorkerSkipped as exc:
        pytest.skip(str(exc))
    after = stub.stats()
    assert result["dropped"] == result["failed"] == result["pending"] == 0
    assert result["sent"] == result["recorded"]
    assert after["events"] - before["events"] == result["sent_total"]
    micro = run_worker("recmicro", {"url": stub.url, "events": 50, "repeats": 2}, timeout=90)
    assert micro["record_us"] > 0
    assert micro["dropped"] == 0
    memory = run_worker("recmem", {"url": stub.url, "events": 200}, timeout=90)
    assert memory["pending_when_measured"] == 200
    assert memory["bytes_per_queued_event"] > 0


def test_recorder_instruction_mode_sends_its_events_in_calls_of_ten(stub: Stub) -> None:
    """``recins`` (the recorder's callgrind mode, run here without valgrind): 640 events, 64 sessions, 64 calls."""
    before = stub.stats()
    result = run_worker("recins", {"url": stub.url, "events": 640}, timeout=90)
    after = stub.stats()
    assert (result["sent"], result["retried"]) == (640, 0)
    assert after["events"] - before["events"] == 640 + 2000  # the warm-up's events, then the counted ones
    # 2,000 warm-up events over 64 sessions: 31 full calls and a flush of the rest per session, then 640 in 64 calls
    assert after["requests"] - before["requests"] - 64 == sum(-(-n // 10) for n in _per_session(2000, 64))


def _per_session(events: int, sessions: int) -> list[int]:
    return [events // sessions + (1 if i < events % sessions else 0) for i in range(sessions)]


def test_report_pieces_on_synthetic_input() -> None:
    """Paired ratios, target verdicts, the py-spy summary and the import-trace parser work on known input."""
    runs = [
        {"label": "ours", "rep": 0, "concurrency": 16, "cpu_s_per_1000_calls": 0.3},
        {"label": "floor", "rep": 0, "concurrency": 16, "cpu_s_per_1000_calls": 0.2},
        {"label": "ours", "rep": 1, "concurrency": 16, "cpu_s_per_1000_calls": 0.4},
        {"label": "floor", "rep": 1, "concurrency": 16, "cpu_s_per_1000_calls": 0.2},
    ]
    assert report.paired_ratio(runs, "cpu_s_per_1000_calls", "ours", "floor", {"concurrency": 16}) == 1.75
    # a second workload in the same runs is paired within itself only
    both = [{**r, "workload": "user"} for r in runs] + [
        {**r, "workload": "prebuilt", "cpu_s_per_1000_calls": 0.1 if r["label"] == "floor" else 0.3} for r in runs
    ]
    summary = report.summarise_throughput(both, ["ours", "floor"], [16], ["user", "prebuilt"])
    ratios = {(row["workload"], row["label"]): row["cpu_vs_floor"] for row in summary}
    assert ratios == pytest.approx(
        {("user", "ours"): 1.75, ("user", "floor"): 1.0, ("prebuilt", "ours"): 3.0, ("prebuilt", "floor"): 1.0}
    )
    verdicts = {t["key"]: t["met"] for t in report.targets({"cpu_c16": 1.75, "calls_c64": 3.9, "record_us": 2.0})}
    assert verdicts["cpu_c16"] is True  # the limit is 1.8x
    assert verdicts["calls_c64"] is False  # 4x wanted
    assert verdicts["record_us"] is True
    assert verdicts["import"] is None
    raw = (
        "main (benchmarks/worker.py:1);put_events (aiopersonalize_events/_client.py:9);encode (json/encoder.py:3) 30\n"
    )
    raw += "main (benchmarks/worker.py:1);write (asyncio/selector_events.py:5) 70\n"
    functions = hotpath.summarise_pyspy(raw, cpu_us_per_call=200.0)
    by_package = {r["name"]: r["us_per_call"] for r in functions["own_by_package"]}
    assert by_package == {"asyncio": 140.0, "json": 60.0}
    assert functions["inclusive_ours"][0]["us_per_call"] == 60.0
    trace = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |     platform",
            "import time:       200 |        200 |     aiopersonalize_events._shapes",
            "import time:        50 |        350 |   aiopersonalize_events",
        ]
    )
    added = run._import_trace_after_deps(trace)
    assert added["total_ms"] == 0.35
    assert [e["module"] for e in added["top_self_ms"]] == [
        "aiopersonalize_events._shapes",
        "platform",
        "aiopersonalize_events",
    ]


def test_dependency_bound_on_synthetic_input() -> None:
    """The start-up bound the dependencies set: their import beyond aiohttp's, over the floor's best start."""
    imports = {"best_s": {"its four dependencies": 0.080, "aiohttp alone": 0.045}}
    first = {"best": {"floor": {"since_spawn_s": 0.175}, "ours": {"since_spawn_s": 0.240}}}
    bound = report.dependency_bound(imports, first)
    assert bound == pytest.approx({"extra_s": 0.035, "floor_s": 0.175, "ratio": 1.2})
    assert report.dependency_bound(imports, None) is None
    assert report.dependency_bound({"best_s": {"aiohttp alone": 0.045}}, first) is None


def test_stage_rules_on_synthetic_stacks() -> None:
    """Only the timed section counts; the outermost matching frame under the user's call decides the stage."""
    head = "<module> (worker.py:1);throughput (worker.py:9);_timed_section (worker.py:5);_run (asyncio/events.py:78)"
    call = head + ";_Drive.task (benchmarks/worker.py:3);make_ours.<locals>.user_call (benchmarks/worker.py:4)"
    raw = "\n".join(
        [
            "<module> (worker.py:1);import_stuff (aiohttp/__init__.py:1) 50",  # start-up: not counted
            call + ";make_ours.<locals>.build_events (benchmarks/worker.py:2);"
            "__init__ (<attrs generated methods aiopersonalize_events._shapes.Event>:1);"
            "dumps (aiopersonalize_events/_json.py:79) 4",
            call + ";PersonalizeEventsClient.put_events (aiopersonalize_events/_client.py:1);"
            "__init__ (<attrs generated methods aiopersonalize_events._shapes.PutEventsRequest>:1) 1",
            call + ";put_events (aiopersonalize_events/_client.py:1);to_wire (aiopersonalize_events/serde.py:1);"
            "unstructure_PutEventsRequest (<cattrs generated unstructure aiopersonalize_events._shapes.X>:1) 1",
            call + ";put_events (aiopersonalize_events/_client.py:1);_send (aiopersonalize_events/_client.py:2);"
            "Signer.headers (aiopersonalize_events/_signing.py:1);digest (hmac.py:1) 2",
            call + ";put_events (aiopersonalize_events/_client.py:1);_send (aiopersonalize_events/_client.py:2);"
            "ClientSession._request (aiohttp/client.py:1);write (asyncio/selector_events.py:1) 3",
            call + ";put_events (aiopersonalize_events/_client.py:1) 1",
            head + ";write_bytes (aiohttp/client_reqrep.py:1);write (asyncio/selector_events.py:1) 2",
            head + ";_read_ready (asyncio/selector_events.py:1) 4",
            head + ";_Drive.task (benchmarks/worker.py:3) 2",
        ]
    )
    costs = hotpath.stage_costs(raw, cpu_us_per_call=200.0)
    assert costs["samples"] == 20
    us = {s["stage"]: s["us_per_call"] for s in costs["stages"]}
    assert us == {
        "build the 10 events (user code)": 40.0,
        "to_wire + JSON body": 10.0,
        "request build (shape, validation)": 10.0,
        "signing": 20.0,
        "HTTP: aiohttp under the call": 30.0,
        hotpath.OTHER_CALL: 10.0,
        hotpath.HTTP_OUTSIDE: 20.0,
        hotpath.LOOP: 40.0,
        hotpath.HARNESS: 20.0,
    }
    floor = "_timed_section (worker.py:5);make_floor.<locals>.user_call (benchmarks/worker.py:4);"
    assert hotpath.classify((floor + "make_floor.<locals>.encode_body (benchmarks/worker.py:2)").split(";")) == (
        "to_wire + JSON body"
    )
    assert hotpath.classify((floor + "FloorSigner.sigv4_headers (benchmarks/worker.py:2)").split(";")) == "signing"


# The head and tail of a real callgrind output file and valgrind's stderr, from
# `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_operator_call
# python -c "import operator; operator.call(sum, range(1000))"` (valgrind 3.19.0, CPython 3.11.7).
CAPTURED_CALLGRIND_OUT = "\n".join(
    [
        "# callgrind format",
        "version: 1",
        "creator: callgrind-3.19.0",
        "pid: 19051",
        "cmd:  /work/main/.venv/bin/python -c import operator; operator.call(sum, range(1000))",
        "part: 1",
        "",
        "",
        "desc: I1 cache: ",
        "desc: D1 cache: ",
        "desc: LL cache: ",
        "",
        "desc: Timerange: Basic block 0 - 20468285",
        "desc: Trigger: Program termination",
        "",
        "positions: line",
        "events: Ir",
        "summary: 151334",
        "",
        "",
        "ob=(10) /root/.pyenv/versions/3.11.7/lib/python3.11/lib-dynload/math.cpython-311-x86_64-linux-gnu.so",
        "fn=(35448) math_ceil",
        "1217 2400",
        "+3 1800",
        "",
        "totals: 151334",
        "",
    ]
)
CAPTURED_CALLGRIND_STDERR = "\n".join(
    [
        "==19051== Callgrind, a call-graph generating cache profiler",
        "==19051== Copyright (C) 2002-2017, and GNU GPL'd, by Josef Weidendorfer et al.",
        "==19051== Using Valgrind-3.19.0 and LibVEX; rerun with -h for copyright info",
        "==19051== Command: /work/main/.venv/bin/python -c import\\ operator;\\ operator.call(sum,\\ range(1000))",
        "==19051== ",
        "==19051== For interactive control, run 'callgrind_control -h'.",
        "==19051== ",
        "==19051== Events    : Ir",
        "==19051== Collected : 151334",
        "==19051== ",
        "==19051== I   refs:      151,334",
        "",
    ]
)


def test_callgrind_parser_on_captured_output() -> None:
    """The instruction-count parser reads the totals of a real callgrind output file and of valgrind's stderr."""
    assert instructions.parse_callgrind(CAPTURED_CALLGRIND_OUT) == {"Ir": 151334}
    assert instructions.parse_callgrind_stderr(CAPTURED_CALLGRIND_STDERR) == 151334
    without_summary = CAPTURED_CALLGRIND_OUT.replace("summary: 151334\n", "")
    assert instructions.parse_callgrind(without_summary) == {"Ir": 151334}
    with pytest.raises(ValueError, match="not a callgrind output file"):
        instructions.parse_callgrind("hello\n")
    assert instructions.parse_callgrind_stderr("no valgrind here") is None


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_only_inside_the_counting_switch(tmp_path: Path) -> None:
    """A real small callgrind run: the toggle counts only the switch's work (operator.call; sys.call_tracing on 3.10),
    and both readings agree."""
    counts = []
    for n in (1_000, 100_000):
        out = tmp_path / f"callgrind-{n}.out"
        if sys.version_info >= (3, 11):
            code = f"import operator; sum(range(200_000)); operator.call(sum, range({n}))"
        else:
            code = f"import sys; sum(range(200_000)); sys.call_tracing(sum, (range({n}),))"
        proc = subprocess.run(
            [*instructions.callgrind_argv(out), sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        ir = instructions.parse_callgrind(out.read_text())["Ir"]
        assert instructions.parse_callgrind_stderr(proc.stderr) == ir
        counts.append(ir)
    small, large = counts
    assert 0 < small < large
    assert small < 2_000_000  # the uncounted sum over 200,000 numbers alone would be more
