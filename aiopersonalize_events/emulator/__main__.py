"""Serve the emulator from a shell: ``python -m aiopersonalize_events.emulator --port 8080``.

Prints the endpoint URL on standard output when it is listening, then logs
each call on one line on standard error (operation, status, error code,
record count, milliseconds) until interrupted (Ctrl-C or SIGTERM).
``add_arguments`` and ``run`` let the ``aiopersonalize-events emulator``
sub-command reuse these options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from ._app import KINDS, Emulator
from ._faults import DEFAULT_QUOTAS, Faults

__all__ = ["add_arguments", "main", "run"]


def _credential(text: str) -> tuple[str, str]:
    key, sep, secret = text.partition(":")
    if not sep or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY_ID:SECRET")
    return key, secret


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a probability between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("expected a probability between 0 and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not value >= 0.0:
        raise argparse.ArgumentTypeError("expected a number of seconds, at least 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser`` (used by this module and by the CLI's sub-command)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, a free port)")
    parser.add_argument(
        "--credentials",
        metavar="KEY_ID:SECRET",
        type=_credential,
        action="append",
        default=[],
        help="verify SigV4 signatures against this key pair (repeatable); without it any well-formed "
        "signature is accepted",
    )
    parser.add_argument("--region", help="the only region a credential scope may name (default: any)")
    parser.add_argument(
        "--tracking-id",
        dest="tracking_ids",
        action="append",
        help="a known tracking id (repeatable); once one is given, others get ResourceNotFoundException",
    )
    parser.add_argument(
        "--dataset-arn",
        dest="dataset_arns",
        action="append",
        help="a known dataset ARN (repeatable); once one is given, others get ResourceNotFoundException",
    )
    parser.add_argument("--throttle", type=_rate, default=0.0, metavar="RATE", help="share of calls throttled")
    parser.add_argument(
        "--server-error", type=_rate, default=0.0, metavar="RATE", help="share of calls answered 500/503"
    )
    parser.add_argument(
        "--disconnect", type=_rate, default=0.0, metavar="RATE", help="share of calls whose connection is dropped"
    )
    parser.add_argument("--latency", type=_seconds, default=0.0, metavar="SECONDS", help="delay before each answer")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault sequence (repeatable runs)")
    quotas = ", ".join(f"{name} {rate:g}/s" for name, rate in DEFAULT_QUOTAS.items())
    parser.add_argument("--quotas", action="store_true", help=f"enforce the service's rate quotas ({quotas})")
    parser.add_argument("--quiet", action="store_true", help="do not log each call")


def _build(args: argparse.Namespace) -> Emulator:
    faults = Faults(
        throttle=args.throttle,
        server_error=args.server_error,
        disconnect=args.disconnect,
        latency=args.latency,
        seed=args.seed,
    )
    return Emulator(
        host=args.host,
        port=args.port,
        credentials=dict(args.credentials) if args.credentials else None,
        faults=faults,
        region=args.region,
        tracking_ids=args.tracking_ids,
        dataset_arns=args.dataset_arns,
        quotas=args.quotas,
    )


async def _serve(emulator: Emulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    async with emulator:
        print(emulator.endpoint_url, flush=True)
        logger = logging.getLogger("aiopersonalize_events.emulator")
        logger.info(
            "Personalize Events emulator on %s (signatures %s; %r; quotas %s); records at %s/_emulator/records/{%s}",
            emulator.endpoint_url,
            "verified" if emulator.verifying else "not verified",
            emulator.faults,
            "on" if emulator.quotas is not None else "off",
            emulator.endpoint_url,
            ",".join(KINDS),
        )
        await stop.wait()
        logger.info("stopping")


def run(args: argparse.Namespace) -> int:
    """Serve with parsed options until interrupted; return the exit status."""
    try:
        emulator = _build(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s", level=logging.WARNING)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.getLogger("aiopersonalize_events.emulator").setLevel(level)
    try:
        asyncio.run(_serve(emulator))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m aiopersonalize_events.emulator",
        description="A local Amazon Personalize Events service for tests and offline development.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
