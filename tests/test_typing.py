"""The public API type-checks as users write it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_usage_passes_mypy_strict() -> None:
    """tests/typing/public_api.py is clean under mypy --strict, and each marked misuse is still a type error."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "tests/typing/public_api.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
