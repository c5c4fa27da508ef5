"""The web identity source: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` through STS (EKS IRSA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .._credentials import Credentials, SourceUnavailable
from .._environ import environ_or_os
from .._region import resolve_region
from ..errors import NoRegionError
from .sts import assume_role_with_web_identity

__all__ = ["WebIdentitySource"]


class WebIdentitySource:
    """``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` (+ ``AWS_ROLE_SESSION_NAME``) through STS.

    The token file is read again on every refresh (EKS rotates it). STS is
    called in the region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` or the
    profile, else globally.
    """

    __slots__ = ("_environ", "_profile")

    name: Final = "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"

    def __init__(self, profile: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._profile = profile
        self._environ = environ

    def __repr__(self) -> str:
        return "WebIdentitySource()"

    async def load(self) -> Credentials:
        """Exchange the token for credentials, or raise ``SourceUnavailable`` when not configured."""
        environ = environ_or_os(self._environ)
        token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        role_arn = environ.get("AWS_ROLE_ARN")
        if not token_file and not role_arn:
            raise SourceUnavailable("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set")
        if not token_file:
            raise SourceUnavailable("AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not")
        if not role_arn:
            raise SourceUnavailable("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")
        try:
            region: str | None = await resolve_region(None, self._profile, environ=environ)
        except NoRegionError:
            region = None  # the global STS endpoint; a broken config file is the shared-files source's to report
        return await assume_role_with_web_identity(
            role_arn=role_arn,
            token_file=token_file,
            session_name=environ.get("AWS_ROLE_SESSION_NAME"),
            environ=environ,
            region=region,
        )
