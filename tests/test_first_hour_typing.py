"""Typing as users meet it: the recorder's options are checked by mypy; a recorder that failed to build stays quiet."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MISTYPED = """
from aiopersonalize_events import PersonalizeEventsClient


async def setup(client: PersonalizeEventsClient) -> None:
    client.event_recorder(tracking_id="t", flush_intervall=1.0)
    client.event_recorder(tracking_id="t", overflow="drop-oldest")
"""


def test_mypy_strict_rejects_misspelt_recorder_options(tmp_path: Path) -> None:
    """mypy --strict reports a misspelt keyword (flush_intervall) and an overflow policy that does not exist."""
    user_code = tmp_path / "app.py"
    user_code.write_text(textwrap.dedent(MISTYPED), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--no-incremental", str(user_code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith(f"{user_code}:") and ": error:" in line]
    assert len(errors) == 2, result.stdout + result.stderr
    assert 'Unexpected keyword argument "flush_intervall"' in errors[0]
    assert "[call-arg]" in errors[0]
    assert "'drop-oldest'" in errors[1]
    assert "[arg-type]" in errors[1]


FAILED_CONSTRUCTION = """
import gc
from aiopersonalize_events import EventRecorder, PersonalizeEventsClient, ValidationError

client = PersonalizeEventsClient(region="us-east-1")
for options in ({OPTIONS}):
    try:
        EventRecorder(client, **options)
    except (ValidationError, TypeError) as exc:
        print("refused:", type(exc).__name__)
    else:
        raise SystemExit("built")
gc.collect()
"""

BAD_OPTIONS = [
    pytest.param({"tracking_id": ""}, id="tracking_id-empty"),
    pytest.param({"tracking_id": "t", "flush_interval": -1}, id="flush_interval-negative"),
    pytest.param({"tracking_id": "t", "max_queue_size": 0}, id="max_queue_size-0"),
    pytest.param({"tracking_id": "t", "overflow": "drop-oldest"}, id="overflow-unknown"),
    pytest.param({"tracking_id": "t", "max_concurrency": 0}, id="max_concurrency-0"),
    pytest.param({"tracking_id": "t", "on_failure": 42}, id="on_failure-not-callable"),
    pytest.param({"tracking_id": "t", "close_timeout": -1}, id="close_timeout-negative"),
    # a keyword that does not exist fails before __init__ runs at all: __del__ then finds no attribute set
    pytest.param({"tracking_id": "t", "flush_intervall": 1.0}, id="unknown-keyword"),
]


@pytest.mark.parametrize("options", BAD_OPTIONS)
def test_a_recorder_that_failed_to_build_prints_nothing_when_collected(options: dict[str, object]) -> None:
    """EventRecorder(...) raising in its constructor leaves nothing for __del__ to print, warnings as errors."""
    script = FAILED_CONSTRUCTION.replace("{OPTIONS}", repr(options) + ",")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:")
    assert result.stderr == ""
