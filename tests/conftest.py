"""Shared fixtures."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _ci_skips import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary
from _redis_server import RedisServer, find_redis_server
from _scripted_server import ScriptedServer
from hypothesis import settings

from aiopersonalize_events.emulator import Emulator

__all__ = ["pytest_runtest_logreport", "pytest_sessionfinish", "pytest_terminal_summary"]  # CI fails on a skip

# In CI (CI=true), property-based tests draw the same examples on every run, so a red CI is
# reproducible and never a roll of the dice; locally they explore new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A recording, scripted aiohttp.web server on 127.0.0.1 (see tests/_scripted_server.py)."""
    scripted = ScriptedServer()
    await scripted.start()
    yield scripted
    await scripted.stop()


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
"""The machine's proxy settings: the client honours them, and tests reach only 127.0.0.1 directly."""


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the machine's AWS settings or reaches instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def collect_after() -> Iterator[None]:
    """Recorders a test leaves behind (some on purpose, with events left in their spool) go before the
    next test: a test that reads every live recorder's gauges (tests/telemetry/test_telemetry.py) sees only its own.
    Modules that leave recorders use it for every test (``pytestmark``)."""
    yield
    gc.collect()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean AWS environment: no AWS_* variables, a temporary HOME, IMDS off, STS on a closed loopback port."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    return home


@pytest.fixture
def emulator(personalize_emulator: Emulator) -> Emulator:
    """The pytest plugin's running emulator (fresh for each test), under a short name."""
    return personalize_emulator


@pytest.fixture
def retry_testing(personalize_no_retry_waits: None) -> None:
    """No backoff waits in this test (the plugin's testing switch)."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server (Redis 7) on a free loopback port, files in a temporary directory (tests/_redis_server.py).

    A missing redis-server fails the test, never skips it (the README's test command and ``.ci/run`` install it).
    """
    if find_redis_server() is None:
        pytest.fail("redis-server not found: apt-get install -y redis-server (Debian's, Redis 7)", pytrace=False)
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.kill() if server.paused else server.stop()
