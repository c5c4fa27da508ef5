"""aiohttp.web: the client and an EventRecorder opened and closed by a ``cleanup_ctx``.

A ``cleanup_ctx`` generator runs its first half at startup and its second
half at cleanup, which is exactly the lifetime of a client and its recorder:
the handler records without awaiting AWS, and cleanup drains what is queued.

    python examples/aiohttp_app.py                 # against the built-in emulator, on 127.0.0.1:8080
    AWS_REGION=eu-west-1 python examples/aiohttp_app.py --aws --tracking-id YOUR-TRACKING-ID

    curl -X POST 127.0.0.1:8080/click -d '{"session_id": "s1", "user_id": "u1", "item_id": "sku-1"}'
    curl 127.0.0.1:8080/stats
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
from aiohttp import web

from aiopersonalize_events import Credentials, Event, EventRecorder, PersonalizeEventsClient, ValidationError
from aiopersonalize_events.emulator import Emulator

RECORDER = web.AppKey("recorder", EventRecorder)
EMULATOR = web.AppKey("emulator", Emulator)


def personalize_context(*, aws: bool, tracking_id: str) -> Any:
    """A ``cleanup_ctx`` that opens a client and recorder (and, without ``aws``, the emulator) for the app's life."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if aws:
                client = PersonalizeEventsClient()  # region from AWS_REGION, credentials from the default chain
            else:
                emulator = await stack.enter_async_context(Emulator())
                app[EMULATOR] = emulator
                client = PersonalizeEventsClient(
                    region="us-east-1",
                    endpoint_url=emulator.endpoint_url,
                    credentials=Credentials("AKIDEXAMPLE", "example-secret"),
                )
            await stack.enter_async_context(client)
            app[RECORDER] = await stack.enter_async_context(client.event_recorder(tracking_id=tracking_id))
            yield

    return context


async def click(request: web.Request) -> web.Response:
    """Record a click: ``{"session_id": ..., "item_id": ..., "user_id": ...}``; answers once it is queued."""
    try:
        body = await request.json()
        event = Event(event_type=body.get("event_type", "click"), sent_at=time.time(), item_id=body["item_id"])
        queued = request.app[RECORDER].record(event, session_id=body["session_id"], user_id=body.get("user_id"))
    except (ValueError, KeyError, AttributeError) as exc:  # bad JSON, a missing key, or ValidationError
        message = str(exc) if isinstance(exc, ValidationError) else f"bad request body ({type(exc).__name__})"
        return web.json_response({"detail": message}, status=422)
    return web.json_response({"queued": queued})


async def stats(request: web.Request) -> web.Response:
    """The recorder's counters."""
    return web.json_response(attrs.asdict(request.app[RECORDER].stats))


def create_app(*, aws: bool = False, tracking_id: str = "example-tracking-id") -> web.Application:
    """The app; without ``aws`` it also runs the built-in emulator (kept in ``app[EMULATOR]``)."""
    app = web.Application()
    app.cleanup_ctx.append(personalize_context(aws=aws, tracking_id=tracking_id))
    app.router.add_post("/click", click)
    app.router.add_get("/stats", stats)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the example app on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws", action="store_true", help="send to AWS (needs AWS_REGION) instead of the emulator")
    parser.add_argument("--tracking-id", default=os.environ.get("PERSONALIZE_TRACKING_ID", "example-tracking-id"))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.aws and not os.environ.get("AWS_REGION"):
        parser.error("--aws needs AWS_REGION set (and credentials the AWS SDKs would find)")
    web.run_app(create_app(aws=args.aws, tracking_id=args.tracking_id), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
