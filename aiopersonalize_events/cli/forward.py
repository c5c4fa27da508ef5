"""``aiopersonalize-events forward``: one forwarder of a consumer group, until SIGTERM or Ctrl-C.

Runs ``aiopersonalize_events.redis.Forwarder`` with a client made as the
``put-*`` commands make theirs (``--region``, ``--profile``,
``--endpoint-url``; placeholder credentials for a loopback endpoint). SIGTERM
or Ctrl-C stops reading, lets the calls in flight finish and acknowledges
them, releases the rest for the other forwarders to take at once, and exits
0 within ``--close-timeout`` (a frozen Redis included). This
module imports redis-py only when the command runs (``--help`` works
without the ``redis`` extra). ``rate_limiter`` is also what ``--rate-limiter``
of the ``put-*`` commands uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any, Final

from .. import _limits as L
from .. import _operations as ops
from .console import Console, say_error
from .options import positive_int, rate, seconds, wait_seconds
from .status import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EPILOG", "add_arguments", "rate_limiter", "run"]

EPILOG: Final = """exit status:
  0    stopped by SIGTERM or Ctrl-C (calls in flight finished and acknowledged)
  1    the forwarder failed
  2    usage error, or the redis extra is not installed"""

_NEEDS_REDIS: Final = "the forward command and --rate-limiter need redis-py: pip install 'aiopersonalize-events[redis]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``forward``."""
    parser.add_argument("--redis", required=True, metavar="URL", help="the Redis URL (redis://, rediss://, unix://)")
    parser.add_argument("--stream", required=True, metavar="S", help="the stream to drain")
    parser.add_argument("--group", required=True, metavar="G", help="the consumer group (made when missing)")
    parser.add_argument("--tracking-id", metavar="T", help="the tracker to send to (PutEvents, PutActionInteractions)")
    parser.add_argument("--dataset-arn", metavar="ARN", help="the dataset to send to (PutItems, PutUsers, PutActions)")
    parser.add_argument(
        "--operation",
        default="PutEvents",
        choices=[op.name for op in ops.OPERATIONS],
        help="the call the stream's records go to (default: PutEvents)",
    )
    parser.add_argument("--consumer", metavar="NAME", help="this forwarder's name in the group (default: HOST-PID)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile)")
    parser.add_argument("--profile", help="named profile of the shared AWS config and credentials files")
    parser.add_argument("--endpoint-url", metavar="URL", help="send to this endpoint (e.g. the emulator's URL)")
    parser.add_argument(
        "--concurrency", type=positive_int, default=8, metavar="N", help="calls in flight at once (default: 8)"
    )
    parser.add_argument(
        "--rate",
        type=rate,
        default=None,
        metavar="R",
        help="calls per second at most, 0 for unpaced (default: the service quota for PutItems/PutUsers, else unpaced)",
    )
    parser.add_argument(
        "--rate-limiter",
        metavar="URL",
        help="share one rate with every process naming the same key: redis://HOST:PORT[/DB][?key=K&rate=R&burst=B] "
        "(default key per operation and dataset group or tracker; default rate --rate, else the service quota)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=None,
        metavar="N",
        help="attempts of each call by the client, the first included (default: AWS_MAX_ATTEMPTS, else 3)",
    )
    parser.add_argument(
        "--claim-idle",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="take over entries another forwarder held this long without settling them (default: 30)",
    )
    parser.add_argument(
        "--close-timeout",
        type=wait_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, exit within this long, whatever Redis and the service do (default: 30)",
    )
    parser.add_argument("--dead-letters", metavar="KEY", help="the dead-letter stream (default: S:dead or {S}:dead)")
    parser.add_argument("--no-trim", action="store_true", help="do not trim acknowledged entries from the stream")
    parser.add_argument("--quiet", action="store_true", help="log only warnings and errors")


def _resource(op: ops.Operation, args: argparse.Namespace) -> str:
    option = "--tracking-id" if op.resource_field == "tracking_id" else "--dataset-arn"
    value: str | None = getattr(args, op.resource_field)
    if not value:
        raise UsageError(f"{op.name} needs {option}")
    return value


def rate_limiter(url: str, op: ops.Operation, resource: str, rate: float | None) -> Any:
    """The ``RedisRateLimiter`` of ``--rate-limiter URL`` (imports redis-py; ``UsageError`` when it cannot)."""
    try:
        from ..redis import limiter_from_url, quota_key
    except ImportError:
        raise UsageError(_NEEDS_REDIS) from None
    from ..errors import ValidationError

    if not rate:
        rate = op.rate if op.rate is not None else L.PUT_EVENTS_RATE if op is ops.PUT_EVENTS else None
    try:
        return limiter_from_url(url, key=quota_key(op.name, resource), rate=rate if rate else 0.0)
    except ValidationError as exc:
        if exc.path == "rate":
            problem = f"{op.name} has no default quota; give --rate or ?rate= in the URL"
            raise UsageError(f"--rate-limiter: {problem}") from None
        raise UsageError(f"--rate-limiter: {exc.message}") from None


def run(args: argparse.Namespace) -> int:
    """Run ``forward`` with parsed ``args``; return the exit status."""
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        say_error(f"error: {_NEEDS_REDIS}")
        return EXIT_USAGE
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(message)s", level=logging.WARNING)
    logging.getLogger("aiopersonalize_events.redis").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return asyncio.run(_forward(args))
    except UsageError as exc:
        say_error(f"error: {exc}")
        return EXIT_USAGE


async def _forward(args: argparse.Namespace) -> int:
    from ..errors import ValidationError
    from ..redis import Forwarder
    from ..redis._connect import check_parses
    from .connect import make_client

    op = ops.BY_NAME[args.operation]
    resource = _resource(op, args)
    try:  # a URL that does not parse is a usage error, said without quoting it (it may hold a password)
        check_parses(args.redis, "redis")
    except ValidationError as exc:
        raise UsageError(f"--redis: {exc.message}") from None
    limiter = rate_limiter(args.rate_limiter, op, resource, args.rate) if args.rate_limiter else None
    pace: Any = limiter if limiter is not None else (op.rate if args.rate is None else (args.rate or None))
    console = Console(sys.stderr)
    client = await make_client(args, console)
    try:
        try:
            forwarder = Forwarder(
                client,
                args.redis,
                stream=args.stream,
                group=args.group,
                tracking_id=args.tracking_id,
                dataset_arn=args.dataset_arn,
                operation=op.name,
                consumer=args.consumer,
                requests_per_second=pace,
                max_concurrency=args.concurrency,
                claim_idle=args.claim_idle,
                close_timeout=args.close_timeout,
                dead_letters=args.dead_letters,
                trim=not args.no_trim,
            )
        except ValidationError as exc:
            flag = "redis" if exc.path == "url" else exc.path.replace("_", "-")
            raise UsageError(f"--{flag}: {exc.message}") from None
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, forwarder.stop)
                installed.append(signum)
        try:
            await forwarder.run()
        except Exception as exc:
            say_error(f"error: the forwarder failed: {type(exc).__name__}: {exc}")
            return EXIT_FAILED
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
        stats = forwarder.stats
        group = "unknown (Redis did not answer)" if stats.pending is None else str(stats.pending)
        console.say(
            f"forwarded {stats.sent} record(s) in {stats.calls} call(s); {stats.dead} to {forwarder.dead_letters}; "
            f"{stats.held} read and not sent released for the other forwarders; the group has {group} pending"
        )
        return EXIT_OK
    finally:
        await client.close()
        if limiter is not None:
            await limiter.close()
