"""The client of a ``put-*`` run: region and credentials found before any line is read.

A loopback endpoint (the emulator) needs neither: without a configured
region it uses ``us-east-1``, and when the default chain finds no
credentials it signs with placeholder keys (the emulator accepts any
well-formed signature unless told otherwise).
"""

from __future__ import annotations

import argparse
from typing import Any, Final
from urllib.parse import urlsplit

from .._credentials import Credentials
from .._endpoints import configured_endpoint, is_loopback_host
from ..errors import NoCredentialsError, NoRegionError, ValidationError
from .console import Console
from .status import UsageError

__all__ = ["is_loopback", "make_client"]

_LOCAL_REGION: Final = "us-east-1"
_LOCAL_ACCESS_KEY: Final = "AKIDLOCALEMULATOR"
_LOCAL_SECRET: Final = "local-emulator-placeholder"  # not a secret: only for a loopback endpoint


def is_loopback(url: str | None) -> bool:
    """True when ``url`` names a loopback host (the emulator on this machine)."""
    if not url:
        return False
    return is_loopback_host(urlsplit(url).hostname or "")


class _LocalFallback:
    """The default credential chain; for a loopback endpoint, placeholder keys when the chain finds none."""

    def __init__(self, profile: str | None, *, local: bool, console: Console) -> None:
        from .._chain import default_provider

        self._chain = default_provider(profile)
        self._local = local
        self._console = console
        self._placeholder: Credentials | None = None

    async def resolve(self) -> Credentials:
        try:  # each time: credentials that appear later (a file written, a profile added) are used from then on
            return await self._chain.resolve()
        except NoCredentialsError:
            if not self._local:
                raise
        if self._placeholder is None:
            self._console.say("no AWS credentials found: signing with placeholder credentials for the local endpoint")
            self._placeholder = Credentials(_LOCAL_ACCESS_KEY, _LOCAL_SECRET)
        return self._placeholder


def _option_error(error: ValidationError) -> UsageError:
    return UsageError(f"--{error.path.replace('_', '-')}: {error.message}")


async def make_client(args: argparse.Namespace, console: Console) -> Any:
    """The opened client for a ``put-*`` run; raises ``UsageError`` for a bad region, endpoint or no credentials."""
    from .._client import PersonalizeEventsClient
    from .._config import ClientConfig
    from .._region import resolve_region

    try:
        # --endpoint-url, else AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, AWS_ENDPOINT_URL or the profile's (as the client)
        endpoint_url = args.endpoint_url or await configured_endpoint(args.profile)
        tuning: dict[str, Any] = {} if args.max_attempts is None else {"max_attempts": args.max_attempts}
        config = ClientConfig(max_connections=max(args.concurrency, ClientConfig().max_connections), **tuning)
    except ValidationError as exc:
        raise UsageError(f"{exc.path}: {exc.message}") from None
    local = is_loopback(endpoint_url)
    try:
        region = await resolve_region(args.region, args.profile)
    except NoRegionError as exc:
        if not local:
            raise UsageError(f"{exc} (or use --region)") from None
        region = _LOCAL_REGION
    provider = _LocalFallback(args.profile, local=local, console=console)
    try:
        client = PersonalizeEventsClient(
            region=region, credentials=provider, profile=args.profile, endpoint_url=endpoint_url, config=config
        )
    except ValidationError as exc:
        raise _option_error(exc) from None
    try:
        await client.open()  # resolves the endpoint: a malformed region is a usage error, found now
        await provider.resolve()  # and missing credentials too, before any line is read
    except ValidationError as exc:
        await client.close()
        raise _option_error(exc) from None
    except NoCredentialsError as exc:
        await client.close()
        raise UsageError(str(exc)) from None
    except BaseException:
        await client.close()
        raise
    return client
