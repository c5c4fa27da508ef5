"""The public API type-checks as users write it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


def test_public_api_usage_passes_mypy_strict() -> None:
    """tests/typing/public_api.py is clean under mypy --strict, and each marked misuse is still a type error."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "tests/typing/public_api.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
