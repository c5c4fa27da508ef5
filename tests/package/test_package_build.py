"""Packaging as the ecosystem expects: license, metadata, the sdist and the wheel, the changelog, one version."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from aiopersonalize_events import __version__

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def _pyproject() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _tracked(*folders: str) -> set[str]:
    """Files git tracks under ``folders`` (what a clone has), relative to the root."""
    result = subprocess.run(
        ["git", "ls-files", "--", *folders], capture_output=True, text=True, cwd=ROOT, check=False, timeout=30
    )
    if result.returncode != 0:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare with")
    return {line for line in result.stdout.splitlines() if (ROOT / line).is_file()}


def _copy_of_tracked(into: Path) -> Path:
    """A copy of the files git tracks, in ``into``; the tree itself when it is not a git checkout (an sdist)."""
    listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=False, timeout=30)
    if listed.returncode != 0:
        return ROOT
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


def test_license_file_is_apache_2() -> None:
    """LICENSE holds the Apache License 2.0 the metadata declares."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_pyproject_declares_license_as_spdx_with_files_urls_and_classifiers() -> None:
    """license is an SPDX string with license-files; urls and per-version classifiers are declared."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert {"Repository", "Changelog", "Issues"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())
    classifiers = set(project["classifiers"])
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    # PEP 639: with a license expression, setuptools refuses "License ::" classifiers
    assert not any(c.startswith("License ::") for c in classifiers)
    assert project["requires-python"] == f">={PYTHONS[0]}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The sdist and the wheel, built from this tree as a release would be (``python -m build``)."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    # built from a copy of what git tracks (what a clone has): setuptools writes its egg-info into the tree it
    # builds, and CI runs the suite on two Pythons at once in one checkout
    source = _copy_of_tracked(tmp_path_factory.mktemp("source"))
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel, result.stdout + result.stderr


def test_build_gives_no_license_deprecation_warning(built: tuple[Path, Path, str]) -> None:
    """Building warns about nothing in the license declaration (the TOML table form is deprecated)."""
    log = built[2]
    assert "License classifiers are deprecated" not in log
    assert "`project.license` as a TOML table is deprecated" not in log


def test_wheel_has_license_metadata_and_only_the_package(built: tuple[Path, Path, str]) -> None:
    """The wheel carries LICENSE, the SPDX expression, urls, classifiers, py.typed and every module; no tests."""
    with zipfile.ZipFile(built[1]) as wheel:
        names = set(wheel.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode("utf-8"))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    urls = {value.split(",", 1)[0] for value in metadata.get_all("Project-URL")}
    assert {"Repository", "Changelog", "Issues"} <= urls
    classifiers = set(metadata.get_all("Classifier"))
    assert {f"Programming Language :: Python :: {v}" for v in PYTHONS} <= classifiers
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "aiopersonalize_events").rglob("*.py")}
    assert modules <= names
    assert "aiopersonalize_events/py.typed" in names
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)


def test_sdist_is_testable_on_its_own(built: tuple[Path, Path, str], tmp_path: Path) -> None:
    """The sdist holds the license, changelog, tests and the examples and benchmarks they run; its suite collects."""
    with tarfile.open(built[0]) as sdist:
        members = sdist.getnames()
        top = members[0].split("/", 1)[0]
        names = {m.split("/", 1)[1] for m in members if "/" in m}
        sdist.extractall(tmp_path, filter="data")
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    missing = _tracked("tests", "examples", "benchmarks", "aiopersonalize_events") - names
    assert not missing, f"tracked files not in the sdist: {sorted(missing)}"
    unpacked = tmp_path / top
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=unpacked,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in result.stdout.lower().split("\n")[-2], result.stdout[-2000:]


def test_changelog_keeps_a_changelog_with_the_version_dated() -> None:
    """CHANGELOG: [Unreleased] first, then dated releases, the newest being the package's version."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[0] == "[Unreleased]"
    releases = headings[1:]
    assert releases, "no released version"
    for heading in releases:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading
    assert releases[0].startswith(f"[{__version__}] - ")


def test_version_comes_from_one_place() -> None:
    """The version is written once, in _version.py; pyproject reads it, the metadata and --version agree."""
    from importlib.metadata import version

    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    setuptools_conf = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    assert setuptools_conf["dynamic"]["version"] == {"attr": "aiopersonalize_events._version.__version__"}
    assert version("aiopersonalize-events") == __version__
    literal = re.compile(rf"""["']{re.escape(__version__)}["']""")
    package = (ROOT / "aiopersonalize_events").rglob("*.py")
    holders = [str(p.relative_to(ROOT)) for p in package if literal.search(p.read_text(encoding="utf-8"))]
    assert holders == ["aiopersonalize_events/_version.py"]
    out = subprocess.run(
        [sys.executable, "-m", "aiopersonalize_events", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == f"aiopersonalize-events {__version__}"


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, title
    return match.group(1)


def test_readme_says_what_installing_brings() -> None:
    """The Install section names every runtime dependency, and requests (which aws-requests-auth pulls in)."""
    from importlib.metadata import requires

    install = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Install")
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
        assert f"`{name}`" in install, name
    signer_needs = [r.split(";")[0] for r in requires("aws-requests-auth") or []]
    assert any(r.startswith("requests") for r in signer_needs)
    assert "`requests`" in install


def test_readme_links_work_from_a_pypi_page() -> None:
    """Every link in the README is absolute (a relative one breaks on PyPI); no link to a file not in the repo."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, flags=re.M)
    assert targets, "the README links somewhere"
    for target in targets:
        assert target.startswith(("https://", "http://")), f"relative link {target!r}"


# --- CI: every declared Python, found without an install path; a missing one fails; pytest's 5 fails ----------------

CI = ROOT / ".ci" / "run"


def _ci(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CI), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_ci_runs_every_declared_python() -> None:
    """.ci/run takes its versions from the classifiers (3.10-3.13) and runs the suite on each it finds."""
    text = CI.read_text(encoding="utf-8")
    assert "Programming Language :: Python :: 3" in text
    assert "/root/" not in text
    assert ".pyenv/versions" not in text  # found through pyenv or PATH, never a written install path
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    listed = _ci("--find-pythons", env={**env, "CI_PYTHONS": ""})
    versions = [line.split()[0] for line in listed.stdout.splitlines()]
    assert versions == list(PYTHONS), listed.stdout + listed.stderr


def test_ci_finds_a_python_on_path_and_fails_for_a_missing_one(tmp_path: Path) -> None:
    """python3.X on PATH is found; a declared version neither on PATH nor in pyenv fails the run, naming it."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{here}").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "CI_PYTHONS": here}
    found = _ci("--find-pythons", env=env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [here, str(bin_dir / f"python{here}")]
    missing = _ci("--find-pythons", env={**env, "CI_PYTHONS": f"{here} 3.99"})
    assert missing.returncode == 1
    assert "3.99 MISSING" in missing.stdout
    assert "declared Python(s) not found: 3.99" in missing.stderr


def test_ci_fails_when_pytest_collects_nothing() -> None:
    """pytest's exit status 5 (no test collected) fails CI."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    args = (sys.executable, "-p", "no:cacheprovider", "tests/package/test_package_build.py", "-k", "no_such_test_xyz")
    result = _ci("--pytest", *args, env=env)
    assert result.returncode == 1
    assert "collected no tests: failing" in result.stderr


def test_ci_runs_the_readmes_quick_start_commands() -> None:
    """.ci/run runs the README's first quick-start command as written, and the second one split up."""
    text = CI.read_text(encoding="utf-8")
    quick = re.search(r"^## Quick start\n(.*?)^## ", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    assert quick
    commands = [line for line in quick.group(1).splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2
    assert commands[0].endswith("demo")
    assert "## Quick start" in text
    assert 'bash -ec "$first"' in text
    as_run = {  # how .ci/run writes each step: quieter, and pytest through the exit-status check
        "python3 -m venv .venv": "python3 -m venv .venv",
        ".venv/bin/pip install -e '.[dev]'": ".venv/bin/pip install --quiet -e '.[dev]'",
        "(command -v redis-server || (apt-get update; apt-get install -y redis-server))": (
            "command -v redis-server >/dev/null 2>&1 || { apt-get update && apt-get install -y redis-server; }"
        ),
        ".venv/bin/python -m pytest": "run_pytest .venv/bin/python",
    }
    assert commands[1].split(" && ") == list(as_run)
    for step in as_run.values():
        assert f"\n{step}" in text, step


def test_ci_fails_when_a_test_is_skipped(tmp_path: Path) -> None:
    """A skipped test fails CI (CI=true): the run says which, and a run with nothing skipped passes."""
    (tmp_path / "test_skipping.py").write_text(
        "import pytest\n\ndef test_skipped():\n    pytest.skip('no tool')\n\ndef test_passes():\n    pass\n",
        encoding="utf-8",
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), "PYTHONPATH": str(ROOT / "tests")}
    args = (sys.executable, "-p", "no:cacheprovider", "-p", "_ci_skips", str(tmp_path / "test_skipping.py"))
    skipped = _ci("--pytest", *args, env=env)
    assert skipped.returncode == 1, skipped.stdout + skipped.stderr
    assert "1 test(s) skipped, which fails the run" in skipped.stdout
    assert "test_skipping.py::test_skipped" in skipped.stdout
    passed = _ci("--pytest", *args, "-k", "passes", env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
