"""What the emulator has accepted, in memory: events, dataset records, and the call counter.

Events (and action interactions) are kept in arrival order and
de-duplicated by ``eventId`` per tracker: the first one wins and later ones
only count as duplicates. An event sent without an id gets one, as the
service gives it one. Dataset records (items, users, actions) are upserted
by their id per dataset ARN. A lock guards every change and every read, so
an emulator serving from a background thread can be inspected from another.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Store"]


class Store:
    """The emulator's memory of accepted records and of every answered call."""

    __slots__ = ("_calls", "_datasets", "_duplicates", "_lock", "_seen", "_streams")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[str, set[tuple[str, str]]] = {}
        self._datasets: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self._duplicates = 0
        self._calls: Counter[tuple[str, int]] = Counter()

    def append_events(
        self, kind: str, id_member: str, tracking_id: str, records: Iterable[dict[str, Any]], added: Mapping[str, Any]
    ) -> int:
        """Keep events of ``kind`` not seen before (by ``id_member`` per tracker); return how many were new.

        Each kept record gets ``trackingId`` and the members of ``added``
        (``sessionId``, ``userId``) and, when it has none, a generated id.
        """
        kept = 0
        with self._lock:
            stream = self._streams.setdefault(kind, [])
            seen = self._seen.setdefault(kind, set())
            for record in records:
                event_id = record.get(id_member)
                if event_id is None:
                    event_id = record[id_member] = str(uuid.uuid4())
                key = (tracking_id, event_id)
                if key in seen:
                    self._duplicates += 1
                    continue
                seen.add(key)
                record["trackingId"] = tracking_id
                record.update(added)
                stream.append(record)
                kept += 1
        return kept

    def upsert(self, kind: str, id_member: str, dataset_arn: str, records: Iterable[dict[str, Any]]) -> None:
        """Add or replace dataset records of ``kind`` by ``id_member``; each gets ``datasetArn``."""
        with self._lock:
            dataset = self._datasets.setdefault(kind, {}).setdefault(dataset_arn, {})
            for record in records:
                record["datasetArn"] = dataset_arn
                dataset[record[id_member]] = record

    def stream(self, kind: str, tracking_id: str | None = None) -> list[dict[str, Any]]:
        """A copy of the accepted events of ``kind``, of one tracker or of all."""
        with self._lock:
            records = self._streams.get(kind, [])
            chosen = [r for r in records if tracking_id is None or r["trackingId"] == tracking_id]
            return copy.deepcopy(chosen)

    def dataset(self, kind: str, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        """A copy of the current records of ``kind``, of one dataset or of all."""
        with self._lock:
            datasets = self._datasets.get(kind, {})
            if dataset_arn is not None:
                chosen = list(datasets.get(dataset_arn, {}).values())
            else:
                chosen = [r for records in datasets.values() for r in records.values()]
            return copy.deepcopy(chosen)

    def count_call(self, operation: str, status: int) -> None:
        """Count one answered call (status 0 for a dropped connection)."""
        with self._lock:
            self._calls[(operation, status)] += 1

    @property
    def calls(self) -> Counter[tuple[str, int]]:
        """A copy of the call counter."""
        with self._lock:
            return Counter(self._calls)

    @property
    def duplicates(self) -> int:
        """Events received again with an id already accepted."""
        with self._lock:
            return self._duplicates

    def clear(self) -> None:
        """Forget every record, duplicate and call."""
        with self._lock:
            self._streams.clear()
            self._seen.clear()
            self._datasets.clear()
            self._duplicates = 0
            self._calls.clear()
