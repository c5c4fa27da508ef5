"""The documentation site: its reference renders every public name with its docstring, the README stays a short front
page whose links all resolve, and CI builds the site strictly and looks at it in a browser."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import griffe
import pytest

import aiopersonalize_events

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
README = (ROOT / "README.md").read_text(encoding="utf-8")
REPOSITORY = "https://github.com/aiopersonalize-events/aiopersonalize-events"
# the public surface the reference covers: the package and the modules the contract names public
PUBLIC_MODULES = ["aiopersonalize_events", "errors", "serde", "emulator", "redis", "otel"]


def _module(name: str) -> object:
    return importlib.import_module(name if name == "aiopersonalize_events" else f"aiopersonalize_events.{name}")


def _rendered() -> set[str]:
    """Every object a reference page renders with a ``::: path`` directive."""
    found: set[str] = set()
    for page in REFERENCE.glob("*.md"):
        found.update(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), flags=re.M))
    return found


def _public_names() -> list[tuple[str, str]]:
    return [(module, name) for module in PUBLIC_MODULES for name in _module(module).__all__]


@pytest.mark.parametrize(("module", "name"), _public_names(), ids=[f"{m}.{n}" for m, n in _public_names()])
def test_the_reference_renders_every_public_name(module: str, name: str) -> None:
    """Each name of a public module's ``__all__`` has a ``:::`` directive on a reference page (its own, or, for a name
    the package re-exports, the one of the module that defines it publicly, as the exceptions on the errors page)."""
    rendered = _rendered()
    full = f"{_module(module).__name__}.{name}"
    if full in rendered:
        return
    value = getattr(_module(module), name)
    elsewhere = [
        f"{_module(other).__name__}.{name}"
        for other in PUBLIC_MODULES
        if other != module and getattr(_module(other), name, None) is value
    ]
    assert any(path in rendered for path in elsewhere), f"{full} is not in docs/reference/"


def test_the_reference_renders_nothing_that_is_not_public() -> None:
    """A directive names a public module or a name of its ``__all__`` (no private module's path, no typo)."""
    public = {_module(m).__name__ for m in PUBLIC_MODULES} | {f"{_module(m).__name__}.{n}" for m, n in _public_names()}
    stray = sorted(_rendered() - public)
    assert not stray, stray


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    """The package as mkdocstrings reads it (griffe, from the source: what the reference shows)."""
    loaded = griffe.load("aiopersonalize_events", search_paths=[str(ROOT)], resolve_aliases=True)
    assert isinstance(loaded, griffe.Module)
    return loaded


@pytest.mark.parametrize(("module", "name"), _public_names(), ids=[f"{m}.{n}" for m, n in _public_names()])
def test_every_public_name_has_a_docstring_the_reference_shows(package: griffe.Module, module: str, name: str) -> None:
    """griffe, which renders the reference, finds a docstring for each public name (attributes included, whose
    docstring is the string after them), and a signature for each function and class."""
    owner = package if module == "aiopersonalize_events" else package[module]
    obj = owner[name]
    assert obj.docstring is not None, f"{module}.{name} has no docstring"
    assert obj.docstring.value.strip(), f"{module}.{name} has an empty docstring"
    if obj.is_function:
        assert obj.parameters is not None


def test_default_rate_says_what_it_is_at_run_time() -> None:
    """``help(DEFAULT_RATE)`` and ``inspect.getdoc`` say what the value means (it had no docstring at run time)."""
    doc = inspect.getdoc(aiopersonalize_events.DEFAULT_RATE)
    assert doc
    assert "service quota" in doc
    assert "DEFAULT_RATE" in doc


def test_every_page_is_in_the_navigation() -> None:
    """Each Markdown page under docs/ is listed in mkdocs.yml's nav (the strict build warns on one left out)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+- (?:[^:\n]+: )?([\w/.-]+\.md)\s*$", config, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == listed


def test_the_site_has_the_diagrams() -> None:
    """The three pictures are Mermaid diagrams: a recorded event's path, the fleet, and the retry decisions."""
    for page in ("guides/delivery.md", "guides/fleet.md", "guides/errors.md"):
        assert "```mermaid\n" in (DOCS / page).read_text(encoding="utf-8"), page
    assert "custom_fences" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


# --- the README: a short front page ---------------------------------------------------------------------------------


def test_the_readme_is_a_short_front_page() -> None:
    """Under 200 lines, with the quick start, why, install, an example and links into the site."""
    assert len(README.splitlines()) < 200
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings[:3] == ["Quick start", "Why", "Install"]
    assert "Example" in headings
    assert f"{REPOSITORY}/blob/main/docs/index.md" in README


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, flags=re.M)


def test_every_readme_link_into_the_repository_resolves_in_a_clone() -> None:
    """A link to this repository names a file a clone has (no DESIGN.md, no generated benchmark report)."""
    ours = [t for t in _links(README) if t.startswith(REPOSITORY)]
    assert len(ours) > 10
    for target in ours:
        match = re.fullmatch(re.escape(REPOSITORY) + r"/blob/main/([^#?]+)", target)
        assert match, f"{target}: link to a file on the main branch, without an anchor"
        assert (ROOT / match.group(1)).is_file(), target
    for missing in ("DESIGN.md", "benchmarks/results/latest.md"):
        assert not any(missing in target for target in _links(README)), missing


def test_the_site_links_to_nothing_a_clone_lacks() -> None:
    """No page names DESIGN.md, and the benchmark report is said to be made by the run."""
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, page
        assert not any("latest.md" in target for target in _links(text)), page


# --- CI ------------------------------------------------------------------------------------------------------------


def test_ci_builds_the_site_strictly_and_checks_it_in_a_browser() -> None:
    """CI's install (the dev extra) brings the docs extra; .ci/run runs ``mkdocs build --strict`` and docs/check.py
    (installing Debian's chromium when it is missing)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^docs = \[.*mkdocs.*mkdocs-material.*mkdocstrings\[python\]", pyproject, flags=re.M)
    dev = pyproject[pyproject.index("\ndev = [") : pyproject.index("]\n", pyproject.index("\ndev = ["))]
    assert '"aiopersonalize-events[docs]"' in dev
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\n.venv/bin/mkdocs build --strict" in ci
    assert "\n.venv/bin/python docs/check.py" in ci
    assert "apt-get install -y chromium" in ci
