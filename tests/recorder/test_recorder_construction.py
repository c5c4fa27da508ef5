"""A recorder that failed to build (bad options) stays quiet when it is collected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
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
