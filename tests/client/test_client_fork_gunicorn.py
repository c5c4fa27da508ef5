"""``gunicorn --preload -k uvicorn.workers.UvicornWorker``, 2 workers: every event the app acknowledged arrives once.

The app module is imported once, in gunicorn's master (``--preload``): it
makes the client there, opens it in a throwaway event loop (as an app that
checks its configuration at import does) and makes a recorder without
starting it. Each forked worker then starts the recorder in its lifespan
and serves two routes: ``/record/ID`` (the recorder, in the background) and
``/call/ID`` (a direct ``put_events``). After a graceful stop (SIGTERM: the
workers' lifespans close their recorders, which flush), the emulator must
hold every acknowledged event exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from aiopersonalize_events.emulator import Emulator

APP = textwrap.dedent(
    """
    import asyncio, os
    from contextlib import asynccontextmanager
    from fastapi import FastAPI
    from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient

    client = PersonalizeEventsClient(
        region="us-east-1", endpoint_url=os.environ["EMULATOR_URL"], credentials=Credentials("AKIDGUNICORN0000001", "s")
    )
    asyncio.run(client.open())  # in the master, before the fork: the workers must not use this session
    recorder = client.event_recorder(tracking_id="t", flush_interval=0.01)  # made in the master, started per worker

    @asynccontextmanager
    async def lifespan(app):
        async with recorder:
            yield

    app = FastAPI(lifespan=lifespan)

    def event(event_id):
        return Event(event_type="click", item_id="i", event_id=event_id, sent_at=1_700_000_000)

    @app.get("/health")
    async def health():
        return {"pid": os.getpid()}

    @app.post("/record/{event_id}")
    async def record(event_id: str):
        return {"ok": recorder.record(event(event_id), session_id="web"), "pid": os.getpid()}

    @app.post("/call/{event_id}")
    async def call(event_id: str):
        await client.put_events(tracking_id="t", session_id="web", event_list=[event(event_id)])
        return {"ok": True, "pid": os.getpid()}
    """
)

REQUESTS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    """Poll /health until a worker answers (bounded: 600 tries)."""
    for _ in range(600):
        try:
            async with session.get(url + "/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("gunicorn did not start")


async def test_gunicorn_preload_workers_deliver_every_acknowledged_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two preloaded uvicorn workers: recorder and direct-call events the app acknowledged all arrive, once each."""
    (tmp_path / "tracker_app.py").write_text(APP)  # before anything runs
    port = _free_port()
    async with Emulator() as emu:
        monkeypatch.setenv("EMULATOR_URL", emu.endpoint_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "-w",
            "2",
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "--graceful-timeout",
            "20",
            "tracker_app:app",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        acked: list[str] = []
        pids: set[int] = set()
        url = f"http://127.0.0.1:{port}"
        try:
            connector = aiohttp.TCPConnector(force_close=True)  # a new connection each time: either worker may take it
            async with aiohttp.ClientSession(connector=connector) as session:
                await _wait_ready(session, url)

                async def one(kind: str, event_id: str) -> None:
                    async with session.post(f"{url}/{kind}/{event_id}") as response:
                        if response.status == 200:
                            body = await response.json()
                            if body["ok"]:
                                acked.append(event_id)
                                pids.add(body["pid"])

                await asyncio.gather(
                    *(one("record", f"r{i}") for i in range(REQUESTS)), *(one("call", f"c{i}") for i in range(REQUESTS))
                )
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
        seen = [e["eventId"] for e in emu.events(tracking_id="t")]
        duplicates = emu.duplicates
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert len(acked) == 2 * REQUESTS, stderr.decode()[-3000:]
    print(f"workers that answered: {len(pids)}")
    assert process.pid not in pids  # answered by forked workers, not the master
    for event_id in acked:
        assert seen.count(event_id) == 1, event_id
    assert duplicates == 0
    assert "Traceback" not in stderr.decode()
