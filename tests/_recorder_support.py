"""Fixtures shared by the recorder's and the SQLite spool's tests against the emulator: no backoff
waits, and a client of the emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiopersonalize_events import ClientConfig, Credentials, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """Every test here runs with the package's testing switch on: no backoff waits."""


def emulator_client(access_key_id: str, secret_access_key: str) -> Any:
    """A ``client`` fixture: a client of the emulator with these credentials, two attempts and an ample retry budget.

    A test module assigns it to a module-level name, and pytest finds it there as ``client``.
    """

    @pytest.fixture(name="client")
    async def client(emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
        async with PersonalizeEventsClient(
            region="us-east-1",
            endpoint_url=emulator.endpoint_url,
            credentials=Credentials(access_key_id, secret_access_key),
            config=ClientConfig(max_attempts=2, retry_budget=1_000_000),
        ) as c:
            yield c

    return client
