"""aiohttp.web: the client and an EventRecorder opened and closed by a ``cleanup_ctx``.

A ``cleanup_ctx`` generator runs its first half at startup and its second
half at cleanup, which is exactly the lifetime of a client and its recorder:
the handler records without awaiting AWS, and cleanup drains what is queued.

    python examples/aiohttp_app.py                 # against the built-in emulator, on 127.0.0.1:8080
    python examples/aiohttp_app.py --endpoint-url http://127.0.0.1:4566   # an emulator started elsewhere
    AWS_REGION=eu-west-1 python examples/aiohttp_app.py --aws --tracking-id YOUR-TRACKING-ID

    curl -X POST 127.0.0.1:8080/click -d '{"session_id": "s1", "user_id": "u1", "item_id": "sku-1"}'
    curl 127.0.0.1:8080/stats

Where it sends: with ``--aws``, wherever the AWS SDKs would (region,
credentials and endpoint from the environment and the shared files); with
``--endpoint-url`` (default: ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, else
``AWS_ENDPOINT_URL``), to that endpoint, e.g. ``aiopersonalize-events emulator
--port 4566`` in another shell, whose ``/_emulator/records/events`` shows what
arrived, also after this app has shut down; otherwise to an emulator it runs
itself. Only the last imports the emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from aiopersonalize_events import Credentials, Event, EventRecorder, PersonalizeEventsClient, ValidationError

if TYPE_CHECKING:
    from aiopersonalize_events.emulator import Emulator

RECORDER = web.AppKey("recorder", EventRecorder)
EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator")


def configured_endpoint() -> str | None:
    """The endpoint the environment names for Personalize Events, as the AWS SDKs read it, or None."""
    return os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(*, aws: bool, endpoint_url: str | None) -> PersonalizeEventsClient:
    """``--aws``: all as the AWS SDKs find it. Otherwise a local endpoint: region and keys may be placeholders."""
    if aws:  # region, credentials (and an endpoint) from the environment and the shared files
        return PersonalizeEventsClient(endpoint_url=endpoint_url)
    region = None if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") else "us-east-1"
    keys = None if os.environ.get("AWS_ACCESS_KEY_ID") else Credentials("AKIDEXAMPLE", "example-secret")
    return PersonalizeEventsClient(region=region, endpoint_url=endpoint_url, credentials=keys)


def personalize_context(*, aws: bool, tracking_id: str, endpoint_url: str | None = None) -> Any:
    """A ``cleanup_ctx`` opening a client and recorder (without ``aws`` or ``endpoint_url``, an emulator too)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url = endpoint_url
            if not aws and url is None:
                from aiopersonalize_events.emulator import Emulator  # only here: --aws never loads the emulator

                emulator = await stack.enter_async_context(Emulator())
                app[EMULATOR] = emulator
                url = emulator.endpoint_url
            client = make_client(aws=aws, endpoint_url=url)
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


def create_app(
    *, aws: bool = False, endpoint_url: str | None = None, tracking_id: str = "example-tracking-id"
) -> web.Application:
    """The app; without ``aws`` or ``endpoint_url`` it also runs an emulator (kept in ``app[EMULATOR]``)."""
    app = web.Application()
    app.cleanup_ctx.append(personalize_context(aws=aws, tracking_id=tracking_id, endpoint_url=endpoint_url))
    app.router.add_post("/click", click)
    app.router.add_get("/stats", stats)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the example app on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws", action="store_true", help="send to AWS (needs AWS_REGION) instead of the emulator")
    parser.add_argument(
        "--endpoint-url",
        default=configured_endpoint(),
        help="send there, e.g. an emulator started elsewhere (default: AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, "
        "else AWS_ENDPOINT_URL, else an emulator of its own)",
    )
    parser.add_argument("--tracking-id", default=os.environ.get("PERSONALIZE_TRACKING_ID", "example-tracking-id"))
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (0: a free one)")
    args = parser.parse_args(argv)
    if args.aws and not os.environ.get("AWS_REGION"):
        parser.error("--aws needs AWS_REGION set (and credentials the AWS SDKs would find)")
    app = create_app(aws=args.aws, endpoint_url=args.endpoint_url, tracking_id=args.tracking_id)
    web.run_app(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
