"""pytest fixtures for testing code that sends to Amazon Personalize Events, against the local emulator.

Installed as the ``aiopersonalize_events`` plugin (a ``pytest11`` entry
point), it gives every test suite:

- ``personalize_emulator``: a running ``aiopersonalize_events.emulator.Emulator``
  on 127.0.0.1 and a free port, fresh for each test. It accepts any
  well-formed SigV4 signature; override ``personalize_emulator_options`` (a
  dict of ``Emulator`` keyword arguments) in a conftest to verify
  credentials, register resources, inject faults or turn quotas on.
- ``personalize_client``: a ``PersonalizeEventsClient`` bound to that
  emulator (region ``us-east-1``, credentials ``AKIDTEST``/``test-secret``),
  opened before and closed after the test.
- ``personalize_no_retry_waits``: turns the package's testing switch on for
  the test (``aiopersonalize_events.set_testing``): retries and recorder
  re-sends happen without backoff waits; attempts, budget and counters stay
  as in production.

The emulator and client live in the test's own event loop, so the fixtures
need a plugin that runs async tests: pytest-asyncio (strict mode with
``@pytest.mark.asyncio``, or auto mode) or anyio's plugin
(``@pytest.mark.anyio``, as FastAPI's documentation does; asyncio backend).
Without one they fail with a message saying so, and nothing else in a test
suite is affected. The emulator is imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from ._client import PersonalizeEventsClient
    from .emulator import Emulator

__all__ = [
    "TEST_ACCESS_KEY_ID",
    "TEST_REGION",
    "TEST_SECRET_ACCESS_KEY",
    "personalize_client",
    "personalize_emulator",
    "personalize_emulator_options",
    "personalize_no_retry_waits",
]

TEST_ACCESS_KEY_ID: Final = "AKIDTEST"
"""The access key id ``personalize_client`` signs with."""
TEST_SECRET_ACCESS_KEY: Final = "test-secret"
"""The secret key ``personalize_client`` signs with (a test value, not a real secret)."""
TEST_REGION: Final = "us-east-1"
"""The region ``personalize_client`` uses."""


@pytest.fixture
def personalize_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the ``personalize_emulator`` fixture's ``Emulator``; override it to change them."""
    return {}


_NEEDS_A_RUNNER: Final = (
    "the personalize_emulator and personalize_client fixtures are async: run the test with pytest-asyncio "
    "(mark it @pytest.mark.asyncio, or set asyncio_mode = auto) or with anyio's pytest plugin (mark it "
    "@pytest.mark.anyio)"
)


def _runner(request: pytest.FixtureRequest) -> str:
    """Which plugin runs this test's coroutines: ``anyio`` or ``asyncio`` (pytest-asyncio); fails if neither."""
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        if name != "asyncio":
            pytest.fail(
                f"the personalize_emulator and personalize_client fixtures need the asyncio backend of anyio "
                f"(aiohttp runs on asyncio only), not {name!r}",
                pytrace=False,
            )
        return "anyio"
    if request.config.pluginmanager.has_plugin("asyncio") and _asyncio_fixtures:
        return "asyncio"
    pytest.fail(_NEEDS_A_RUNNER, pytrace=False)


@pytest.fixture
def personalize_emulator(request: pytest.FixtureRequest) -> Emulator:
    """A running Personalize Events emulator on 127.0.0.1, fresh for each test, in the test's event loop.

    Works under pytest-asyncio (strict or auto mode) and under anyio's
    pytest plugin (``@pytest.mark.anyio``, the asyncio backend): the
    emulator is started by whichever runs the test, in the test's own loop.
    """
    emulator: Emulator = request.getfixturevalue(f"_personalize_emulator_{_runner(request)}")
    return emulator


@pytest.fixture
def personalize_client(request: pytest.FixtureRequest) -> PersonalizeEventsClient:
    """A PersonalizeEventsClient bound to ``personalize_emulator``, opened before and closed after the test."""
    client: PersonalizeEventsClient = request.getfixturevalue(f"_personalize_client_{_runner(request)}")
    return client


async def _emulator(options: dict[str, Any]) -> AsyncIterator[Emulator]:
    from .emulator import Emulator

    async with Emulator(**options) as emulator:
        yield emulator


async def _client(emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
    from ._client import PersonalizeEventsClient
    from ._credentials import Credentials

    client = PersonalizeEventsClient(
        region=TEST_REGION,
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
    )
    async with client:
        yield client


# anyio's plugin runs plain async fixtures that a test using ``anyio_backend`` requests, in that test's loop
@pytest.fixture
async def _personalize_emulator_anyio(personalize_emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
    async for emulator in _emulator(personalize_emulator_options):
        yield emulator


@pytest.fixture
async def _personalize_client_anyio(personalize_emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
    async for client in _client(personalize_emulator):
        yield client


_asyncio_fixtures = False
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - only without pytest-asyncio; anyio users and other suites keep working
    pass
else:

    @pytest_asyncio.fixture
    async def _personalize_emulator_asyncio(personalize_emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
        async for emulator in _emulator(personalize_emulator_options):
            yield emulator

    @pytest_asyncio.fixture
    async def _personalize_client_asyncio(personalize_emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
        async for client in _client(personalize_emulator):
            yield client

    _asyncio_fixtures = True


@pytest.fixture
def personalize_no_retry_waits() -> Iterator[None]:
    """For the test: no backoff waits between retries (``set_testing(True)``), switched back off after."""
    from ._retry import is_testing, set_testing

    before = is_testing()
    set_testing(True)
    try:
        yield
    finally:
        set_testing(before)
