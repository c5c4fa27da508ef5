"""The snippets of the README and of the documentation site (docs/) run as written against the emulator, or are
marked as fragments that say what they assume; what they document is complete."""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from aiopersonalize_events.emulator import Emulator

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
# every page a reader sees: the README (the project's front page) and each page of the site
PAGES = {"README.md": README} | {
    str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md"))
}
_TIMEOUT = 120.0
# what the runnable snippets need in the environment; a page with runnable snippets names each of them
ENVIRONMENT = {
    "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": None,  # the emulator's URL
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "example-secret",
}

# Python: snippets with a top-level await run as in `python -m asyncio` (compiled with PyCF_ALLOW_TOP_LEVEL_AWAIT)
RUN_PYTHON = """
import ast, asyncio, inspect, sys

source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, "snippet", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__"})
if inspect.iscoroutine(result):
    asyncio.run(result)
"""


class Snippet(NamedTuple):
    kind: str  # python, pytest or sh; for a fragment, the language of its fence
    page: str
    line: int
    code: str
    assumes: str  # a fragment's note of what it assumes; "" for a runnable snippet

    @property
    def where(self) -> str:
        return f"{self.page} line {self.line}"


_MARKER = re.compile(r"^<!-- (?:runnable(?:: (?P<kind>\w+))?|fragment: (?P<assumes>\S.*?)) -->$")


def _fences(page: str, text: str) -> list[tuple[int, str, str, str]]:
    """(line of the fence, the line before it, the fence's language, the code) of every fenced block of a page."""
    found = []
    pattern = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```$", flags=re.M | re.S)
    for match in pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        start = text.rfind("\n", 0, max(match.start() - 1, 0))
        before = text[start + 1 : match.start() - 1] if match.start() else ""
        found.append((line, before, match.group("lang"), match.group("code")))
    return found


def _snippets() -> list[Snippet]:
    """Every marked fenced block of every page (unmarked ones are reported by a test of their own)."""
    found = []
    for page, text in PAGES.items():
        for line, before, lang, code in _fences(page, text):
            marker = _MARKER.match(before)
            if marker is None:
                continue
            assumes = marker.group("assumes") or ""
            kind = lang if assumes else (marker.group("kind") or lang)
            found.append(Snippet(kind, page, line, code, assumes))
    return found


ALL_SNIPPETS = _snippets()
SNIPPETS = [s for s in ALL_SNIPPETS if not s.assumes]
FRAGMENTS = [s for s in ALL_SNIPPETS if s.assumes]


def test_the_pages_mark_snippets_of_each_kind() -> None:
    """There are runnable Python, pytest and shell snippets (a marker typo would silently drop one)."""
    assert {s.kind for s in SNIPPETS} == {"python", "pytest", "sh"}
    marked = sum(len(re.findall(r"^<!-- (?:runnable|fragment)", text, flags=re.M)) for text in PAGES.values())
    assert marked == len(ALL_SNIPPETS)
    assert any(s.page == "README.md" for s in SNIPPETS)
    assert any(s.page.startswith("docs/") for s in SNIPPETS)


def test_every_code_block_is_runnable_or_a_marked_fragment() -> None:
    """Each fenced block is run by these tests or marked `<!-- fragment: ... -->` saying what it assumes (a Mermaid
    diagram is a picture, not code); each names its language."""
    unmarked = []
    for page, text in PAGES.items():
        for line, before, lang, _ in _fences(page, text):
            if lang == "mermaid":
                continue
            if not lang or not _MARKER.match(before):
                unmarked.append(f"{page} line {line}")
    assert not unmarked, unmarked


@pytest.mark.parametrize("snippet", [s for s in FRAGMENTS if s.kind == "python"], ids=lambda s: s.where)
def test_a_python_fragment_is_valid_python(snippet: Snippet) -> None:
    """A Python fragment is not run, but it compiles (top-level await allowed, as in `python -m asyncio`)."""
    compile(snippet.code, snippet.where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


_VENV_COMMAND = re.compile(r"(?:^|[|;&(]\s*|\$\(\s*)(?P<command>aiopersonalize-events|python3?|pip3?)\b(?![-.])")


@pytest.mark.parametrize("snippet", [s for s in ALL_SNIPPETS if s.kind in ("sh", "console")], ids=lambda s: s.where)
def test_a_shell_snippet_calls_the_venvs_commands(snippet: Snippet) -> None:
    """A shell snippet runs the console script, python and pip as `.venv/bin/...` (the quick start installs there
    without activating it), unless it activates the venv first; `python3 -m venv` makes one."""
    activated = False
    for number, line in enumerate(snippet.code.splitlines()):
        if "source .venv/bin/activate" in line or ". .venv/bin/activate" in line:
            activated = True
        for match in _VENV_COMMAND.finditer(line):
            rest = line[match.end("command") :]
            if match.group("command") == "python3" and rest.startswith(" -m venv"):
                continue
            assert activated, f"{snippet.where} + {number}: {match.group('command')!r} outside .venv/bin: {line!r}"


@pytest.mark.parametrize("page", sorted(p for p in PAGES if any(s.page == p for s in SNIPPETS)))
def test_a_page_with_runnable_snippets_names_the_environment_they_need(page: str) -> None:
    """Each variable the runnable snippets are run with is written in the page that holds them."""
    missing = [name for name in ENVIRONMENT if name not in PAGES[page]]
    assert not missing, f"{page} does not name {missing}"


def _environ(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """The variables the pages name (ENVIRONMENT), and nothing from this machine's AWS set-up; `.venv` in the working
    directory is the venv running the tests, so `.venv/bin/aiopersonalize-events` is the console script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({name: value or emulator.endpoint_url for name, value in ENVIRONMENT.items()})
    env.update(
        {
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    venv = tmp_path / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.prefix), target_is_directory=True)
    return env


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "python"], ids=lambda s: s.where)
async def test_python_snippet_runs_against_the_emulator(emulator: Emulator, tmp_path: Path, snippet: Snippet) -> None:
    """The snippet runs as written, with AWS_ENDPOINT_URL_PERSONALIZE_EVENTS pointing at the emulator."""
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    status, output = await _run([sys.executable, "-c", RUN_PYTHON, str(script)], tmp_path, _environ(emulator, tmp_path))
    assert status == 0, f"{snippet.where}:\n{output}"
    if "Emulator(" not in snippet.code:  # a snippet that starts its own emulator sends there instead
        assert emulator.calls, f"{snippet.where} sent nothing to the emulator"
        assert all(status == 200 for _, status in emulator.calls)


PYTEST_MODES = {
    "as written (pytest-asyncio strict)": ("", None),
    "anyio": ("", ("@pytest.mark.asyncio", "@pytest.mark.anyio")),
    "pytest-asyncio auto mode, unmarked": ("asyncio_mode = auto", ("@pytest.mark.asyncio", "")),
}


@pytest.mark.parametrize("mode", PYTEST_MODES)
@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "pytest"], ids=lambda s: s.where)
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
    assert status == 0, f"{snippet.where} ({mode}):\n{output}"
    assert re.search(r"\b1 passed\b", output), output


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind == "sh"], ids=lambda s: s.where)
async def test_shell_snippet_runs_against_the_emulator(emulator: Emulator, tmp_path: Path, snippet: Snippet) -> None:
    """The shell snippet runs with `set -e` against the emulator (the command line reads the endpoint variable)."""
    status, output = await _run(["bash", "-e", "-c", snippet.code], tmp_path, _environ(emulator, tmp_path))
    assert status == 0, f"{snippet.where}:\n{output}"
    assert emulator.calls, f"{snippet.where} sent nothing to the emulator"


# --- what the pages document --------------------------------------------------------------------------------------

EMULATOR_GUIDE = (DOCS / "guides" / "emulator.md").read_text(encoding="utf-8")


def test_every_emulator_option_is_documented() -> None:
    """Each option of `aiopersonalize-events emulator` appears in the emulator guide (moved there from the README)."""
    from aiopersonalize_events.emulator.__main__ import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"]
    assert options
    missing = [o for o in options if f"`{o}" not in EMULATOR_GUIDE]
    assert not missing, missing


def test_the_emulators_inspection_routes_are_documented() -> None:
    """Each /_emulator/... route and each kind of record it serves appears in the emulator guide."""
    from aiopersonalize_events.emulator._app import KINDS

    emulator = Emulator()
    routes = {resource.canonical for resource in emulator.make_app().router.resources()}
    inspection = sorted(r for r in routes if r.startswith("/_emulator/"))
    assert inspection
    for route in inspection:
        assert f"`{route}`" in EMULATOR_GUIDE, route
    for kind in KINDS:
        assert f"`{kind}`" in EMULATOR_GUIDE, kind


def test_every_logger_is_documented() -> None:
    """Each logger name the package logs under is named in the observability guide."""
    names = set()
    for path in (ROOT / "aiopersonalize_events").rglob("*.py"):
        names.update(re.findall(r"""getLogger\(["']([\w.]+)["']\)""", path.read_text(encoding="utf-8")))
    assert "aiopersonalize_events" in names
    guide = (DOCS / "guides" / "observability.md").read_text(encoding="utf-8")
    missing = [name for name in sorted(names) if f"`{name}`" not in guide]
    assert not missing, missing
