"""One app process of the fleet example: it records events into a Redis stream instead of sending them itself.

The recorder is the one every app uses (``client.event_recorder``), with a
``RedisStreamSpool``: ``record()`` stays synchronous, a background task
appends the events to the stream, and the forwarders (``aiopersonalize-events
forward``) send them to Personalize. The app needs no AWS credentials and
makes no call to AWS; its client is never called.

    python examples/fleet_app.py --redis redis://127.0.0.1:6379/0 --stream 'pe:{events:fleet-tracker}' \\
        --tracking-id fleet-tracker --events 2000 --name app-1

It records ``--events`` clicks of a few hundred sessions as fast as asked
(``--rate`` events per second, 0 for as fast as it can), closes the recorder
(which returns once Redis has every event), and prints its counters as one
JSON line. ``examples/fleet.py`` starts two of these.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.redis import RedisStreamSpool


async def record(redis_url: str, stream: str, tracking_id: str, events: int, rate: float, name: str) -> dict[str, int]:
    """Record ``events`` clicks through a Redis spool; return the recorder's counters once Redis has them all."""
    # the client is only the recorder's owner here: with a Redis spool, forwarders make the calls
    client = PersonalizeEventsClient(region="us-east-1", credentials=Credentials("AKIDFLEETAPP", "not-used"))
    spool = RedisStreamSpool(redis_url, stream=stream)
    pause = 1 / rate if rate else 0.0
    started = time.perf_counter()
    async with client, client.event_recorder(tracking_id=tracking_id, spool=spool) as recorder:
        for i in range(events):
            event = Event(event_type="click", sent_at=datetime.now(timezone.utc), item_id=f"sku-{i % 97}")
            recorder.record(event, session_id=f"{name}-session-{i % 300}", user_id=f"user-{i % 300}")
            if pause:
                await asyncio.sleep(pause)
            elif i % 1000 == 999:
                await asyncio.sleep(0)  # let the spool's writer run, as a web app's loop would
    stats = recorder.stats
    return {
        "recorded": stats.recorded,
        "in_redis": stats.sent,
        "failed": stats.failed,
        "dropped": stats.dropped,
        "elapsed_ms": round((time.perf_counter() - started) * 1000),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record events into a Redis stream (one app of the fleet).")
    parser.add_argument("--redis", required=True, metavar="URL", help="the Redis URL")
    parser.add_argument("--stream", required=True, help="the stream of the tracker's events")
    parser.add_argument("--tracking-id", required=True, help="the tracker (the forwarders send to it)")
    parser.add_argument("--events", type=int, default=1000, help="clicks to record (default: 1000)")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second, 0 for as fast as possible")
    parser.add_argument("--name", default="app", help="this app's name (in its session ids)")
    args = parser.parse_args(argv)
    stats = asyncio.run(record(args.redis, args.stream, args.tracking_id, args.events, args.rate, args.name))
    print(json.dumps({"app": args.name, **stats}), flush=True)
    return 0 if stats["recorded"] == stats["in_redis"] else 1


if __name__ == "__main__":
    sys.exit(main())
