"""The console script ``aiopersonalize-events`` (also ``python -m aiopersonalize_events``).

One ``put-*`` sub-command per entry of the operations table streams JSON
Lines (one record per line, in the service's camelCase shape) from a file or
standard input to the service: each line is checked once and becomes a
record, records are grouped into calls of at most ten (``put-events`` by the
lines' ``sessionId`` and ``userId``, in bounded memory), and the calls run
concurrently, paced at the service quota. A line that cannot be sent, and a
record the service refused, is reported with its line number and written
with the reason to ``--failed-out``; the rest go on. Ctrl-C or SIGTERM stops
reading at once, lets the calls in flight finish, writes every record read
and not sent to ``--failed-out``, and the summary says from which line the
input was not read. ``emulator`` serves the local emulator and ``demo`` runs
the quick-start demo.

Exit status: 0 every record accepted; 1 some were not (they are in
``--failed-out``), or ``--failed-out`` could not be written; 2 usage error or
unreadable input; 130 interrupted; 143 terminated (``EXIT_STATUSES``, which
every ``--help`` lists).

The modules: ``lines`` (a line into a record), ``feed`` (reading the input),
``run`` (intake, grouping, calls, stopping), ``failed`` (``--failed-out``),
``console`` (messages, progress, summary), ``connect`` (the client),
``put`` (one ``put-*`` command), ``demo`` (the quick-start demo),
``forward`` (``forward``, and ``--rate-limiter``) and ``status`` (exit
statuses). Only the entry point imports this package;
``import aiopersonalize_events`` does not.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import Final

from .. import _operations as ops
from .._version import __version__
from .console import settle_std_streams
from .feed import MAX_LINE_BYTES
from .lines import LineError, ParsedLine, line_members, parse_line
from .options import SETUP_WAIT_SECONDS, positive_int, rate, seconds, wait_seconds
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE

__all__ = [
    "EXIT_FAILED",
    "EXIT_STATUSES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "MAX_LINE_BYTES",
    "LineError",
    "ParsedLine",
    "build_parser",
    "line_members",
    "main",
    "parse_line",
]


EXIT_STATUSES: Final = f"""exit status:
  {EXIT_OK:<4} every record accepted (with --dry-run: every line valid)
  {EXIT_FAILED:<4} some records not accepted (see --failed-out), or --failed-out could not be written
  {EXIT_USAGE:<4} usage error, or input (or --failed-out) that cannot be opened or read
  {EXIT_INTERRUPTED:<4} interrupted (SIGINT, Ctrl-C)
  {EXIT_TERMINATED:<4} terminated (SIGTERM)"""
"""Every exit status, as each ``--help`` lists them."""


_EXAMPLES: Final = {
    "PutEvents": '{"sessionId": "s1", "userId": "u1", "eventType": "click", "sentAt": 1700000000, "itemId": "i1"}',
    "PutItems": '{"itemId": "i1", "properties": {"GENRE": "drama"}}',
    "PutUsers": '{"userId": "u1", "properties": {"AGE": 33}}',
    "PutActions": '{"actionId": "a1", "properties": {"CATEGORY": "promo"}}',
    "PutActionInteractions": (
        '{"actionId": "a1", "sessionId": "s1", "userId": "u1", "eventType": "Taken", "timestamp": 1700000000}'
    ),
}


def _run_put(op: ops.Operation) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from .put import run_put

        return run_put(op, args)

    return handler


def _run_emulator(args: argparse.Namespace) -> int:
    from ..emulator.__main__ import run

    return run(args)


def _run_demo(args: argparse.Namespace) -> int:
    del args
    from .demo import main as demo_main

    return demo_main()


def _run_forward(args: argparse.Namespace) -> int:
    from .forward import run

    return run(args)


def _run_spool(args: argparse.Namespace) -> int:
    from .spool import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one sub-command per operation, plus ``emulator`` and ``demo``."""
    parser = argparse.ArgumentParser(
        prog="aiopersonalize-events",
        description="Send JSON Lines to Amazon Personalize Events, serve the local emulator, or run the demo.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for op in ops.OPERATIONS:
        resource_option = "--" + op.resource_field.replace("_", "-")
        what = "tracker" if op.resource_field == "tracking_id" else "dataset"
        description = (
            f"Send JSON Lines, one {op.record.__name__} per line in the service's camelCase shape, "
            f"to {op.name} in calls of at most {op.records_per_call}."
        )
        if line_members(op):
            description += " Each line also carries its sessionId and optional userId; lines are grouped by them."
        sub = commands.add_parser(
            op.cli_name,
            help=f"send JSON Lines to {op.name}",
            description=textwrap.fill(description, 79),
            epilog=f"example line:\n  {_EXAMPLES.get(op.name, '')}\n\n{EXIT_STATUSES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            resource_option,
            dest=op.resource_field,
            required=True,
            metavar="ID" if op.resource_field == "tracking_id" else "ARN",
            help=f"the {what} to send to",
        )
        sub.add_argument(
            "file", nargs="?", default="-", metavar="FILE", help="JSON Lines file, or - for stdin (default)"
        )
        sub.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile)")
        sub.add_argument("--profile", help="named profile of the shared AWS config and credentials files")
        sub.add_argument("--endpoint-url", metavar="URL", help="send to this endpoint (e.g. the emulator's URL)")
        sub.add_argument(
            "--concurrency", type=positive_int, default=4, metavar="N", help="calls in flight at once (default: 4)"
        )
        quota = f"{op.rate:g}, the service quota" if op.rate else "unpaced"
        sub.add_argument(
            "--rate",
            type=rate,
            default=None,
            metavar="R",
            help=f"calls per second at most, 0 for unpaced (default: {quota})",
        )
        sub.add_argument(
            "--rate-limiter",
            metavar="URL",
            help="share one rate with other processes through Redis: redis://HOST:PORT[?key=K&rate=R&burst=B] "
            "(needs the redis extra; rate: --rate, else the service quota)",
        )
        sub.add_argument(
            "--max-attempts",
            type=positive_int,
            default=None,
            metavar="N",
            help="attempts of each call by the client, the first included (default: AWS_MAX_ATTEMPTS, else 3)",
        )
        sub.add_argument(
            "--deadline",
            type=seconds,
            default=None,
            metavar="SECONDS",
            help="send a batch whose call failed with a retryable error (throttling, 5xx, timeouts) again until "
            "SECONDS after the start, then give it up to --failed-out (default: no deadline, retry until stopped)",
        )
        sub.add_argument(
            "--setup-wait",
            type=wait_seconds,
            default=SETUP_WAIT_SECONDS,
            metavar="SECONDS",
            help="when the set-up is wrong (credentials missing or rejected, no permission, unknown tracking id or "
            "dataset), hold the records, read no more, and wait up to SECONDS for it to be fixed, then stop and "
            f"keep what was not sent in --failed-out (default: {SETUP_WAIT_SECONDS:g}; 0: stop at once)",
        )
        sub.add_argument("--dry-run", action="store_true", help="validate only, send nothing (needs no credentials)")
        sub.add_argument(
            "--failed-out",
            metavar="PATH",
            help="write records not accepted to PATH as JSON Lines, with the reason (never the input file)",
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
        sub.set_defaults(handler=_run_put(op))
    emulator = commands.add_parser(
        "emulator",
        help="serve the local Personalize Events emulator",
        description="Serve the local emulator until interrupted; prints its URL on stdout.",
        epilog="exit status:\n  0    stopped by Ctrl-C or SIGTERM\n  1    cannot listen on the address\n"
        "  2    usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ..emulator.__main__ import add_arguments

    add_arguments(emulator)
    emulator.set_defaults(handler=_run_emulator)
    demo = commands.add_parser(
        "demo",
        help="run the quick-start demo against the built-in emulator",
        description="Show every feature in about a screen, against an in-process emulator (no AWS account).",
    )
    demo.set_defaults(handler=_run_demo)
    from .forward import EPILOG as FORWARD_EPILOG
    from .forward import add_arguments as add_forward_arguments

    forward = commands.add_parser(
        "forward",
        help="send a Redis stream's records to the service, as one forwarder of a consumer group",
        description="Drain a Redis stream into the service as one member of a consumer group, until SIGTERM.",
        epilog=FORWARD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_forward_arguments(forward)
    forward.set_defaults(handler=_run_forward)
    from .spool import EPILOG as SPOOL_EPILOG
    from .spool import add_arguments as add_spool_arguments

    spool = commands.add_parser(
        "spool",
        help="inspect a recorder's SQLite spool; export, retry or clear its dead letters",
        description="Inspect an SqliteSpool file; export, queue again or clear the events that failed for good.",
        epilog=SPOOL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_spool_arguments(spool)
    spool.set_defaults(handler=_run_spool)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:  # outside the put-* runs, which handle SIGINT themselves
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # standard output closed under the demo or --help: nothing more to say
        return EXIT_FAILED
    finally:
        settle_std_streams()
