"""Smoke tests of the benchmark harness (``benchmarks/``) at a tiny size, so it does not rot.

They check that the pieces work and that what the stub received matches
what the clients say they sent; they never assert anything about speed.
The aiobotocore client is skipped when aiobotocore is not installed, and the
recorder checks are skipped while ``client.event_recorder`` does not exist.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import hotpath, report, run  # noqa: E402
from benchmarks.procs import Stub, WorkerSkipped, run_worker  # noqa: E402

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


@pytest.mark.parametrize("client", ["floor", "ours", "aiobotocore"])
def test_throughput_worker_makes_exactly_the_calls_it_reports(stub: Stub, client: str) -> None:
    """Each client, 20 timed calls at c=2 after 4 warm-up calls: the stub sees 24 requests of 10 events."""
    if client == "aiobotocore":
        pytest.importorskip("aiobotocore", reason="aiobotocore is optional; the harness skips it too")
    before = stub.stats()
    params = {"client": client, "url": stub.url, "concurrency": 2, "duration": 60, "max_calls": 20, "warmup": 4}
    result = run_worker("throughput", params, timeout=60)
    after = stub.stats()
    assert result.keys() >= THROUGHPUT_KEYS
    assert (result["calls"], result["errors"], result["warmup_calls"]) == (20, 0, 4)
    assert after["requests"] - before["requests"] == 24
    assert after["events"] - before["events"] == 240
    summary = report.summarise_throughput([{**result, "label": client, "rep": 0}], [client], [2])
    assert summary[0]["label"] == client
    assert summary[0]["calls_per_s"] == result["calls_per_s"]


def test_first_call_worker_reports_its_phases(stub: Stub) -> None:
    """The first-call mode makes one request and reports the time since the parent started it."""
    import time

    before = stub.stats()
    result = run_worker("first", {"client": "ours", "url": stub.url, "t0": repr(time.monotonic())}, timeout=60)
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


def test_report_pieces_on_synthetic_input() -> None:
    """Paired ratios, target verdicts, the py-spy summary and the import-trace parser work on known input."""
    runs = [
        {"label": "ours", "rep": 0, "concurrency": 16, "cpu_s_per_1000_calls": 0.3},
        {"label": "floor", "rep": 0, "concurrency": 16, "cpu_s_per_1000_calls": 0.2},
        {"label": "ours", "rep": 1, "concurrency": 16, "cpu_s_per_1000_calls": 0.4},
        {"label": "floor", "rep": 1, "concurrency": 16, "cpu_s_per_1000_calls": 0.2},
    ]
    assert report.paired_ratio(runs, "cpu_s_per_1000_calls", "ours", "floor", {"concurrency": 16}) == 1.75
    verdicts = {t["key"]: t["met"] for t in report.targets({"cpu_c16": 1.75, "record_us": 2.0})}
    assert verdicts["cpu_c16"] is False
    assert verdicts["record_us"] is True
    assert verdicts["import"] is None
    raw = (
        "main (benchmarks/worker.py:1);put_events (aiopersonalize_events/_client.py:9);encode (json/encoder.py:3) 30\n"
    )
    raw += "main (benchmarks/worker.py:1);write (asyncio/selector_events.py:5) 70\n"
    summary = hotpath.summarise_pyspy(raw, cpu_us_per_call=200.0)
    by_package = {r["name"]: r["us_per_call"] for r in summary["own_by_package"]}
    assert by_package == {"asyncio": 140.0, "json": 60.0}
    assert summary["inclusive_ours"][0]["us_per_call"] == 60.0
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
