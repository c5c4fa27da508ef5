"""The public surface: a sorted, complete __all__, docstrings, type information, and a light import."""

from __future__ import annotations

import importlib.resources
import inspect
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import aiopersonalize_events
from aiopersonalize_events import errors, serde

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PUBLIC_MODULES = [aiopersonalize_events, errors, serde]

# the names DESIGN.md section 2 fixes for the core client
CONTRACT = {
    "Action",
    "ActionInteraction",
    "ClientConfig",
    "CredentialProvider",
    "Credentials",
    "Event",
    "Item",
    "MetricAttribution",
    "PersonalizeEventsClient",
    "ResponseMetadata",
    "User",
    "PersonalizeEventsError",
    "ValidationError",
    "NoCredentialsError",
    "TransportError",
    "ServiceError",
    "InvalidInputException",
    "ResourceNotFoundException",
    "ResourceInUseException",
    "ThrottlingException",
    "AccessDeniedException",
}


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_unique_and_every_name_exists(module: ModuleType) -> None:
    """__all__ is sorted, has no duplicates, and every name in it can be imported."""
    names = list(module.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), name


def test_the_contracts_names_are_exported() -> None:
    """Every name the public contract fixes is importable from the top-level package."""
    assert set(aiopersonalize_events.__all__) >= CONTRACT


def test_every_error_class_is_re_exported() -> None:
    """Every exception in aiopersonalize_events.errors is also importable from the package."""
    exported = set(aiopersonalize_events.__all__)
    for name in errors.__all__:
        if inspect.isclass(getattr(errors, name)):
            assert name in exported, name
            assert getattr(aiopersonalize_events, name) is getattr(errors, name)


def test_no_public_name_is_left_out_of_all() -> None:
    """Every public class the package namespace holds is listed in __all__ (nothing exported by accident)."""
    listed = set(aiopersonalize_events.__all__)
    for name, value in vars(aiopersonalize_events).items():
        if not name.startswith("_") and inspect.isclass(value):
            assert name in listed, name


def _public_objects() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                found.append((f"{module.__name__}.{name}", value))
                if inspect.isclass(value):
                    for attr, member in vars(value).items():
                        if attr.startswith("_"):
                            continue
                        if inspect.isfunction(member) or isinstance(member, property):
                            found.append((f"{module.__name__}.{name}.{attr}", member))
    return found


@pytest.mark.parametrize(("name", "obj"), _public_objects(), ids=[n for n, _ in _public_objects()])
def test_every_public_class_function_and_method_has_a_docstring(name: str, obj: object) -> None:
    """Every public class, function, method and property says what it is for."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    assert doc, name
    assert doc.strip(), name


def test_modules_have_docstrings() -> None:
    """The package and its public modules have a module docstring."""
    for module in PUBLIC_MODULES:
        assert module.__doc__, module.__name__
        assert module.__doc__.strip(), module.__name__


def test_py_typed_ships() -> None:
    """py.typed is in the package and declared as package data, so type checkers use our annotations."""
    assert importlib.resources.files("aiopersonalize_events").joinpath("py.typed").is_file()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the dev extra installs tomli on 3.10
        import tomli as tomllib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["aiopersonalize_events"]


def test_version_matches_the_distribution() -> None:
    """__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert aiopersonalize_events.__version__ == version("aiopersonalize-events")


def test_importing_the_package_stays_light() -> None:
    """import aiopersonalize_events loads neither the emulator, the CLI, botocore nor test tools, and warns nothing."""
    code = "import json, sys, aiopersonalize_events; print(json.dumps(sorted(m for m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stderr == ""
    loaded = set(json.loads(result.stdout))
    ours = {m for m in loaded if m.startswith("aiopersonalize_events")}
    for lazy in ("aiopersonalize_events.emulator", "aiopersonalize_events.cli", "aiopersonalize_events.pytest_plugin"):
        assert not {m for m in ours if m == lazy or m.startswith(lazy + ".")}, lazy
    for heavy in ("botocore", "boto3", "hypothesis", "pytest"):
        assert heavy not in loaded, heavy
    # the signer (aws-requests-auth and the `requests` it imports) loads when a client first opens
    assert "aws_requests_auth" not in loaded
    assert "requests" not in loaded
