"""Fixtures and helpers shared by the command-line tests: one emulator per module, the command run
as a subprocess, JSON Lines files, and a console that says it is a terminal.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from aiopersonalize_events.emulator import Emulator

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/cli/ITEMS"
_TIMEOUT = 120.0


@pytest.fixture(name="shared_emulator", scope="module")
def shared_emulator_fixture() -> Iterator[Emulator]:
    """One emulator for the module, served from a background thread (reachable from subprocesses and main())."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(name="emulator")
def emulator_fixture(shared_emulator: Emulator) -> Emulator:
    """The shared emulator, emptied and without faults."""
    shared_emulator.reset()
    shared_emulator.faults = None
    return shared_emulator


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m aiopersonalize_events ARGS`` without the machine's AWS settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(cwd / "none")})
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aiopersonalize_events", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=_TIMEOUT,
    )


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def item_lines(count: int) -> list[str]:
    return [json.dumps({"itemId": f"item-{i}"}) for i in range(count)]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
