"""``ConsumerGroup``: what a forwarder says to its consumer group, one Redis command (or script) each.

The forwarder (``_forwarder``) decides when; this module says how:

- ``create()``: ``XGROUP CREATE ... 0 MKSTREAM`` (a new group starts at the
  stream's first entry; an existing one is left as it is);
- ``read()``: ``XREADGROUP`` (this consumer's own pending entries from a
  cursor, or new ones with ``>``), cut short by ``stop()`` through the caller;
- ``claim()``: ``XAUTOCLAIM`` of entries idle for more than ``claim_idle``
  (one pass over the group's pending entries); ``take_over()``: ``XCLAIM`` of
  the pending entries of consumers the last ``survey()`` found dead or
  released;
- ``heartbeat()``: ``XCLAIM ... JUSTID`` of the entries this forwarder still
  works on, so their idle time (and the consumer's own) stays low and nobody
  takes them over;
- ``release()``: at stop, the entries read and not settled are handed to this
  consumer's *released* twin (``released_name``) with a very long idle time:
  the next ``survey()`` of any live forwarder takes them over at once, and a
  forwarder of an older version takes them at its next ``XAUTOCLAIM``;
- ``survey()``: one script over ``XINFO CONSUMERS``: consumers idle for more
  than ``dead_after`` seconds (dead: killed, or cut off) and released twins
  are removed from the group (``XGROUP DELCONSUMER``) when they hold nothing,
  and named for ``take_over()`` when they do;
- ``acknowledge()``, ``dead_letter()``: ``XACK`` (pipelined, many calls'
  entries per round trip), and the move of refused or poison entries to the
  dead-letter stream with their reason (``XADD`` + ``XACK`` in one
  transaction: the dead letters share the stream's hash slot);
- ``trim()``: a script trims the stream (``XTRIM MINID``) below the oldest
  entry any consumer group of the stream still needs; ``info()`` reads the
  group's lag and pending count (``XINFO GROUPS``); ``forget()`` removes this
  consumer when it holds nothing.

Commands that must get through (reading, claiming, acknowledging) go through
the ``RedisCaller`` (backoff while Redis is away); the housekeeping ones
(heartbeat, survey, trim, info) are made once a round by ``Housekeeping``,
the forwarder's background task, whose next round tries again when Redis did
not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any, Final

import redis.asyncio
import redis.exceptions

from ._caller import RedisCaller
from ._connect import as_text, describe
from ._entries import RECORD_FIELD

__all__ = ["RELEASED_SUFFIX", "ConsumerGroup", "Entry", "Housekeeping", "released_name"]

log: Final = logging.getLogger("aiopersonalize_events.redis")

Entry = tuple[Any, Any]
"""A stream entry as read: its id (bytes) and its fields (a dict, empty when the entry was deleted)."""

RELEASED_SUFFIX: Final = "~released"
"""Ends the name of the consumer that holds a stopped forwarder's released entries until another takes them."""

RELEASE_IDLE_MS: Final = 365 * 24 * 3600 * 1000
"""The idle time (ms) released entries are given: past any ``claim_idle``, so every claimer may take them."""

_TRIM: Final = """
-- KEYS[1]: the stream. Trim below the oldest entry any of its consumer groups still needs.
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local low_ms, low_seq
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local id = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    id = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  ms = tonumber(ms)
  seq = tonumber(seq)
  if low_ms == nil or ms < low_ms or (ms == low_ms and seq < low_seq) then
    low_ms, low_seq = ms, seq
  end
end
if low_ms == nil or (low_ms == 0 and low_seq == 0) then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%.0f', low_ms, low_seq))
"""

_FORGET: Final = """
-- KEYS[1]: the stream; ARGV: group, consumer. Delete the consumer only when it holds no pending entry.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

_SURVEY: Final = """
-- KEYS[1]: the stream; ARGV: group, this consumer, dead after (ms), the released suffix.
-- Consumers idle past the bound, and released twins: deleted when they hold nothing, else named.
local suffix = ARGV[4]
local removed = 0
local names = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  local name = info['name']
  local released = #name > #suffix and string.sub(name, -#suffix) == suffix
  if name ~= ARGV[2] and (released or tonumber(info['idle']) > tonumber(ARGV[3])) then
    if tonumber(info['pending']) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      removed = removed + 1
    else
      names[#names + 1] = name
    end
  end
end
return {removed, names}
"""


def released_name(consumer: str) -> str:
    """The consumer that holds ``consumer``'s released entries until a live forwarder takes them over."""
    return f"{consumer}{RELEASED_SUFFIX}"


class ConsumerGroup:
    """The commands of consumer ``consumer`` in group ``group`` of ``stream``; see the module documentation.

    ``connection`` is set by the owner once it connected (and cleared at the
    end); ``caller`` makes the commands that must get through.
    """

    def __init__(
        self,
        caller: RedisCaller,
        *,
        stream: str,
        group: str,
        consumer: str,
        dead_letters: str,
        claim_idle: float,
        dead_after: float,
        read_count: int,
    ) -> None:
        self._caller = caller
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_letters = dead_letters
        self._claim_idle_ms = int(claim_idle * 1000)
        self._dead_after_ms = max(1, int(dead_after * 1000))
        self._read_count = read_count
        self.connection: redis.asyncio.Redis | None = None
        self._scripts: dict[str, Any] = {}

    def connected(self, connection: redis.asyncio.Redis) -> None:
        """Use ``connection`` from now on (its scripts registered)."""
        self.connection = connection
        self._scripts = {
            "trim": connection.register_script(_TRIM),
            "forget": connection.register_script(_FORGET),
            "survey": connection.register_script(_SURVEY),
        }

    def _redis(self) -> redis.asyncio.Redis:
        assert self.connection is not None, "not connected"
        return self.connection

    async def create(self) -> None:
        """Make the group (and the stream) unless it exists."""
        try:
            await self._redis().xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        else:
            log.info("forwarder %s: created group %s on %s", self.consumer, self.group, self.stream)

    async def read(self, cursor: bytes | str, count: int, block: float | None) -> list[Entry]:
        """``XREADGROUP`` from ``cursor`` (``>`` for new entries), blocking ``block`` seconds; cut short at stop."""
        connection = self._redis()

        async def read() -> Any:
            return await connection.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: cursor},
                count=count,
                block=None if block is None else max(1, int(block * 1000)),
            )

        return entries_of(await self._caller.until_stopped(self._caller.call(read)))

    async def claim(self, room: int, skip: Collection[bytes]) -> tuple[list[Entry], int]:
        """Entries idle for more than ``claim_idle`` (XAUTOCLAIM, one pass), and how many were gone from the stream."""
        connection = self._redis()
        claimed: list[Entry] = []
        gone = 0
        start: Any = "0-0"
        while room > 0:

            async def autoclaim(start: Any = start, count: int = min(room, self._read_count)) -> Any:
                return await connection.xautoclaim(
                    self.stream, self.group, self.consumer, self._claim_idle_ms, start, count=count
                )

            reply = await self._caller.call(autoclaim)
            start = reply[0]
            got = entry_list(reply[1])
            if len(reply) > 2 and reply[2]:
                gone += len(reply[2])
            fresh = [entry for entry in got if entry[0] not in skip]
            claimed.extend(fresh)
            room -= len(fresh)
            if as_text(start) == "0-0" or not got:
                break
        return claimed, gone

    async def take_over(self, consumers: Collection[str], room: int, skip: Collection[bytes]) -> list[Entry]:
        """The pending entries of ``consumers`` (dead or released), claimed while idle past ``dead_after``."""
        connection = self._redis()
        taken: list[Entry] = []
        for name in consumers:
            if room <= 0:
                break

            async def pending(name: str = name, count: int = room) -> Any:
                return await connection.xpending_range(
                    self.stream, self.group, min="-", max="+", count=count, consumername=name
                )

            ids = [row["message_id"] for row in await self._caller.call(pending)]
            ids = [entry_id for entry_id in ids if entry_id not in skip]
            if not ids:
                continue

            async def xclaim(ids: list[Any] = ids) -> Any:
                return await connection.xclaim(self.stream, self.group, self.consumer, self._dead_after_ms, ids)

            got = entry_list(await self._caller.call(xclaim))
            taken.extend(got)
            room -= len(got)
        return taken

    async def heartbeat(self, ids: Collection[bytes], beat: float) -> None:
        """Reset the idle time of ``ids`` (those idle for ``beat / 2`` or more), and so the consumer's."""
        chunk: list[Any] = list(ids)
        for start in range(0, len(chunk), 1000):
            await self._redis().xclaim(
                self.stream, self.group, self.consumer, int(beat * 500), chunk[start : start + 1000], justid=True
            )

    async def release(self, ids: Collection[bytes]) -> None:
        """Hand ``ids`` to this consumer's released twin, idle for a year: any live forwarder takes them at once."""
        chunk: list[Any] = list(ids)
        twin = released_name(self.consumer)
        pipe = self._redis().pipeline(transaction=False)
        for start in range(0, len(chunk), 1000):
            pipe.xclaim(
                self.stream, self.group, twin, 0, chunk[start : start + 1000], idle=RELEASE_IDLE_MS, justid=True
            )
        await pipe.execute()

    async def survey(self) -> tuple[int, list[str]]:
        """Remove dead or released consumers that hold nothing; name those that hold entries (see the module doc)."""
        removed, names = await self._scripts["survey"](
            keys=[self.stream], args=[self.group, self.consumer, self._dead_after_ms, RELEASED_SUFFIX]
        )
        return int(removed), [as_text(name) for name in names]

    async def acknowledge(self, ids: list[Any], *, until_stopped: bool = False) -> None:
        """``XACK`` ``ids`` (pipelined, 1,000 a command), through the caller."""
        connection = self._redis()

        async def ack() -> Any:
            pipe = connection.pipeline(transaction=False)
            for start in range(0, len(ids), 1000):
                pipe.xack(self.stream, self.group, *ids[start : start + 1000])
            return await pipe.execute()

        await self._caller.call(ack, until_stopped=until_stopped)

    async def dead_letter(self, entries: list[tuple[bytes, bytes]], reason: str, *, until_stopped: bool) -> None:
        """Move ``entries`` (id, raw record) to the dead-letter stream with ``reason``, and acknowledge them."""
        connection = self._redis()
        text = reason.encode("utf-8", "replace")

        async def move() -> Any:
            pipe = connection.pipeline(transaction=True)  # one slot: the dead letters share the stream's hash tag
            for entry_id, raw in entries:
                pipe.xadd(
                    self.dead_letters,
                    {
                        RECORD_FIELD: raw,
                        b"reason": text,
                        b"stream": self.stream,
                        b"id": entry_id,
                        b"group": self.group,
                        b"consumer": self.consumer,
                    },
                )
            pipe.xack(self.stream, self.group, *(entry_id for entry_id, _ in entries))
            return await pipe.execute()

        await self._caller.call(move, until_stopped=until_stopped)

    async def trim(self) -> int:
        """Trim the stream below what every group still needs; the number of entries removed."""
        return int(await self._scripts["trim"](keys=[self.stream]) or 0)

    async def info(self) -> tuple[int | None, int | None]:
        """The group's lag and pending count (``XINFO GROUPS``); (None, None) when the group is not there."""
        for info in await self._redis().xinfo_groups(self.stream):
            if as_text(info.get("name")) == self.group:
                lag = info.get("lag")
                return (int(lag) if lag is not None else None), int(info.get("pending", 0))
        return None, None

    async def forget(self) -> None:
        """Remove this consumer from the group when it holds no pending entry."""
        await self._scripts["forget"](keys=[self.stream], args=[self.group, self.consumer])


class Housekeeping:
    """The forwarder's rounds on its group, every ``beat`` seconds at most, until the caller stops.

    Each round: ``heartbeat()`` of the ids ``held()`` gives, ``survey()``
    (consumers holding entries it names go to ``takeover``, and ``wake()``
    is called), ``info()`` (kept as ``lag`` and ``pending``), and every
    ``trim_interval`` seconds (with ``trim``) ``trim()``, its count added to
    ``trimmed``. A round Redis does not answer is skipped; the next one tries
    again.
    """

    def __init__(
        self,
        group: ConsumerGroup,
        caller: RedisCaller,
        *,
        beat: float,
        trim: bool,
        trim_interval: float,
        held: Callable[[], Collection[bytes]],
        wake: Callable[[], None],
    ) -> None:
        self._group = group
        self._caller = caller
        self._beat = beat
        self._trim = trim
        self._trim_interval = trim_interval
        self._held = held
        self._wake = wake
        self.takeover: set[str] = set()
        self.trimmed = 0
        self.lag: int | None = None
        self.pending: int | None = None

    async def run(self) -> None:
        """The rounds; returns at stop (redis-py may swallow a cancellation mid-command, so it ends by itself)."""
        every = min(self._beat, self._trim_interval)
        next_trim = self._caller.now() + self._trim_interval
        while not self._caller.stopping:
            await self._caller.pause(every)
            if self._caller.stopping:
                return
            try:
                await self._round(trim=self._trim and self._caller.now() >= next_trim)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the next round tries again
                log.debug("forwarder %s: housekeeping skipped: %s", self._group.consumer, describe(exc))
            else:
                if self._trim and self._caller.now() >= next_trim:
                    next_trim = self._caller.now() + self._trim_interval

    async def _round(self, *, trim: bool) -> None:
        held = self._held()
        if held:
            await self._group.heartbeat(held, self._beat)
        removed, holding = await self._group.survey()
        if removed:
            log.info("forwarder %s: removed %d dead consumer(s) holding nothing", self._group.consumer, removed)
        if holding:
            self.takeover.update(holding)
            self._wake()
        self.lag, self.pending = await self._group.info()
        if trim:
            trimmed = await self._group.trim()
            if trimmed:
                self.trimmed += trimmed
                log.debug("forwarder %s: trimmed %s entries", self._group.consumer, trimmed)


def entry_list(entries: Any) -> list[Entry]:
    """The (id, fields) of a list of entries as redis-py gives them (fields a dict, or a raw flat list)."""
    out: list[Entry] = []
    for entry in entries or ():
        if entry is None:
            continue
        entry_id, fields = entry[0], entry[1]
        if entry_id is None:
            continue
        if isinstance(fields, list):  # a raw reply: [field, value, ...]
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        out.append((entry_id, fields))
    return out


def entries_of(reply: Any) -> list[Entry]:
    """The entries of an XREADGROUP reply, whichever shape redis-py gives it (RESP2 list, RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        out: list[Entry] = []
        for value in reply.values():
            if value and isinstance(value[0], list) and value[0] and isinstance(value[0][0], (tuple, list)):
                value = value[0]
            out.extend(entry_list(value))
        return out
    out = []
    for stream_reply in reply:
        out.extend(entry_list(stream_reply[1]))
    return out
