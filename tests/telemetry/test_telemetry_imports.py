"""Telemetry is off by default and costs nothing then: no OpenTelemetry import, no telemetry code run on a call.

The fresh-interpreter tests run a whole session (import, client, every
operation, a recorder) against an in-process emulator, with OpenTelemetry
installed but not instrumented, with it made impossible to import (as if the
``otel`` extra were not installed), and with only its API (no SDK)
instrumented.
"""

from __future__ import annotations

import dis
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aiopersonalize_events
from aiopersonalize_events import ClientConfig, Credentials, Event, Item, PersonalizeEventsClient, _telemetry
from aiopersonalize_events._call import Caller as _Caller
from aiopersonalize_events.emulator import Emulator, Faults

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGE_DIR = Path(aiopersonalize_events.__file__).parent

BLOCK = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def __init__(self, *names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled(*BLOCKED))
"""

SESSION = """
import asyncio, json, sys
import aiopersonalize_events as ape
from aiopersonalize_events.emulator import Emulator, Faults

async def session():
    async with Emulator(faults=Faults(throttle=0.3, disconnect=0.1, seed=5)) as emu:
        client = ape.PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emu.endpoint_url, credentials=ape.Credentials("AKIDIMPORTS", "s"),
            config=ape.ClientConfig(max_attempts=5),
        )
        ape.set_testing(True)
        async with client:
            arn = "arn:aws:personalize:us-east-1:123456789012:dataset/d/ITEMS"
            for _ in range(3):
                events = [ape.Event(event_type="v", sent_at=1)]
                await client.put_events(tracking_id="t", session_id="s", event_list=events)
                await client.put_items(dataset_arn=arn, items=[ape.Item(item_id="i")])
            async with client.event_recorder(tracking_id="t") as recorder:
                for i in range(25):
                    recorder.record(ape.Event(event_type="v", sent_at=i), session_id="s")
                await recorder.flush()
            return recorder.stats

stats = asyncio.run(session())
assert stats.sent == 25, stats
print(json.dumps(sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry."))))
"""


def _run(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (warnings are errors); the JSON list it prints last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: list[str] = json.loads(result.stdout.splitlines()[-1])
    return found


def test_import_and_a_whole_session_load_no_opentelemetry_module() -> None:
    """OpenTelemetry installed, not instrumented: importing, calling through faults and recording load none of it."""
    pytest.importorskip("opentelemetry")
    assert _run(SESSION) == []


def test_without_the_extra_everything_works_and_otel_says_what_to_install() -> None:
    """With OpenTelemetry not importable, the session works and aiopersonalize_events.otel names the extra."""
    check = """
try:
    import aiopersonalize_events.otel
except ImportError as error:
    assert "aiopersonalize-events[otel]" in str(error), error
else:
    raise AssertionError("aiopersonalize_events.otel imported without OpenTelemetry")
"""
    assert _run("BLOCKED = ('opentelemetry',)\n" + BLOCK + SESSION + check) == []


def test_with_the_api_alone_instrumented_calls_and_recorders_work() -> None:
    """instrument() with the API but no SDK (no provider configured): no-op spans, and everything still works."""
    pytest.importorskip("opentelemetry")
    code = (
        "BLOCKED = ('opentelemetry.sdk',)\n"
        + BLOCK
        + "from aiopersonalize_events import otel, _telemetry\notel.instrument()\nassert _telemetry.hook is not None\n"
        + SESSION
    )
    loaded = _run(code)
    assert "opentelemetry.trace" in loaded
    assert not [m for m in loaded if m.startswith("opentelemetry.sdk")]


def test_the_client_checks_the_hook_once_per_call_and_nowhere_else() -> None:
    """The one hot-path cost when off: ``_telemetry.hook`` read once in ``Caller.invoke``; ``_attempt`` never looks."""

    def reads_of_hook(function: Any) -> int:
        return sum(1 for i in dis.get_instructions(function) if i.argval == "hook")

    # the check, and its use inside the branch taken only when instrumented
    assert reads_of_hook(_Caller.invoke) == 2
    assert reads_of_hook(_Caller._attempt) == 0
    source = (PACKAGE_DIR / "_call.py").read_text()
    assert source.count("_telemetry.hook") == 2
    assert "_telemetry.hook" not in (PACKAGE_DIR / "_client.py").read_text()
    assert "opentelemetry" not in source
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name != "otel.py":
            text = path.read_text()
            assert "import opentelemetry" not in text, path
            assert "from opentelemetry" not in text, path


def _telemetry_code(called: set[tuple[str, str]]) -> set[tuple[str, str]]:
    # (``forget`` is a weakref callback: it runs when the garbage collector frees some earlier client, any time)
    return {
        (path, name)
        for path, name in called
        if (path.endswith(("_telemetry.py", "otel.py")) or f"{os.sep}opentelemetry{os.sep}" in path)
        and name != "forget"
    }


@pytest.mark.usefixtures("personalize_no_retry_waits")
@pytest.mark.parametrize("otel_state", ["never imported", "imported, instrumented, then uninstrumented"])
async def test_not_instrumented_a_call_runs_no_telemetry_code(emulator: Emulator, otel_state: str) -> None:
    """Traced with sys.setprofile: a call runs no code of _telemetry, otel or OpenTelemetry (a retry: its wording)."""
    if otel_state != "never imported":
        otel = pytest.importorskip("aiopersonalize_events.otel")
        otel.instrument()
        otel.uninstrument()
    assert _telemetry.hook is None
    called: set[tuple[str, str]] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            called.add((frame.f_code.co_filename, frame.f_code.co_name))

    async def calls(n: int) -> None:
        sys.setprofile(profile)
        try:
            for _ in range(n):
                meta = await client.put_events(
                    tracking_id="t", session_id="s", event_list=[Event(event_type="v", sent_at=1)]
                )
                assert meta.http_status == 200
        finally:
            sys.setprofile(None)

    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDPROFILE", "s"),
        config=ClientConfig(max_attempts=10),
    ) as client:
        await client.put_items(dataset_arn="arn:aws:personalize:us-east-1:1:dataset/d/ITEMS", items=[Item(item_id="i")])
        await calls(3)
        assert (str(PACKAGE_DIR / "_call.py"), "invoke") in called  # the profile saw the client's own call path
        assert _telemetry_code(called) == set()
        emulator.faults = Faults(throttle=0.5, seed=3)
        await calls(4)
    assert emulator.calls[("PutEvents", 400)] > 0  # retries happened
    # a failed attempt's DEBUG line is worded by _telemetry.describe (code, status, request id): nothing else runs
    assert {name for _, name in _telemetry_code(called)} <= {"describe", "error_type"}
