"""The README's snippets marked runnable run as written against the emulator; what it documents is complete."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from aiopersonalize_events.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_TIMEOUT = 120.0

# Python: snippets with a top-level await run as in `python -m asyncio` (compiled with PyCF_ALLOW_TOP_LEVEL_AWAIT)
RUN_PYTHON = """
import ast, asyncio, inspect, sys

source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, "README.md snippet", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if inspect.iscoroutine(result):
    asyncio.run(result)
"""


class Snippet(NamedTuple):
    kind: str  # python, pytest or sh
    line: int
    code: str


def runnable_snippets() -> list[Snippet]:
    """Every fenced block right after a ``<!-- runnable -->`` (or ``<!-- runnable: KIND -->``) comment."""
    found = []
    pattern = re.compile(r"^<!-- runnable(?:: (\w+))? -->\n```(\w*)\n(.*?)^```$", flags=re.M | re.S)
    for match in pattern.finditer(README):
        kind = match.group(1) or match.group(2)
        found.append(Snippet(kind, README.count("\n", 0, match.start()) + 1, match.group(3)))
    return found


SNIPPETS = runnable_snippets()


def test_the_readme_marks_snippets_of_each_kind() -> None:
    """There are runnable Python, pytest and shell snippets (a marker typo would silently drop one)."""
    assert {s.kind for s in SNIPPETS} == {"python", "pytest", "sh"}
    assert len(re.findall(r"^<!-- runnable", README, flags=re.M)) == len(SNIPPETS)


def _environ(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": emulator.endpoint_url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDREADME",
            "AWS_SECRET_ACCESS_KEY": "readme-secret",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "python"], ids=lambda s: f"line-{s.line}")
async def test_python_snippet_runs_against_the_emulator(emulator: Emulator, tmp_path: Path, snippet: Snippet) -> None:
    """The snippet runs as written, with AWS_ENDPOINT_URL_PERSONALIZE_EVENTS pointing at the emulator."""
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    status, output = await _run([sys.executable, "-c", RUN_PYTHON, str(script)], tmp_path, _environ(emulator, tmp_path))
    assert status == 0, f"README.md line {snippet.line}:\n{output}"
    if "Emulator(" not in snippet.code:  # a snippet that starts its own emulator sends there instead
        assert emulator.calls, f"README.md line {snippet.line} sent nothing to the emulator"
        assert all(status == 200 for _, status in emulator.calls)


PYTEST_MODES = {
    "as written (pytest-asyncio strict)": ("", None),
    "anyio": ("", ("@pytest.mark.asyncio", "@pytest.mark.anyio")),
    "pytest-asyncio auto mode, unmarked": ("asyncio_mode = auto", ("@pytest.mark.asyncio", "")),
}


@pytest.mark.parametrize("mode", PYTEST_MODES)
@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "pytest"], ids=lambda s: f"line-{s.line}")
async def test_pytest_snippet_passes(emulator: Emulator, tmp_path: Path, snippet: Snippet, mode: str) -> None:
    """The fixture snippet passes as written, and under anyio and auto mode as the README says it would."""
    ini, swap = PYTEST_MODES[mode]
    code = snippet.code if swap is None else snippet.code.replace(*swap)
    (tmp_path / "test_snippet.py").write_text(code, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n{ini}\n", encoding="utf-8"
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"]
    status, output = await _run(args, tmp_path, _environ(emulator, tmp_path))
    assert status == 0, f"README.md line {snippet.line} ({mode}):\n{output}"
    assert re.search(r"\b1 passed\b", output), output


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "sh"], ids=lambda s: f"line-{s.line}")
async def test_shell_snippet_runs_against_the_emulator(emulator: Emulator, tmp_path: Path, snippet: Snippet) -> None:
    """The shell snippet runs with `set -e` against the emulator (the command line reads the endpoint variable)."""
    status, output = await _run(["bash", "-e", "-c", snippet.code], tmp_path, _environ(emulator, tmp_path))
    assert status == 0, f"README.md line {snippet.line}:\n{output}"
    assert emulator.calls, f"README.md line {snippet.line} sent nothing to the emulator"


# --- what the README documents -------------------------------------------------------------------------------------


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, title
    return match.group(1)


def test_every_emulator_option_is_documented() -> None:
    """Each option of `aiopersonalize-events emulator` appears in the README's emulator section."""
    from aiopersonalize_events.emulator.__main__ import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    section = _section("The emulator and its pytest fixture")
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"]
    assert options
    missing = [o for o in options if f"`{o}" not in section]
    assert not missing, missing


def test_the_emulators_inspection_routes_are_documented() -> None:
    """Each /_emulator/... route and each kind of record it serves appears in the README."""
    from aiopersonalize_events.emulator._app import KINDS

    emulator = Emulator()
    routes = {resource.canonical for resource in emulator.make_app().router.resources()}
    inspection = sorted(r for r in routes if r.startswith("/_emulator/"))
    assert inspection
    section = _section("The emulator and its pytest fixture")
    for route in inspection:
        assert f"`{route}`" in section, route
    for kind in KINDS:
        assert f"`{kind}`" in section, kind


def test_every_logger_is_documented() -> None:
    """Each logger name the package logs under is named in the README."""
    names = set()
    for path in (ROOT / "aiopersonalize_events").rglob("*.py"):
        names.update(re.findall(r"""getLogger\(["']([\w.]+)["']\)""", path.read_text(encoding="utf-8")))
    assert "aiopersonalize_events" in names
    missing = [name for name in sorted(names) if f"`{name}`" not in README]
    assert not missing, missing
