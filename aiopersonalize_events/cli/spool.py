"""``aiopersonalize-events spool stats|export-failed|retry-failed|clear PATH``: a recorder's SQLite spool from a shell.

``stats`` says what the file holds (pending events by tracking id, the
processes that own them and whether they live, dead letters, lifetime
totals), ``--json`` for a program. ``export-failed`` writes the dead letters
as JSON Lines in the same form as ``--failed-out`` (``{"line": N, "reason":
"...", "record": {...}}``; ``line`` is the dead letter's number in the file,
``record`` a ``put-events`` input line: the event in the service's camelCase
shape with its ``sessionId`` and ``userId``), so ``jq -c .record`` feeds them
back to ``put-events``; with ``--clear`` the exported letters leave the file.
``retry-failed`` queues dead letters again: the next recorder of their
tracking id on the file (or a running one, within seconds) sends them.
``clear`` deletes dead letters. Each command may narrow to one
``--tracking-id``.

The file is opened read-only for ``stats`` and ``export-failed`` (without
``--clear``; as it stands on disk, ``immutable``, when SQLite cannot share it
read-only with this user's rights); a file written by a newer version is
refused, as the recorder refuses it, and another program's database is
refused before anything in it changes. Exit status: 0 done, 1 the output
could not be written, 2 no such spool, not a spool, a half-made or damaged
one (one line, no traceback), or a usage error. ``sqlite3`` is imported only
when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from .failed import FailedOut, encode_entry
from .status import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["EPILOG", "add_arguments", "run"]

EPILOG: Final = """\
examples:
  aiopersonalize-events spool stats /var/lib/app/events.db
  aiopersonalize-events spool export-failed /var/lib/app/events.db --out failed.jsonl
  jq -c .record failed.jsonl | aiopersonalize-events put-events --tracking-id T -
  aiopersonalize-events spool retry-failed /var/lib/app/events.db --tracking-id T
  aiopersonalize-events spool clear /var/lib/app/events.db

exit status: 0 done, 1 the output could not be written, 2 no such spool, not a spool, or a usage error
"""

_SEGMENT_EVENTS: Final = 1000  # dead letters queued again go back in segments of at most this many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``spool`` sub-commands and their options."""
    actions = parser.add_subparsers(dest="spool_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        sub.add_argument("path", metavar="PATH", help="the spool file (as given to SqliteSpool)")
        sub.add_argument("--tracking-id", metavar="ID", help="only the events of this tracking id")
        return sub

    stats = action("stats", "say what the spool holds: pending events, owners, dead letters, totals")
    stats.add_argument("--json", action="store_true", help="one JSON object instead of text")
    export = action("export-failed", "write the dead letters as JSON Lines, in the form of --failed-out")
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    export.add_argument("--clear", action="store_true", help="delete the exported letters once written")
    action("retry-failed", "queue the dead letters again, for a recorder of their tracking id to send")
    action("clear", "delete the dead letters")


def run(args: argparse.Namespace) -> int:
    """Run one ``spool`` sub-command; return the exit status."""
    import sqlite3

    try:
        if args.spool_command == "stats":
            return _stats(args)
        if args.spool_command == "export-failed":
            return _export(args)
        if args.spool_command == "retry-failed":
            return _retry(args)
        return _clear(args)
    except UsageError as exc:
        print(f"aiopersonalize-events spool: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # a half-made or damaged file: unreadable input, said in one line
        print(f"aiopersonalize-events spool: {_damaged(args.path, exc)}", file=sys.stderr)
        return EXIT_USAGE


def _damaged(path: str, exc: BaseException) -> str:
    low = str(exc).lower()
    if "no such table" in low or "no such column" in low:
        return f"{path} is not a whole spool ({exc}): was it made by another program, or cut short?"
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return (
            f"the spool {path} is corrupted ({exc}); a recorder opening it moves it aside and starts a new one "
            "(copy it elsewhere first to keep what can be read)"
        )
    return f"cannot read the spool {path}: {type(exc).__name__}: {exc}"


# -- opening -----------------------------------------------------------------------------------


def _open(path: str, *, write: bool) -> sqlite3.Connection:
    """The spool at ``path``, checked (a spool, of a schema this version reads); never creates one."""
    import sqlite3

    from ..spool import SpoolError
    from ..spool.sqlite._file import SCHEMA_VERSION, connect_spool

    if not os.path.isfile(path):
        raise UsageError(f"no spool at {path}")
    if write:
        try:
            return connect_spool(path, create=False)
        except SpoolError as exc:
            raise UsageError(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path} is not a spool ({exc})") from None
    conn, version = _open_read_only(path, immutable=False)
    if version is None or version > SCHEMA_VERSION:
        conn.close()
        raise UsageError(
            f"the spool {path} was written by a newer aiopersonalize-events (schema version {version}; "
            f"this version reads up to {SCHEMA_VERSION}): upgrade aiopersonalize-events"
            if version
            else f"{path} is not a spool (no schema version)"
        )
    return conn


def _open_read_only(path: str, *, immutable: bool) -> tuple[sqlite3.Connection, int | None]:
    """``mode=ro``; where that cannot work (a WAL file whose directory or ``-shm`` we may not write: an
    operator with read access only) the file is read as ``immutable``, which shows what is checkpointed."""
    import sqlite3

    uri = f"file:{_uri_path(path)}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path} is not a spool ({exc})") from None
    try:
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()  # Python 3.13 warns of a connection left to the garbage collector
        low = str(exc).lower()
        if not immutable and ("readonly" in low or "read-only" in low or "unable to open" in low):
            print(
                f"aiopersonalize-events spool: {path} may not be written by this user; reading it as it stands on "
                "disk (events a running recorder has not yet checkpointed from the -wal file are not shown)",
                file=sys.stderr,
            )
            return _open_read_only(path, immutable=True)
        raise UsageError(f"{path} is not a spool ({exc})") from None
    return conn, version


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))


def _where(args: argparse.Namespace, column: str = "tracking_id") -> tuple[str, tuple[Any, ...]]:
    if args.tracking_id is None:
        return "", ()
    return f" WHERE {column} = ?", (args.tracking_id,)


# -- stats -------------------------------------------------------------------------------------------


def _stats(args: argparse.Namespace) -> int:
    from ..spool.sqlite._owners import HOST, process_lives

    conn = _open(args.path, write=False)
    try:
        where, params = _where(args)
        pending = {
            tracking: {"events": events, "segments": segments, "bytes": size}
            for tracking, events, segments, size in conn.execute(
                f"SELECT tracking_id, sum(count), count(*), sum(nbytes) FROM segments{where} "
                "GROUP BY tracking_id ORDER BY tracking_id",
                params,
            )
        }
        dead = dict(conn.execute(f"SELECT tracking_id, count(*) FROM dead{where} GROUP BY tracking_id", params))
        held_by = dict(conn.execute(f"SELECT owner, sum(count) FROM segments{where} GROUP BY owner", params))
        now = time.time()
        owners = []
        for owner, host, pid, started, expires in conn.execute("SELECT owner, host, pid, started, expires FROM owners"):
            lives = expires >= now and (host != HOST or process_lives(pid, started))
            owners.append(
                {
                    "owner": owner,
                    "host": host,
                    "pid": pid,
                    "lives": lives,
                    "lease_expires_in_s": round(expires - now, 1),
                    "events": held_by.get(owner, 0),
                }
            )
        free = held_by.get(None, 0)
        known = {o["owner"] for o in owners}
        orphaned = sum(n for owner, n in held_by.items() if owner is not None and owner not in known)
        totals = dict(conn.execute("SELECT name, value FROM counters"))
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    finally:
        conn.close()
    sizes = {suffix or "db": _size(args.path + suffix) for suffix in ("", "-wal")}
    report = {
        "path": args.path,
        "schema_version": version,
        "file_bytes": sizes["db"],
        "wal_bytes": sizes["-wal"],
        "pending": pending,
        "pending_events": sum(p["events"] for p in pending.values()),
        "free_events": free + orphaned,
        "owners": owners,
        "dead_letters": dead,
        "dead_letter_count": sum(dead.values()),
        "totals": totals,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return EXIT_OK
    lines = [
        f"spool {args.path} (schema version {version}; {_kib(sizes['db'])} on disk, WAL {_kib(sizes['-wal'])})",
        f"pending: {report['pending_events']} event(s)"
        + (" (" + ", ".join(f"{t}: {p['events']}" for t, p in pending.items()) + ")" if pending else ""),
        f"  waiting for the next recorder (no live owner): {report['free_events']}",
    ]
    for o in owners:
        state = "lives" if o["lives"] else "gone (its events are taken over by the next recorder)"
        lines.append(f"  held by {o['host']} pid {o['pid']}: {o['events']} event(s), {state}")
    lines.append(
        f"dead letters: {report['dead_letter_count']}"
        + (" (" + ", ".join(f"{t}: {n}" for t, n in sorted(dead.items())) + ")" if dead else "")
    )
    lines.append(
        "lifetime: "
        + ", ".join(f"{name} {totals.get(name, 0)}" for name in ("written", "deleted", "dead", "recovered"))
        + f"; held {totals.get('held_events', 0)} event(s), {_kib(totals.get('held_bytes', 0))}"
    )
    print("\n".join(lines))
    return EXIT_OK


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


# -- dead letters ------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    if args.out and os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a directory: give the name of a file to write")
    conn = _open(args.path, write=args.clear)
    try:
        out = FailedOut.open(args.out) if args.out else None
    except BaseException:
        conn.close()
        raise
    written: list[int] = []
    try:
        where, params = _where(args)
        rows = conn.execute(f"SELECT id, line, reason FROM dead{where} ORDER BY id", params).fetchall()
        stream = sys.stdout.buffer
        for letter, line, reason in rows:
            try:
                record: Any = json.loads(line)
            except ValueError:
                record = line
            if out is not None:
                if not out.write(letter, reason, record, line):
                    print(f"aiopersonalize-events spool: cannot write {args.out}: {out.error}", file=sys.stderr)
                    return EXIT_FAILED
            else:
                try:
                    stream.write(encode_entry(letter, reason, record, line))
                except OSError as exc:
                    print(f"aiopersonalize-events spool: cannot write the output: {exc}", file=sys.stderr)
                    return EXIT_FAILED
            written.append(letter)
        if out is None:
            try:
                stream.flush()
            except OSError as exc:
                print(f"aiopersonalize-events spool: cannot write the output: {exc}", file=sys.stderr)
                return EXIT_FAILED
        if args.clear and written:
            _delete_dead(conn, written)
    finally:
        if out is not None:
            out.close()
        conn.close()
    what = f"{len(written)} dead letter(s) exported" + (" and cleared" if args.clear else "")
    print(what + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return EXIT_OK


def _delete_dead(conn: sqlite3.Connection, letters: list[int]) -> int:
    from ..spool.sqlite._file import transaction

    with transaction(conn):
        gone = conn.execute(
            "DELETE FROM dead WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(letters),)
        ).rowcount
    return int(gone)


def _retry(args: argparse.Namespace) -> int:
    from .._lines import line_event
    from ..errors import PersonalizeEventsError
    from ..spool.sqlite._file import transaction
    from ..spool.sqlite._segments import segment_body

    conn = _open(args.path, write=True)
    try:
        where, params = _where(args)
        with transaction(conn):
            rows = conn.execute(
                f"SELECT id, tracking_id, line FROM dead{where}{' AND' if where else ' WHERE'} event_id IS NOT NULL "
                "ORDER BY id",
                params,
            ).fetchall()
            by_tracker: dict[str, list[tuple[Any, str, str | None]]] = {}
            queued: list[int] = []
            for letter, tracking, line in rows:
                try:
                    by_tracker.setdefault(tracking, []).append(line_event(line))
                except (ValueError, PersonalizeEventsError):
                    continue  # unreadable: it stays a dead letter
                queued.append(letter)
            now = time.time()
            events = size = 0
            for tracking, letters in by_tracker.items():
                for start in range(0, len(letters), _SEGMENT_EVENTS):
                    chunk = letters[start : start + _SEGMENT_EVENTS]
                    body = segment_body(chunk)
                    nbytes = len(body) + 64
                    conn.execute(
                        "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) "
                        "VALUES (?, ?, ?, ?, NULL, ?)",
                        (tracking, len(chunk), body, nbytes, now),
                    )
                    events += len(chunk)
                    size += nbytes
            conn.execute("DELETE FROM dead WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(queued),))
            conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                [(events, "written"), (events, "held_events"), (size, "held_bytes")],
            )
            skipped = conn.execute(f"SELECT count(*) FROM dead{where}", params).fetchone()[0]
    finally:
        conn.close()
    trackers = ", ".join(sorted(by_tracker)) or "-"
    print(
        f"{events} dead letter(s) queued again (tracking id {trackers}): the next recorder of that tracking id on "
        "this file sends them (a running one within seconds)"
        + (f"; {skipped} unreadable letter(s) left as they are" if skipped else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    conn = _open(args.path, write=True)
    try:
        where, params = _where(args)
        letters = [r[0] for r in conn.execute(f"SELECT id FROM dead{where}", params)]
        gone = _delete_dead(conn, letters) if letters else 0
    finally:
        conn.close()
    print(f"{gone} dead letter(s) deleted", file=sys.stderr)
    return EXIT_OK
