"""A ``put-*`` sub-command: its usage checks, the files it opens, and the run in an event loop."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from .. import _operations as ops
from .connect import make_client
from .console import Console, say_error
from .failed import FailedOut
from .feed import Input, LineCounter, LineFeed, open_input
from .lines import check_resource
from .run import Run, handle_signals
from .status import EXIT_USAGE, UsageError

__all__ = ["run_put"]


def run_put(op: ops.Operation, args: argparse.Namespace) -> int:
    """Run ``put-*`` for ``op`` with parsed ``args``; return the exit status."""
    resource: str = getattr(args, op.resource_field)
    problem = check_resource(op, resource)
    if problem is not None:
        say_error(f"error: --{op.resource_field.replace('_', '-')}: {problem}")
        return EXIT_USAGE
    try:
        source = open_input(args.file)
    except UsageError as exc:
        say_error(f"error: {exc}")
        return EXIT_USAGE
    try:
        try:
            failed = FailedOut.open(args.failed_out, input_info=source.info)
        except UsageError as exc:
            say_error(f"error: {exc}")
            return EXIT_USAGE
        try:
            return asyncio.run(_put(op, args, resource, source, failed))
        finally:
            failed.close()
    finally:
        source.close()


async def _put(op: ops.Operation, args: argparse.Namespace, resource: str, source: Input, failed: FailedOut) -> int:
    started = time.perf_counter()
    unit = "events" if op is ops.PUT_EVENTS else "records"
    console = Console(sys.stderr, progress=not args.no_progress, total_bytes=source.size, unit=unit)
    try:
        client: Any = None
        if not args.dry_run:
            try:
                client = await make_client(args, console)
            except UsageError as exc:
                console.say(f"error: {exc}")
                return EXIT_USAGE
        limiter: Any = None
        if args.rate_limiter and client is not None:
            from .forward import rate_limiter

            try:
                limiter = rate_limiter(args.rate_limiter, op, resource, args.rate)
            except UsageError as exc:
                await client.close()
                console.say(f"error: {exc}")
                return EXIT_USAGE
        loop = asyncio.get_running_loop()
        counter = None
        if console.has_bar and source.countable:  # an exact total for the bar, counted while the run goes on
            counter = LineCounter(source, loop, console.set_total_lines)
            console.counting()
            counter.start()
        feed = LineFeed(source.fd, loop)
        run = Run(
            op,
            resource=resource,
            feed=feed,
            console=console,
            failed=failed,
            client=client,
            concurrency=args.concurrency,
            rate=limiter or (op.rate if args.rate is None else (args.rate or None)),
            deadline=args.deadline,
            setup_wait=args.setup_wait,
        )
        try:
            with handle_signals(loop, run):
                if client is not None:
                    async with client:
                        await run.go()
                else:
                    await run.go()
        finally:
            feed.close()
            if counter is not None:
                counter.stop()
            if limiter is not None:
                await limiter.close()
    finally:
        console.close()
    console.say(run.summary(time.perf_counter() - started))
    return run.exit_status()
