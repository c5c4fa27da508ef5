"""Every example in examples/ runs against the built-in emulator, so none of them rots."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
