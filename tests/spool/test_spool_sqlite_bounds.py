"""max_events across processes: several processes on one SQLite spool file never hold more than the bound.

Four real processes record into one file with the service away (nothing
is sent, so everything accepted has to be kept), applying the recorder's
drop-newest rule (``full()`` first, as the recorder asks it); the test
counts the rows in the file while they run and after they closed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
LIMIT = 50
PROCESSES = 4

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, {root!r})
    from aiopersonalize_events import Event, SpoolError, SqliteSpool

    class Listener:
        lost = 0
        def spool_ready(self): pass
        def spool_recovered(self, count): pass
        def spool_lost(self, events, error): Listener.lost += len(events)

    async def main(db, tag):
        spool = SqliteSpool(db, max_events={limit}, commit_interval=0.01)
        await spool.open(Listener(), tracking_id="t")
        accepted = dropped = 0
        for i in range(100):
            if spool.full():
                dropped += 1
            else:
                spool.append(Event(event_type="c", sent_at=1_700_000_000, event_id=f"{{tag}}-{{i}}"), "s", None)
                accepted += 1
            if i % 5 == 4:
                try:
                    await spool.sync()
                except SpoolError:
                    pass  # at the bound: the events wait in memory, put() would raise
        await spool.close()
        print("RESULT", json.dumps({{"accepted": accepted, "dropped": dropped, "lost": Listener.lost}}))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _held(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute("SELECT coalesce(sum(count), 0) FROM segments").fetchone()[0])
    except sqlite3.OperationalError:  # not made yet
        return 0
    finally:
        conn.close()


def test_processes_sharing_a_file_never_hold_more_than_max_events(tmp_path: Path) -> None:
    """Four processes, max_events=50, 100 events each, nothing sent: the file never holds more than 50 pending
    events (sampled while they run, and after), and every event accepted is in the file or reported lost."""
    db = tmp_path / "events.db"
    sqlite3.connect(db).close()  # an empty file: the first spool makes its tables
    script = WORKER.format(root=str(ROOT), limit=LIMIT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _held(db))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(db), f"p{n}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(PROCESSES)
        ]
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        done.set()
        sampler.join()
    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        results.append(json.loads(out.split("RESULT ", 1)[1]))
    held = _held(db)
    assert max(peak, held) <= LIMIT
    assert held == sum(r["accepted"] - r["lost"] for r in results)
    assert sum(r["accepted"] + r["dropped"] for r in results) == PROCESSES * 100
