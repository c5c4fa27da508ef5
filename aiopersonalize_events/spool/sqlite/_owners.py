"""Owners of a shared spool file: each process registers, renews its lease, and takes over what the gone left.

Each process registers as an *owner* (host, pid, process start time, a
heartbeat counter ``beat``, and a wall-clock ``expires`` kept for people and
earlier releases); its rows carry its owner id. An owner renews every few
seconds, raising its ``beat``; another process takes over (moves to itself,
in one transaction) the rows of an owner that is gone: the same host and
its pid no longer runs (or runs another program, or is a zombie), or its
heartbeat has not moved for ``lease`` seconds as the *watching* process
measures them on its own monotonic clock. No wall clock decides: a clock
that jumps (NTP, a VM resumed, an operator) neither keeps a dead owner's
rows nor takes a live owner's. Rows are never taken from an owner that
lives. ``Duties`` says when the writer renews and takes over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sqlite3
from typing import Final

from ._segments import segment_body, segment_events

__all__ = ["HOST", "Duties", "Owner", "process_lives", "proc_start"]

log: Final = logging.getLogger("aiopersonalize_events.spool")

HOST: Final = socket.gethostname()
_CLAIM_CHUNK: Final = 10_000  # rows taken over from dead owners in one round at most
ROW_OVERHEAD: Final = 64  # bytes counted per segment beyond its body (row header, ids)


def proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), to tell a reused pid from its first owner, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def process_lives(pid: int, started: str | None) -> bool:
    """True when ``pid`` runs on this host and (when known) is the same process that registered."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    if started is not None:
        now = proc_start(pid)
        if now is not None and now != started:
            return False
        with contextlib.suppress(OSError):  # a zombie (killed, not yet reaped) holds nothing
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if data[data.rfind(b")") + 2 :].split()[:1] == [b"Z"]:
                return False
    return True


class Owner:
    """This process as an owner of the file: its id, its lease, and the SQL that registers, renews and takes over.

    Every method runs inside the caller's transaction (the writer's round);
    ``now`` is the wall-clock time written (``expires``, ``created``: for
    people, and for earlier releases sharing the file), ``watch`` this
    process's monotonic clock, which alone decides who is gone.
    """

    __slots__ = ("_seen", "id", "lease", "path", "pid", "tracking_id", "unreadable")

    def __init__(self, path: str, tracking_id: str, lease: float) -> None:
        self.path = path
        self.tracking_id = tracking_id
        self.lease = lease
        self.pid = os.getpid()
        self.id = f"{HOST}/{self.pid}/{secrets.token_hex(4)}"
        self._seen: dict[str, tuple[tuple[int, float], float]] = {}  # owner -> (its heartbeat, since when)
        self.unreadable = 0  # events taken over that could not be read (dead letters), since the writer last asked

    def register(self, conn: sqlite3.Connection, now: float) -> None:
        """Enter (or enter again) the owners table with a fresh lease."""
        conn.execute(
            "INSERT OR REPLACE INTO owners (owner, host, pid, started, expires, beat) VALUES (?, ?, ?, ?, ?, 0)",
            (self.id, HOST, self.pid, proc_start(self.pid), now + self.lease),
        )

    def renew(self, conn: sqlite3.Connection, now: float) -> None:
        """Renew the lease; when another process thought us gone (and took our rows), register again."""
        renewed = conn.execute(
            "UPDATE owners SET expires = ?, beat = beat + 1 WHERE owner = ?", (now + self.lease, self.id)
        ).rowcount
        if not renewed:
            log.error(
                "spool %s: this process's lease had expired and its events were taken over by another; "
                "some may be sent twice (the service de-duplicates them by eventId)",
                self.path,
            )
            self.register(conn, now)

    def gone(self, conn: sqlite3.Connection, watch: float) -> list[str]:
        """The other owners that are gone: their pid no longer runs here, or their heartbeat has not moved for
        ``lease`` seconds of ``watch`` (this process's monotonic clock; an owner first seen now is alive)."""
        found = []
        seen: dict[str, tuple[tuple[int, float], float]] = {}
        rows = conn.execute("SELECT owner, host, pid, started, expires, beat FROM owners").fetchall()
        for owner, host, pid, started, expires, beat in rows:
            if owner == self.id:
                continue
            if host == HOST and not process_lives(pid, started):
                found.append(owner)
                continue
            sign = (int(beat or 0), float(expires))  # an earlier release only moves ``expires``: that counts too
            before = self._seen.get(owner)
            if before is None or before[0] != sign:
                seen[owner] = (sign, watch)
            elif watch - before[1] > self.lease:
                found.append(owner)
            else:
                seen[owner] = before
        self._seen = seen
        return found

    def claim(self, conn: sqlite3.Connection, now: float, watch: float) -> int:
        """Take over the segments of owners that are gone (and those nobody owns), up to a chunk; return events.

        Each segment taken over is read once here: events that cannot be
        read become dead letters with the reason (and leave the counts), so
        what is reported recovered is what will be offered to send.
        """
        gone = self.gone(conn, watch)
        if gone:
            conn.executemany("DELETE FROM owners WHERE owner = ?", [(o,) for o in gone])
            log.info("spool %s: %d process(es) gone; taking over their events", self.path, len(gone))
        orphan = "tracking_id = ? AND (owner IS NULL OR owner NOT IN (SELECT owner FROM owners))"
        found = conn.execute(
            f"SELECT id, count, body, nbytes, created FROM segments WHERE {orphan} ORDER BY id LIMIT ?",
            (self.tracking_id, _CLAIM_CHUNK),
        ).fetchall()
        if not found:
            return 0
        events = 0
        for segment, count, body, nbytes, created in found:
            events += self._move(conn, segment, (int(count), bytes(body), int(nbytes), created), now)
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'recovered'", (events,))
        return events

    def _move(self, conn: sqlite3.Connection, segment: int, row: tuple[int, bytes, int, float], now: float) -> int:
        """One segment taken over: moved to a new id (above every segment read back so far: they are read back
        in id order), its unreadable events kept as dead letters; returns the events that can be sent."""
        count, body, nbytes, created = row
        decoded = segment_events(body)
        readable = [(e, s, u) for e, s, u in decoded if e is not None]
        dead = [(self.tracking_id, s, u, now) for e, s, u in decoded if e is None]
        conn.execute("DELETE FROM segments WHERE id = ?", (segment,))
        new_bytes = 0
        if readable:
            new_body = body if not dead else segment_body(readable)
            new_bytes = nbytes if not dead else len(new_body) + ROW_OVERHEAD
            conn.execute(
                "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) VALUES (?, ?, ?, ?, ?, ?)",
                (self.tracking_id, len(readable), new_body, new_bytes, self.id, created),
            )
        if dead or len(readable) != count:
            self.unreadable += len(dead)
            if dead:
                conn.executemany(
                    "INSERT INTO dead (tracking_id, line, reason, failed_at) VALUES (?, ?, ?, ?)",
                    [(t, line, reason, at) for t, line, reason, at in dead],
                )
                log.error(
                    "spool %s: %d stored event(s) could not be read; kept as dead letters with the reason",
                    self.path,
                    len(dead),
                )
            conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                [
                    (count - len(readable), "deleted"),
                    (len(readable) - count, "held_events"),
                    (new_bytes - nbytes, "held_bytes"),
                    (len(dead), "dead"),
                ],
            )
        return len(readable)

    def leave(self, conn: sqlite3.Connection) -> None:
        """Free the rows this process did not send (owner NULL) and leave the owners table."""
        conn.execute("UPDATE segments SET owner = NULL WHERE owner = ?", (self.id,))
        conn.execute("DELETE FROM owners WHERE owner = ?", (self.id,))


class Duties:
    """When this owner renews its lease and looks for gone owners to take over, on the writer's ``Clock``.

    The lease is renewed every ``lease / 3`` seconds (and at close), gone
    owners are looked for every ``min(2, lease / 3)`` seconds (never at
    close); ``wait()`` is how long an idle writer may sleep before one is due.
    """

    __slots__ = ("_claim_at", "_lease_at", "owner")

    def __init__(self, owner: Owner, now: float) -> None:
        self.owner = owner
        self._lease_at = now + owner.lease / 3
        self._claim_at = now + min(2.0, owner.lease / 3)

    def due(self, now: float) -> bool:
        """True when renewing or taking over is due at ``now``."""
        return now >= self._lease_at or now >= self._claim_at

    def wait(self, now: float) -> float:
        """Seconds until the next duty (at least 0.01)."""
        return max(0.01, min(self._lease_at, self._claim_at) - now)

    def run(self, conn: sqlite3.Connection, now: float, wall: float, *, closing: bool) -> int:
        """Inside the round's transaction: renew when due (and at close), take over when due; return events taken."""
        claimed = 0
        lease = self.owner.lease
        if now >= self._lease_at or closing:
            self.owner.renew(conn, wall)
            self._lease_at = now + lease / 3
        if now >= self._claim_at and not closing:
            claimed = self.owner.claim(conn, wall, now)
            self._claim_at = now + min(2.0, lease / 3)
        return claimed
