"""The package's import graph: no cycles (lazy imports included), layers that import only downward, light imports.

The graph is built from the source, not from ``sys.modules``: every module
of the package (``pkgutil.walk_packages``) is parsed with ``ast`` and every
``import``/``from`` statement that names a package module counts, at module
level or inside a function (a lazy import still runs, just later). Relative
imports are resolved; ``from X import name`` counts ``X.name`` when that is a
module and ``X`` otherwise; importing ``a.b.c`` also runs the packages
``a.b`` it passes through. Imports under ``if TYPE_CHECKING:`` count too (a
module that needs another's types depends on it; a cycle hidden from the
interpreter is still one for the reader and the type checker) and are
marked as such in the report. The edge from a module to its own parent
packages does not count (they are always initialised first).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import aiopersonalize_events

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGE = aiopersonalize_events.__name__
SOURCES = f"{PACKAGE}._sources"

Graph = dict[str, dict[str, str]]  # module -> {imported module: where, e.g. "line 12" or "line 40, lazy"}


@cache
def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name, with its source file."""
    found = {PACKAGE: Path(aiopersonalize_events.__file__)}
    for info in pkgutil.walk_packages(aiopersonalize_events.__path__, prefix=PACKAGE + "."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None, info.name
        assert spec.origin is not None, info.name
        found[info.name] = Path(spec.origin)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST, kind: str = "") -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement under ``node``, at any depth, with how it runs: "", "lazy" or "TYPE_CHECKING"."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, kind
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for inner in child.body:
                yield from _import_nodes(ast.Module(body=[inner], type_ignores=[]), "TYPE_CHECKING")
            for inner in child.orelse:
                yield from _import_nodes(ast.Module(body=[inner], type_ignores=[]), kind)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _import_nodes(child, kind or "lazy")
        else:
            yield from _import_nodes(child, kind)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    is_package = known[module].name == "__init__.py"
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = _resolve(module, is_package, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            names.add(submodule if submodule in known else base)
        names.add(base)  # ``from X import y`` runs X first
    targets: set[str] = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
            target = ".".join(parts[:end])
            if target not in known:
                continue
            if module == target or module.startswith(target + "."):
                continue  # the importer's own parent packages: already initialised
            targets.add(target)
    return targets


@cache
def import_graph() -> Graph:
    """The package's import graph, built from the source of every module."""
    known = _modules()
    graph: Graph = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: dict[str, str] = {}
        for node, kind in _import_nodes(tree):
            for target in _targets(module, node, known):
                edges.setdefault(target, f"line {node.lineno}" + (f", {kind}" if kind else ""))
        graph[module] = edges
    return graph


def find_cycles(graph: Graph) -> list[tuple[list[str], set[str]]]:
    """Each strongly connected group of modules (Tarjan) with one cycle through it, as a closed path ``a -> b -> a``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, {}):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(_cycle_in(graph, group), group) for group in groups]


def _cycle_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest closed path through the group's alphabetically first module."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node]):
            if nxt == start:
                return [*paths[node], start]
            if nxt in group and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected group


def _describe(graph: Graph, found: tuple[list[str], set[str]]) -> str:
    cycle, group = found
    steps = [f"{_short(a)} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    text = " -> ".join([*steps, _short(cycle[-1])])
    others = sorted(_short(m) for m in group - set(cycle))
    return text + (f"; the same knot also ties in {', '.join(others)}" if others else "")


def _short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".")


# --- the graph --------------------------------------------------------------------------------


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    """The walk finds the credential modules and their function-level, relative imports (the graph is not empty)."""
    graph = import_graph()
    assert f"{SOURCES}.sts" in graph
    chain = graph[f"{PACKAGE}._chain"]
    assert f"{SOURCES}.environment" in chain  # imported inside default_provider
    assert f"{SOURCES}.shared_files" in chain  # imported only when the environment has no credentials
    assert SOURCES in chain  # the package a submodule import runs through
    assert PACKAGE not in chain  # the importer's own parent is not an edge


def test_find_cycles_reports_every_cycle() -> None:
    """The cycle finder reports each cycle as a closed path, lazy edges included, and nothing for a tree."""
    graph: Graph = {"a": {"b": "1"}, "b": {"c": "2", "a": "7"}, "c": {"a": "3"}, "d": {"e": "4"}, "e": {"d": "5"}}
    graph["f"] = {"a": "6"}
    found = sorted(find_cycles(graph), key=lambda item: item[0])
    assert found == [(["a", "b", "a"], {"a", "b", "c"}), (["d", "e", "d"], {"d", "e"})]
    assert "also ties in c" in _describe(graph, found[0])
    assert find_cycles({"a": {"b": "1"}, "b": {}, "c": {"a": "1", "b": "2"}}) == []


def test_no_import_cycles() -> None:
    """No module imports, even lazily inside a function, a module that (in turn) imports it back."""
    graph = import_graph()
    cycles = find_cycles(graph)
    if cycles:  # every cycle, not just the first
        pytest.fail(f"{len(cycles)} import cycle(s):\n" + "\n".join(_describe(graph, c) for c in cycles), pytrace=False)


CREDENTIAL_LAYER = ("_credentials", "_environ", "_region", "_aws_config", "_chain", "_sources")

# what each credential module may import from the package: only what sits below it
ALLOWED = {
    "_environ": set(),
    "_aws_config": set(),
    "_credentials": {"errors", "_redact"},  # _redact: the one repr helper for secrets, imports nothing
    "_region": {"_environ", "_aws_config", "errors"},
    "_sources": {
        "_credentials",
        "_environ",
        "_region",
        "_aws_config",
        "_endpoints",
        "_signing",
        "_version",
        "_network",  # the proxies and CA bundle of every HTTP call (the client's, else the environment's)
        "_validators",  # pure checks (and the package's one ISO-8601 parser), below everything but errors
        "errors",
        "_sources",
    },
    "_chain": {"_credentials", "errors", "_sources"},
}


def _layer(name: str) -> str:
    short = _short(name)
    return "_sources" if short == "_sources" or short.startswith("_sources.") else short


def test_credential_modules_import_only_downward() -> None:
    """The credential modules import only the layers below them: values, sources, then the chain that picks one."""
    graph = import_graph()
    wrong = []
    for module, edges in graph.items():
        layer = _layer(module)
        if layer not in ALLOWED:
            continue
        for target, line in edges.items():
            if _layer(target) not in ALLOWED[layer]:
                wrong.append(f"{_short(module)} ({line}) imports {_short(target)}")
    if wrong:
        pytest.fail("\n".join(wrong), pytrace=False)


def test_credential_modules_are_in_no_cycle() -> None:
    """Whatever other cycles exist, none passes through a credential module or the signer."""
    graph = import_graph()
    ours = [c for c in find_cycles(graph) if any(_layer(m) in (*CREDENTIAL_LAYER, "_signing") for m in c[1])]
    if ours:
        pytest.fail("\n".join(_describe(graph, c) for c in ours), pytrace=False)


# --- what loads, in a fresh interpreter ---------------------------------------------------------


def _loaded_after(code: str, environ: dict[str, str]) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter with only ``environ``'s AWS_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(environ)
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _sources_loaded(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m == SOURCES or m.startswith(SOURCES + ".")}


def test_importing_the_package_loads_no_optional_or_credential_source_module() -> None:
    """import aiopersonalize_events loads neither the CLI, the emulator, the signer's requests stack nor any source."""
    loaded = _loaded_after("import aiopersonalize_events", {})
    for lazy in (f"{PACKAGE}.cli", f"{PACKAGE}.emulator", "aws_requests_auth", "requests"):
        assert not {m for m in loaded if m == lazy or m.startswith(lazy + ".")}, lazy
    assert not _sources_loaded(loaded)
    assert f"{PACKAGE}._aws_config" not in loaded  # the shared files are parsed only when needed


FIRST_USE = (
    f"{PACKAGE}._network",  # proxies and the CA bundle: read when a client opens
    f"{PACKAGE}._signing",  # the signer: when a client knows its endpoint
    f"{PACKAGE}._recorder",  # the recorder and its delivery engine: with the first recorder
    f"{PACKAGE}._delivery",
    f"{PACKAGE}.spool",  # the spools (and sqlite3): when one of their names is used
    "sqlite3",
)


def _under(loaded: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in loaded for name in names if m == name or m.startswith(name + ".")}


def test_importing_the_package_leaves_the_network_the_recorder_and_the_spools_to_first_use() -> None:
    """A fresh ``import aiopersonalize_events`` loads neither ``_network``, the signer, the recorder nor a spool."""
    loaded = _loaded_after("import aiopersonalize_events", {})
    assert _under(loaded, FIRST_USE) == set()
    assert f"{PACKAGE}._client" in loaded  # the client itself is there, ready to be built


LAZY_NAMES = f"""
import {PACKAGE} as package
from {PACKAGE}._recorder import EventRecorder, RecorderStats
from {PACKAGE}.spool import MemorySpool, Spool
from {PACKAGE}.spool.sqlite import SqliteSpool
assert package.EventRecorder is EventRecorder and package.RecorderStats is RecorderStats
assert package.MemorySpool is MemorySpool and package.Spool is Spool and package.SqliteSpool is SqliteSpool
assert {{"EventRecorder", "SqliteSpool", "MemorySpool"}} <= set(dir(package))
try:
    package.NoSuchName
except AttributeError as error:
    assert "NoSuchName" in str(error)
else:
    raise AssertionError("an unknown name must be an AttributeError")
"""


def test_the_recorder_and_spool_names_load_on_first_use_and_are_the_modules_own() -> None:
    """``aiopersonalize_events.EventRecorder`` (and the spools) import their module then, and are the same objects."""
    loaded = _loaded_after(LAZY_NAMES, {})
    assert {f"{PACKAGE}._recorder", f"{PACKAGE}.spool", f"{PACKAGE}.spool.sqlite", "sqlite3"} <= loaded


OPEN_A_CLIENT = f"""
import asyncio
from {PACKAGE} import Credentials, PersonalizeEventsClient

async def main():
    credentials = Credentials("AKIDIMPORTGRAPH00002", "import-graph-secret")
    async with PersonalizeEventsClient(region="eu-west-1", endpoint_url="http://127.0.0.1:9", credentials=credentials):
        pass

asyncio.run(main())
"""


def test_opening_a_client_loads_the_network_settings_and_the_signer_but_no_recorder() -> None:
    """The network settings are read when a client opens; the recorder and the spools still wait for their first use."""
    loaded = _loaded_after(OPEN_A_CLIENT, {})
    assert {f"{PACKAGE}._network", f"{PACKAGE}._signing"} <= loaded
    assert _under(loaded, (f"{PACKAGE}._recorder", f"{PACKAGE}._delivery", f"{PACKAGE}.spool", "sqlite3")) == set()


ENV_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDIMPORTGRAPH00001", "AWS_SECRET_ACCESS_KEY": "import-graph-secret"}
RESOLVE = f"""
import asyncio
from {PACKAGE}._chain import default_provider
from {PACKAGE}._region import resolve_region
from {PACKAGE}.errors import NoCredentialsError

async def main():
    await resolve_region()
    try:
        await default_provider().resolve()
    except NoCredentialsError:
        pass

asyncio.run(main())
"""


def test_environment_credentials_load_no_other_source() -> None:
    """With keys and region in the environment, a first resolve loads only the environment source: no STS, no signer."""
    loaded = _loaded_after(RESOLVE, {**ENV_KEYS, "AWS_REGION": "eu-west-1"})
    assert _sources_loaded(loaded) == {SOURCES, f"{SOURCES}.environment"}
    for heavy in (f"{PACKAGE}._signing", f"{PACKAGE}._aws_config", "aws_requests_auth", "requests", "configparser"):
        assert heavy not in loaded, heavy


def test_without_environment_credentials_the_rest_of_the_chain_loads(tmp_path: Path) -> None:
    """Without keys in the environment the search goes on, and the other sources (and STS) are imported then."""
    environ = {
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
    }
    loaded = _loaded_after(RESOLVE, environ)
    expected = {"environment", "web_identity", "shared_files", "container", "instance_metadata", "sts"}
    assert {f"{SOURCES}.{name}" for name in expected} <= _sources_loaded(loaded)
