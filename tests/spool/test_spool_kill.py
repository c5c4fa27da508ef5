"""The kill test: a recorder on an SQLite spool, killed with SIGKILL again and again, loses nothing it accepted.

A child process records events (``record()``, and now and then ``await
put()``) into an ``SqliteSpool`` and sends them to the emulator, which runs
in a process of its own with faults injected (throttling, 5xx, dropped
connections, latency). The test kills the child with SIGKILL at a random
moment, starts it again on the same file, and so on; a last child then
drains the file and closes normally. At the end, every event that ``put()``
acknowledged, and every event ``record()`` accepted that was durable when
the child was killed (in the file, or already stored by the emulator), is
stored by the emulator exactly once (it de-duplicates by ``eventId``; the
resent ones are reported). Which accepted events were durable is read from
the file after each kill, not guessed from the clock: under load the writer
may commit later than ``commit_interval``, and a test that decided by
elapsed time would be red for nothing; how many were accepted earlier than
``commit_interval`` before the kill and not yet durable is reported. Everything
is on 127.0.0.1. The default run makes 22 kills in well under a minute;
``-m slow`` runs a longer soak.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiopersonalize_events.spool.sqlite._segments import segment_events

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
TRACKER = "tracker-kill"
COMMIT_INTERVAL = 0.05

_CHILD = textwrap.dedent(
    """
    import asyncio, random, sys, time
    from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient, SqliteSpool

    url, path, prefix, seed, mode, interval = sys.argv[1:7]
    interval = float(interval)

    async def main():
        config = ClientConfig(max_attempts=2, retry_budget=1_000_000, backoff_max=0.2, read_timeout=2)
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=url, credentials=Credentials("AKIDKILL", "kill-secret"), config=config
        ) as client:
            spool = SqliteSpool(path, commit_interval=interval)
            recorder = client.event_recorder(tracking_id="tracker-kill", spool=spool, flush_interval=0.05)
            async with recorder:
                out = sys.stdout
                out.write("READY\\n")
                out.flush()
                if mode == "drain":
                    await recorder.flush()
                else:
                    rng = random.Random(int(seed))
                    i = 0
                    while True:
                        event_id = f"{prefix}-{i}"
                        event = Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i % 50}",
                                      event_id=event_id)
                        session = f"session-{rng.randrange(13)}"
                        if rng.random() < 0.1:
                            await recorder.put(event, session_id=session)
                            out.write(f"P {event_id}\\n")
                        elif recorder.record(event, session_id=session):
                            out.write(f"R {event_id} {time.time()!r}\\n")
                        i += 1
                        if i % 10 == 0:
                            out.flush()
                            await asyncio.sleep(0.003)
            s = recorder.stats
            out.write(f"STATS {s.recorded} {s.sent} {s.failed} {s.dropped} {s.pending} {s.recovered}\\n")
            out.flush()

    asyncio.run(main())
    """
)


class _Child:
    """One run of the child, its output read by a thread as it comes."""

    def __init__(self, url: str, path: Path, prefix: str, seed: int, mode: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        args = [sys.executable, "-c", _CHILD, url, str(path), prefix, str(seed), mode, str(COMMIT_INTERVAL)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line == "READY\n":
                self.ready.set()
            self.lines.append(line.rstrip("\n"))
        self.ready.set()

    def finish(self, timeout: float = 60) -> str:
        """Wait for the end of the process and its output; returns its standard error."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return err


@pytest.fixture
def emulator_process() -> Iterator[str]:
    """The emulator in its own process, with faults: 5% throttled, 5% 5xx, 3% dropped, 2 ms latency."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiopersonalize_events.emulator",
            "--port",
            "0",
            "--quiet",
            "--throttle",
            "0.05",
            "--server-error",
            "0.05",
            "--disconnect",
            "0.03",
            "--latency",
            "0.002",
            "--seed",
            "13",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:  # loopback only
        return json.load(answer)


def _stored(url: str) -> Counter[str]:
    """How many times the emulator stored each event id."""
    return Counter(e["eventId"] for e in _get(f"{url}/_emulator/records/events?trackingId={TRACKER}"))


def _durable(url: str, path: Path) -> set[str]:
    """The event ids that survive the kill just made: those in the file's segments, and those already stored."""
    on_disk: set[str] = set()
    conn = sqlite3.connect(path)
    try:
        for (body,) in conn.execute("SELECT body FROM segments"):
            on_disk.update(event.event_id for event, _, _ in segment_events(bytes(body)) if event is not None)
    finally:
        conn.close()
    return on_disk | set(_stored(url))


def _kill_run(url: str, path: Path, kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    acknowledged: set[str] = set()  # put() returned
    must_be_stored: set[str] = set()  # record() returned, and the event was durable when the child was killed
    produced: set[str] = set()
    recent = 0  # accepted within commit_interval of a kill
    late = 0  # accepted earlier than commit_interval before a kill, and not durable at the kill (reported)
    started = time.monotonic()
    for run in range(kills):
        child = _Child(url, path, f"r{run}", rng.randrange(1 << 30), "record")
        assert child.ready.wait(30), "the child did not start"
        time.sleep(rng.uniform(0.1, 1.0))
        killed_at = time.time()
        child.proc.kill()
        err = child.finish()
        assert child.proc.returncode == -9, err[-3000:]
        durable = _durable(url, path)
        for line in child.lines:
            kind, _, rest = line.partition(" ")
            if kind == "P":
                acknowledged.add(rest)
                produced.add(rest)
            elif kind == "R":
                event_id, _, at = rest.partition(" ")
                produced.add(event_id)
                if event_id in durable:
                    must_be_stored.add(event_id)
                if float(at) >= killed_at - COMMIT_INTERVAL:
                    recent += 1
                elif event_id not in durable:
                    late += 1
    drain = _Child(url, path, "drain", 0, "drain")
    err = drain.finish(timeout=120)
    assert drain.proc.returncode == 0, err[-3000:]
    stats = [line for line in drain.lines if line.startswith("STATS ")]
    assert stats, err[-3000:]
    recorded, sent, failed, dropped, pending, recovered = map(int, stats[0].split()[1:])
    stored = _stored(url)
    calls = _get(f"{url}/_emulator/calls")
    faulted = sum(c["count"] for c in calls["calls"] if c["operation"] == "PutEvents" and c["status"] != 200)
    return {
        "kills": kills,
        "seconds": time.monotonic() - started,
        "produced": len(produced),
        "acknowledged_by_put": len(acknowledged),
        "accepted_and_durable_at_a_kill": len(must_be_stored),
        "accepted_within_interval_of_a_kill": recent,
        "accepted_earlier_and_not_yet_durable": late,
        "stored": len(stored),
        "stored_more_than_once": sum(1 for n in stored.values() if n > 1),
        "resent": calls["duplicates"],
        "faulted_calls": faulted,
        "drain": {"recorded": recorded, "sent": sent, "failed": failed, "dropped": dropped, "pending": pending},
        "drain_recovered": recovered,
        "missing_acknowledged": sorted(acknowledged - set(stored)),
        "missing_accepted": sorted(must_be_stored - set(stored)),
        "unknown_stored": sorted(set(stored) - produced - {""})[:5],
    }


def _check(report: dict[str, Any]) -> None:
    print("\nkill test:", json.dumps({k: v for k, v in report.items() if not k.startswith(("missing", "unknown"))}))
    assert report["missing_acknowledged"] == []
    assert report["missing_accepted"] == []
    assert report["stored_more_than_once"] == 0
    assert report["acknowledged_by_put"] > 0
    assert report["accepted_and_durable_at_a_kill"] > 1000
    assert report["faulted_calls"] > 0
    assert report["drain"]["failed"] == 0
    assert report["drain"]["pending"] == 0


def test_a_recorder_killed_22_times_loses_nothing_it_accepted(emulator_process: str, tmp_path: Path) -> None:
    """22 SIGKILLs at random points: every event put() acknowledged, and every event record() accepted that was
    durable at its kill (in the file or stored), is stored by the emulator exactly once."""
    _check(_kill_run(emulator_process, tmp_path / "events.db", kills=22, seed=2026))


@pytest.mark.slow
def test_soak_a_recorder_killed_100_times_loses_nothing_it_accepted(emulator_process: str, tmp_path: Path) -> None:
    """The same, 100 kills (a few minutes)."""
    _check(_kill_run(emulator_process, tmp_path / "events.db", kills=100, seed=7))
