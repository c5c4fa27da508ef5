"""The Python snippets of the README and the site also run against the emulator with no region set anywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_package_readme import RUN_PYTHON, SNIPPETS, Snippet, _environ, _run

from aiopersonalize_events.emulator import Emulator


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "python"], ids=lambda s: f"line-{s.line}")
async def test_python_snippet_runs_without_a_region(emulator: Emulator, tmp_path: Path, snippet: Snippet) -> None:
    """With AWS_ENDPOINT_URL_PERSONALIZE_EVENTS on loopback and no AWS_REGION, the snippet runs (signed us-east-1)."""
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    env = _environ(emulator, tmp_path)
    del env["AWS_REGION"]
    status, output = await _run([sys.executable, "-c", RUN_PYTHON, str(script)], tmp_path, env)
    assert status == 0, f"{snippet.page} line {snippet.line}:\n{output}"
