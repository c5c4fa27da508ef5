"""The SQLite spool's segment format: encode and decode cost per event, today's JSON rows against the pickles
of the earlier release (format 1, still read).

``python -m benchmarks.segments [--events N] [--reps R]`` builds ``N`` events as
the recorder holds them (properties, an impression on every other one),
and times, per event, with ``perf_counter_ns`` over whole segments of 100:
``encode`` (what the loop does at each tick: the format-2 ``segment_body``
against format 1's ``pickle.dumps`` of the same tuples) and ``decode``
(what the writer does when reading back: ``segment_events``, which checks
each row and builds the ``Event``, on rows of each format). Medians of
``R`` repetitions; one process, interleaved, so the two formats share the
machine's state. Also prints the bytes per event of each format.
"""

from __future__ import annotations

import argparse
import json
import operator
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiopersonalize_events import Event
from aiopersonalize_events.spool.sqlite._segments import segment_body, segment_events

_FIELDS = (
    "event_type",
    "sent_at",
    "event_id",
    "event_value",
    "item_id",
    "properties",
    "recommendation_id",
    "impression",
    "metric_attribution",
)
_members = operator.attrgetter(*_FIELDS)


def _format_1(events: list[tuple[Event, str, str | None]]) -> bytes:
    """The earlier release's encoder (a pickle of plain tuples), for comparison."""
    rows = [(_members(e), s, u) for e, s, u in events]
    return pickle.dumps((1, rows), protocol=5)


def _events(n: int) -> list[tuple[Event, str, str | None]]:
    out = []
    for i in range(n):
        event = Event(
            event_type="click",
            sent_at=1_700_000_000 + i / 7,
            event_id=f"0123456789abcdef-{i}",
            item_id=f"item-{i % 977}",
            properties={"device": "phone", "price": 9.5, "n": i},
            impression=[f"item-{j}" for j in range(i % 2 * 5)] or None,
        )
        out.append((event, f"session-{i % 64}", "user-1" if i % 3 else None))
    return out


def _per_event(fn: Callable[[], Any], events: int, reps: int) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / events)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    """Print encode/decode ns per event for both formats, and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    events = _events(args.events)
    chunks = [events[i : i + 100] for i in range(0, len(events), 100)]
    new_bodies = [segment_body(c) for c in chunks]
    old_bodies = [_format_1(c) for c in chunks]
    assert [len(segment_events(b)) for b in old_bodies] == [len(c) for c in chunks]
    result: dict[str, float] = {}
    for _ in range(2):  # interleaved: new, old, new, old
        for name, fn in (
            ("encode_json", lambda: [segment_body(c) for c in chunks]),
            ("encode_pickle", lambda: [_format_1(c) for c in chunks]),
            ("decode_json", lambda: [segment_events(b) for b in new_bodies]),
            ("decode_pickle", lambda: [segment_events(b) for b in old_bodies]),
        ):
            result[name] = min(result.get(name, float("inf")), _per_event(fn, len(events), args.reps))
    result["bytes_json"] = sum(map(len, new_bodies)) / len(events)
    result["bytes_pickle"] = sum(map(len, old_bodies)) / len(events)
    result["encode_ratio"] = result["encode_json"] / result["encode_pickle"]
    result["decode_ratio"] = result["decode_json"] / result["decode_pickle"]
    print(json.dumps({k: round(v, 2) for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
