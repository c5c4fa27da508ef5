"""FastAPI: an EventRecorder in the app's lifespan, and a click endpoint that records without awaiting AWS.

The recorder buffers events and sends them to PutEvents from a background
task, grouped by session and user, retried on throttling and 5xx; the
endpoint returns as soon as the event is queued. Shutting the app down
drains what is queued.

    pip install fastapi uvicorn
    python examples/fastapi_app.py                 # against the built-in emulator, on 127.0.0.1:8000
    python examples/fastapi_app.py --endpoint-url http://127.0.0.1:4566   # an emulator started elsewhere
    AWS_REGION=eu-west-1 python examples/fastapi_app.py --aws --tracking-id YOUR-TRACKING-ID

    curl -X POST 127.0.0.1:8000/click -H 'content-type: application/json' \\
         -d '{"session_id": "s1", "user_id": "u1", "item_id": "sku-1"}'
    curl 127.0.0.1:8000/stats

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

import attrs
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from aiopersonalize_events import Credentials, Event, EventRecorder, PersonalizeEventsClient, ValidationError


class Click(BaseModel):
    """The body of ``POST /click``."""

    session_id: str
    item_id: str
    user_id: str | None = None
    event_type: str = "click"


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


def create_app(
    *, aws: bool = False, endpoint_url: str | None = None, tracking_id: str = "example-tracking-id"
) -> FastAPI:
    """The app; without ``aws`` or ``endpoint_url`` its lifespan also runs an emulator (``app.state.emulator``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url = endpoint_url
            if not aws and url is None:
                from aiopersonalize_events.emulator import Emulator  # only here: --aws never loads the emulator

                emulator = await stack.enter_async_context(Emulator())
                app.state.emulator = emulator
                url = emulator.endpoint_url
            client = make_client(aws=aws, endpoint_url=url)
            await stack.enter_async_context(client)
            app.state.recorder = await stack.enter_async_context(client.event_recorder(tracking_id=tracking_id))
            yield
        # leaving the stack closes the recorder first (sending what is queued), then the client and the emulator

    app = FastAPI(title="aiopersonalize-events FastAPI example", lifespan=lifespan)

    @app.exception_handler(ValidationError)
    async def invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.post("/click")
    async def click(click: Click, request: Request) -> dict[str, bool]:
        recorder: EventRecorder = request.app.state.recorder
        event = Event(event_type=click.event_type, sent_at=time.time(), item_id=click.item_id)
        queued = recorder.record(event, session_id=click.session_id, user_id=click.user_id)  # never awaits AWS
        return {"queued": queued}

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, int]:
        recorder: EventRecorder = request.app.state.recorder
        return attrs.asdict(recorder.stats)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the example app with uvicorn on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws", action="store_true", help="send to AWS (needs AWS_REGION) instead of the emulator")
    parser.add_argument(
        "--endpoint-url",
        default=configured_endpoint(),
        help="send there, e.g. an emulator started elsewhere (default: AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, "
        "else AWS_ENDPOINT_URL, else an emulator of its own)",
    )
    parser.add_argument("--tracking-id", default=os.environ.get("PERSONALIZE_TRACKING_ID", "example-tracking-id"))
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (0: a free one)")
    args = parser.parse_args(argv)
    if args.aws and not os.environ.get("AWS_REGION"):
        parser.error("--aws needs AWS_REGION set (and credentials the AWS SDKs would find)")
    import uvicorn

    app = create_app(aws=args.aws, endpoint_url=args.endpoint_url, tracking_id=args.tracking_id)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
