"""Every example in examples/ runs against the built-in emulator, so none of them rots."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from aiopersonalize_events.emulator import Emulator

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
EXAMPLES = ROOT / "examples"
_TIMEOUT = 60.0


def load_example(name: str) -> ModuleType:
    """Import ``examples/NAME.py`` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_fastapi_app_records_clicks_without_awaiting_aws() -> None:
    """The FastAPI example queues clicks in the recorder; its lifespan drains them to the emulator on shutdown."""
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")

    example = load_example("fastapi_app")
    app = example.create_app()
    async with app.router.lifespan_context(app):  # what a server does at startup and shutdown
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as http:
            for i in range(25):
                click = {"session_id": f"s{i % 3}", "user_id": "u1", "item_id": f"sku-{i}"}
                answer = await http.post("/click", json=click)
                assert answer.status_code == 200
                assert answer.json() == {"queued": True}
            refused = await http.post("/click", json={"session_id": "", "item_id": "sku-1"})
            assert refused.status_code == 422
            assert "session_id" in refused.json()["detail"]
            stats = (await http.get("/stats")).json()
            assert stats["recorded"] == 25
    emulator = app.state.emulator
    events = emulator.events("example-tracking-id")
    assert len(events) == 25
    assert {event["sessionId"] for event in events} == {"s0", "s1", "s2"}
    assert all(event["userId"] == "u1" for event in events)


async def test_aiohttp_app_opens_and_drains_the_recorder_in_cleanup_ctx() -> None:
    """The aiohttp example records through its cleanup_ctx recorder and drains it at cleanup."""
    from aiohttp.test_utils import TestClient, TestServer

    example = load_example("aiohttp_app")
    app = example.create_app()
    async with TestClient(TestServer(app)) as http:
        for i in range(12):
            answer = await http.post("/click", json={"session_id": "s1", "item_id": f"sku-{i}"})
            assert answer.status == 200
            assert await answer.json() == {"queued": True}
        bad = await http.post("/click", data="not json")
        assert bad.status == 422
        stats = await (await http.get("/stats")).json()
        assert stats["recorded"] == 12
    events = app[example.EMULATOR].events()
    assert len(events) == 12
    assert {event["sessionId"] for event in events} == {"s1"}


def test_catalog_sync_runs_as_a_script_with_its_sample() -> None:
    """``python examples/catalog_sync.py`` syncs its generated sample catalog and exits 0."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "catalog_sync.py")], capture_output=True, text=True, timeout=_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert "synced 120 items in 12 calls; 0 not accepted, 0 lines skipped" in result.stdout


def test_catalog_sync_skips_bad_lines_and_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A catalog with a bad line syncs the rest, names the line, and exits 1."""
    catalog = tmp_path / "catalog.jsonl"
    lines = [json.dumps({"itemId": f"sku-{i}"}) for i in range(15)]
    lines.insert(4, json.dumps({"itemId": "sku-x", "colour": "red"}))
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    example = load_example("catalog_sync")
    assert example.main([str(catalog)]) == 1
    captured = capsys.readouterr()
    assert "synced 15 items in 2 calls; 0 not accepted, 1 lines skipped" in captured.out
    assert "catalog.jsonl:5: skipped: colour: is not a member of Item" in captured.err


def test_pytest_example_passes() -> None:
    """examples/test_with_emulator.py passes under pytest with the installed plugin's fixtures."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_with_emulator.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app", "catalog_sync"])
def test_aws_flag_needs_a_region(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """With --aws and no AWS_REGION each runnable example stops with a usage error instead of guessing."""
    if name == "fastapi_app":
        pytest.importorskip("fastapi")
    example = load_example(name)
    with pytest.raises(SystemExit) as info:
        example.main(["--aws"])
    assert info.value.code == 2
    assert "AWS_REGION" in capsys.readouterr().err


# --- pointed at an emulator started elsewhere, and checked after the example has shut down ------------------------

RUNNABLE = ["fastapi_app", "aiohttp_app", "catalog_sync"]


def _example_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


async def _start(name: str, args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / f"{name}.py"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _serving_url(process: asyncio.subprocess.Process) -> str:
    """Read the server's output until it says where it listens (uvicorn and aiohttp both print the real port)."""
    assert process.stdout is not None
    seen = b""
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), _TIMEOUT)
        assert line, f"the example ended before serving:\n{seen.decode()}"
        seen += line
        found = re.search(rb"(http://127\.0\.0\.1:\d+)", line)
        if found and b":0 " not in line:
            return found.group(1).decode()


@pytest.mark.parametrize("how", ["option", "variable"])
@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
async def test_web_examples_send_to_an_emulator_started_elsewhere(emulator: Emulator, name: str, how: str) -> None:
    """--endpoint-url (or AWS_ENDPOINT_URL_PERSONALIZE_EVENTS) sends there; after SIGINT every click is stored."""
    if name == "fastapi_app":
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
    args = ["--port", "0", "--tracking-id", f"{name}-tracker"]
    extra: dict[str, str] = {}
    if how == "option":
        args += ["--endpoint-url", emulator.endpoint_url]
    else:
        extra["AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"] = emulator.endpoint_url
    process = await _start(name, args, _example_env(extra))
    try:
        url = await _serving_url(process)
        async with aiohttp.ClientSession() as http:
            for i in range(15):
                click = {"session_id": f"s{i % 2}", "user_id": "u1", "item_id": f"sku-{i}"}
                async with http.post(f"{url}/click", json=click) as answer:
                    assert answer.status == 200
                    assert await answer.json() == {"queued": True}
        process.send_signal(signal.SIGINT)  # what Ctrl-C does: the app shuts down and its recorder drains
        output, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode in (0, -signal.SIGINT), output.decode()
    events = emulator.events(f"{name}-tracker")
    assert sorted(e["itemId"] for e in events) == sorted(f"sku-{i}" for i in range(15))
    assert emulator.calls[("PutEvents", 200)] >= 2


@pytest.mark.parametrize("how", ["option", "variable", "global variable"])
async def test_catalog_sync_sends_to_an_emulator_started_elsewhere(emulator: Emulator, how: str) -> None:
    """catalog_sync with --endpoint-url, AWS_ENDPOINT_URL_PERSONALIZE_EVENTS or AWS_ENDPOINT_URL syncs there."""
    args: list[str] = []
    extra: dict[str, str] = {}
    if how == "option":
        args = ["--endpoint-url", emulator.endpoint_url]
    elif how == "variable":
        extra["AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"] = emulator.endpoint_url
    else:
        extra["AWS_ENDPOINT_URL"] = emulator.endpoint_url
    process = await _start("catalog_sync", args, _example_env(extra))
    output, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    assert process.returncode == 0, output.decode()
    assert "synced 120 items in 12 calls" in output.decode()
    assert len(emulator.items()) == 120


AWS_WITHOUT_EMULATOR = """
import asyncio, importlib.util, sys, tempfile
from pathlib import Path

spec = importlib.util.spec_from_file_location("example", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
name = Path(sys.argv[1]).stem


async def main():
    if name == "fastapi_app":
        app = example.create_app(aws=True)
        async with app.router.lifespan_context(app):
            pass
    elif name == "aiohttp_app":
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(example.create_app(aws=True))):
            pass



if name == "catalog_sync":  # a script: its main runs its own loop
    with tempfile.TemporaryDirectory() as directory:
        empty = Path(directory) / "empty.jsonl"
        empty.write_text("")
        assert example.main([str(empty), "--aws"]) == 0
else:
    asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith("aiopersonalize_events.emulator")))
"""


@pytest.mark.parametrize("name", RUNNABLE)
def test_aws_flag_does_not_import_the_emulator(name: str) -> None:
    """With --aws each example opens its client (and recorder) without ever importing the emulator."""
    if name == "fastapi_app":
        pytest.importorskip("fastapi")
    env = _example_env({"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDAWSFLAG", "AWS_SECRET_ACCESS_KEY": "s"})
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", AWS_WITHOUT_EMULATOR, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_runnable_example_documents_endpoint_url(name: str) -> None:
    """Each runnable example's --help offers --endpoint-url and names the variables it reads."""
    if name == "fastapi_app":
        pytest.importorskip("fastapi")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=_example_env({"COLUMNS": "200"}),
    )
    assert result.returncode == 0, result.stderr
    assert "--endpoint-url" in result.stdout
    assert "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS" in result.stdout
