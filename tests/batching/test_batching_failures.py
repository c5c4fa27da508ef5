"""The *_batched helpers when something unexpected fails: every record accounted for, what was
already sent said, and a client closed mid-batch a library error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiopersonalize_events import (
    BatchIncompleteError,
    ClientConfig,
    ClientStateError,
    Credentials,
    Item,
    PersonalizeEventsClient,
)
from aiopersonalize_events.emulator import Emulator, Faults

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"


def _client(emulator: Emulator, **config: Any) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDR2", "r2-secret"),
        config=ClientConfig(**config),
    )


# -- *_batched never loses records -------------------------------------------------------------------------------


class _FlakyProvider:
    """A custom credential provider that raises a plain exception on every third call (a bug in user code)."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(self) -> Credentials:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("provider bug")
        return Credentials("AKIDR2", "r2-secret")


async def test_batched_accounts_for_every_record_whatever_the_exception(emulator: Emulator) -> None:
    """100 items, a provider that raises RuntimeError now and then: sent + failed == 100, failures say why."""
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=_FlakyProvider()
    ) as client:
        items = [Item(item_id=f"i{n}") for n in range(100)]
        result = await client.put_items_batched(dataset_arn=ARN, items=items, requests_per_second=None)
    assert result.sent + result.failed == 100
    assert result.failed > 0
    assert result.sent == len(emulator.items(ARN))
    assert all("RuntimeError" in str(f.error) for f in result.failures)
    assert all(isinstance(f.error.__cause__, RuntimeError) for f in result.failures)


async def test_a_failing_stream_says_what_was_already_sent(emulator: Emulator) -> None:
    """An async iterable that raises after 25 items: BatchIncompleteError carries sent=20 and the 5 read but unsent."""

    async def stream() -> AsyncIterator[Item]:
        for n in range(25):
            yield Item(item_id=f"i{n}")
        raise OSError("the feed broke")

    async with _client(emulator) as client:
        with pytest.raises(BatchIncompleteError) as info:
            await client.put_items_batched(dataset_arn=ARN, items=stream(), requests_per_second=None)
    result = info.value.result
    assert (result.sent, result.failed) == (20, 5)
    assert len(emulator.items(ARN)) == 20
    assert isinstance(info.value.__cause__, OSError)


async def test_a_client_closed_mid_batch_fails_the_rest_with_a_library_error(emulator: Emulator) -> None:
    """Closing the client during a batch: the calls not yet made fail with ClientStateError; nothing vanishes."""
    emulator.faults = Faults(latency=0.05)
    async with _client(emulator) as client:

        async def stream() -> AsyncIterator[Item]:
            for n in range(60):
                if n == 30:
                    await client.close()
                yield Item(item_id=f"i{n}")

        result = await client.put_items_batched(
            dataset_arn=ARN, items=stream(), requests_per_second=None, max_concurrency=2
        )
    assert result.sent + result.failed == 60
    assert result.failed >= 30
    assert any(isinstance(f.error, ClientStateError) for f in result.failures)
