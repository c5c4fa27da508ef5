"""FastAPI: an EventRecorder in the app's lifespan, and a click endpoint that records without awaiting AWS.

The recorder buffers events and sends them to PutEvents from a background
task, grouped by session and user, retried on throttling and 5xx; the
endpoint returns as soon as the event is queued. Shutting the app down
drains what is queued.

    pip install fastapi uvicorn
    python examples/fastapi_app.py                 # against the built-in emulator, on 127.0.0.1:8000
    AWS_REGION=eu-west-1 python examples/fastapi_app.py --aws --tracking-id YOUR-TRACKING-ID

    curl -X POST 127.0.0.1:8000/click -H 'content-type: application/json' \\
         -d '{"session_id": "s1", "user_id": "u1", "item_id": "sku-1"}'
    curl 127.0.0.1:8000/stats

With ``--aws`` the client finds its credentials where the AWS SDKs do
(environment, shared files, container or instance role).
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


def create_app(*, aws: bool = False, tracking_id: str = "example-tracking-id") -> FastAPI:
    """The app; with ``aws=False`` its lifespan also runs the built-in emulator (kept in ``app.state.emulator``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if aws:
                client = PersonalizeEventsClient()  # region from AWS_REGION, credentials from the default chain
            else:
                from aiopersonalize_events.emulator import Emulator

                emulator = await stack.enter_async_context(Emulator())
                app.state.emulator = emulator
                client = PersonalizeEventsClient(
                    region="us-east-1",
                    endpoint_url=emulator.endpoint_url,
                    credentials=Credentials("AKIDEXAMPLE", "example-secret"),
                )
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
    parser.add_argument("--tracking-id", default=os.environ.get("PERSONALIZE_TRACKING_ID", "example-tracking-id"))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.aws and not os.environ.get("AWS_REGION"):
        parser.error("--aws needs AWS_REGION set (and credentials the AWS SDKs would find)")
    import uvicorn

    uvicorn.run(create_app(aws=args.aws, tracking_id=args.tracking_id), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
