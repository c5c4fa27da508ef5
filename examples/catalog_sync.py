"""An asyncio worker that syncs a catalog from a JSON Lines file to an Items dataset with ``put_items_batched``.

Each line is one item in the service's shape, e.g.
``{"itemId": "sku-1", "properties": {"GENRE": "drama", "PRICE": 12}}``.
The file is read lazily in a worker thread (never whole, never blocking the
loop), validated line by line, and sent in calls of ten, paced at the
PutItems quota of 10 calls per second. With ``--every SECONDS`` the worker
syncs again and again until stopped (Ctrl-C).

    python examples/catalog_sync.py                # writes a sample catalog and syncs it to the built-in emulator
    python examples/catalog_sync.py catalog.jsonl  # your file, to the built-in emulator
    python examples/catalog_sync.py catalog.jsonl --endpoint-url http://127.0.0.1:4566   # an emulator elsewhere
    AWS_REGION=eu-west-1 python examples/catalog_sync.py catalog.jsonl --aws \\
        --dataset-arn arn:aws:personalize:eu-west-1:123456789012:dataset/my-group/ITEMS

Where it sends: with ``--aws``, wherever the AWS SDKs would (region,
credentials and endpoint from the environment and the shared files); with
``--endpoint-url`` (default: ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, else
``AWS_ENDPOINT_URL``), to that endpoint, e.g. ``aiopersonalize-events emulator
--port 4566`` in another shell, whose ``/_emulator/records/items`` shows what
arrived; otherwise to an emulator it runs itself. Only the last imports the
emulator.

Exit status 0 when every item was accepted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO

from aiopersonalize_events import BatchResult, Credentials, Item, PersonalizeEventsClient, ValidationError
from aiopersonalize_events.serde import from_wire

EXAMPLE_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/example/ITEMS"


def _read_lines(file: IO[bytes], count: int) -> list[bytes]:
    return list(itertools.islice(file, count))


async def read_items(path: Path, *, skipped: list[int]) -> AsyncIterator[Item]:
    """Yield the file's items one by one; a line that is not a valid item is skipped and its number kept."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        number = 0
        while lines := await asyncio.to_thread(_read_lines, file, 500):
            for line in lines:
                number += 1
                if not line.strip():
                    continue
                try:
                    yield from_wire(Item, json.loads(line))
                except (ValueError, ValidationError) as exc:  # ValidationError says which member and why
                    print(f"{path}:{number}: skipped: {exc}", file=sys.stderr)
                    skipped.append(number)
    finally:
        await asyncio.to_thread(file.close)


async def sync_catalog(
    client: PersonalizeEventsClient, *, dataset_arn: str, path: Path, concurrency: int = 4
) -> tuple[BatchResult[Item], list[int]]:
    """Send every item of ``path`` to ``dataset_arn``; returns the batch result and the skipped line numbers."""
    skipped: list[int] = []
    result = await client.put_items_batched(
        dataset_arn=dataset_arn, items=read_items(path, skipped=skipped), max_concurrency=concurrency
    )
    return result, skipped


def write_sample(directory: Path, count: int = 120) -> Path:
    """Write a sample catalog of ``count`` items and return its path."""
    path = directory / "catalog.jsonl"
    genres = ("drama", "comedy", "documentary")
    with path.open("w", encoding="utf-8") as f:
        for i in range(count):
            item = {"itemId": f"sku-{i:04d}", "properties": {"GENRE": genres[i % 3], "PRICE": 5 + i % 40}}
            f.write(json.dumps(item) + "\n")
    return path


def configured_endpoint() -> str | None:
    """The endpoint the environment names for Personalize Events, as the AWS SDKs read it, or None."""
    return os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(*, aws: bool, endpoint_url: str | None) -> PersonalizeEventsClient:
    """``--aws``: all as the AWS SDKs find it. Otherwise a local endpoint: region and keys may be placeholders."""
    if aws:  # region, credentials (and an endpoint) from the environment and the shared files
        return PersonalizeEventsClient(endpoint_url=endpoint_url)
    region = None if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") else "us-east-1"
    keys = None if os.environ.get("AWS_ACCESS_KEY_ID") else Credentials("AKIDEXAMPLE", "example-secret")
    return PersonalizeEventsClient(region=region, endpoint_url=endpoint_url, credentials=keys)


async def run(args: argparse.Namespace) -> int:
    """Sync once, or every ``args.every`` seconds; return the exit status of the last sync."""
    async with contextlib.AsyncExitStack() as stack:
        url = args.endpoint_url
        if not args.aws and url is None:
            from aiopersonalize_events.emulator import Emulator  # only here: --aws never loads the emulator

            emulator = await stack.enter_async_context(Emulator())
            url = emulator.endpoint_url
        client = make_client(aws=args.aws, endpoint_url=url)
        await stack.enter_async_context(client)
        path = args.file
        if path is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            path = write_sample(Path(directory))
        while True:
            result, skipped = await sync_catalog(
                client, dataset_arn=args.dataset_arn, path=path, concurrency=args.concurrency
            )
            print(
                f"synced {result.sent} items in {result.calls} calls; "
                f"{result.failed} not accepted, {len(skipped)} lines skipped"
            )
            for failure in result.failures:
                print(f"  {len(failure.records)} items from position {failure.position}: {failure.error}")
            status = 0 if result.ok and not skipped else 1
            if not args.every:
                return status
            await asyncio.sleep(args.every)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, help="JSON Lines catalog (default: a generated sample)")
    parser.add_argument("--aws", action="store_true", help="send to AWS (needs AWS_REGION) instead of the emulator")
    parser.add_argument(
        "--endpoint-url",
        default=configured_endpoint(),
        help="send there, e.g. an emulator started elsewhere (default: AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, "
        "else AWS_ENDPOINT_URL, else an emulator of its own)",
    )
    parser.add_argument("--dataset-arn", default=os.environ.get("PERSONALIZE_ITEMS_DATASET_ARN", EXAMPLE_ARN))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--every", type=float, default=0.0, metavar="SECONDS", help="sync again every SECONDS")
    args = parser.parse_args(argv)
    if args.aws and not os.environ.get("AWS_REGION"):
        parser.error("--aws needs AWS_REGION set (and credentials the AWS SDKs would find)")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
