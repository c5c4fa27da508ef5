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

The async fixtures need pytest-asyncio; without it they fail with a message
saying so, and nothing else in a test suite is affected. The emulator is
imported only when a fixture is used.
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


async def _personalize_emulator(personalize_emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
    """A running Personalize Events emulator on 127.0.0.1, fresh for each test."""
    from .emulator import Emulator

    async with Emulator(**personalize_emulator_options) as emulator:
        yield emulator


async def _personalize_client(personalize_emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
    """A PersonalizeEventsClient bound to ``personalize_emulator``, opened and closed around the test."""
    from ._client import PersonalizeEventsClient
    from ._credentials import Credentials

    client = PersonalizeEventsClient(
        region=TEST_REGION,
        endpoint_url=personalize_emulator.endpoint_url,
        credentials=Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY),
    )
    async with client:
        yield client


def _needs_pytest_asyncio() -> None:
    """Stands in for the async fixtures when pytest-asyncio is missing: fails the test saying so."""
    pytest.fail("the personalize_emulator and personalize_client fixtures need pytest-asyncio")


personalize_emulator: Any
personalize_client: Any
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - only without pytest-asyncio; a suite that does not use us keeps working
    personalize_emulator = pytest.fixture(name="personalize_emulator")(_needs_pytest_asyncio)
    personalize_client = pytest.fixture(name="personalize_client")(_needs_pytest_asyncio)
else:
    personalize_emulator = pytest_asyncio.fixture(name="personalize_emulator")(_personalize_emulator)
    personalize_client = pytest_asyncio.fixture(name="personalize_client")(_personalize_client)


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
