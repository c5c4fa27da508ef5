"""The shared-files source: the selected profile of ``~/.aws/credentials`` and ``~/.aws/config``.

A profile gives credentials in botocore's order: ``role_arn`` (through STS,
from ``web_identity_token_file``, ``source_profile`` or
``credential_source``), IAM Identity Center (``sso_session`` or the legacy
``sso_start_url``, ``sso``), static keys in the credentials file,
``login_session`` (``aws login``, ``login``), ``credential_process``
(``process``), static keys in the config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from .._aws_config import AwsFiles, ConfigFileError, load_files, profile_name
from .._credentials import Credentials, CredentialSource, SourceFailed, SourceUnavailable
from .._environ import environ_or_os, region_from_env
from .container import ContainerSource
from .environment import EnvironmentProvider
from .instance_metadata import InstanceMetadataSource
from .login import LOGIN_WINDOWS, login_credentials
from .process import PROCESS_TIMEOUT, run_credential_process
from .sso import sso_credentials, sso_profile
from .sts import assume_role_with_web_identity, default_session_name, sts_call

__all__ = ["SharedFilesSource"]


def _has_static(values: Mapping[str, str]) -> bool:
    return bool(values.get("aws_access_key_id")) and bool(values.get("aws_secret_access_key"))


def _static(values: Mapping[str, str]) -> Credentials:
    token = values.get("aws_session_token") or values.get("aws_security_token") or None
    return Credentials(values["aws_access_key_id"], values["aws_secret_access_key"], token)


@attrs.frozen
class _Lookup:
    files: AwsFiles
    environ: Mapping[str, str] = attrs.field(repr=False)
    region: str | None


class SharedFilesSource:
    """The selected profile of ``~/.aws/credentials`` and ``~/.aws/config``.

    The profile is ``profile``, else ``AWS_PROFILE``, else ``default``. In
    botocore's order: ``role_arn`` (with ``web_identity_token_file``, or
    assumed through STS from ``source_profile``, recursively with cycle
    detection, or from ``credential_source``: ``Environment``,
    ``Ec2InstanceMetadata``, ``EcsContainer``; with ``role_session_name``,
    ``external_id``, ``duration_seconds``), then IAM Identity Center
    (``sso_session`` or legacy ``sso_start_url``, with ``sso_account_id`` and
    ``sso_role_name``), then static keys from the credentials file, then
    ``login_session`` (``aws login``), then ``credential_process``, then
    static keys from the config file. The files are re-read on every load (so
    on every refresh). ``refresh_windows`` tells the chain to refresh
    ``aws login`` credentials (15 minutes long) later than others.
    """

    __slots__ = ("_environ", "_process_timeout", "_profile", "refresh_windows")

    name: Final = "shared credentials and config files"

    def __init__(
        self,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        process_timeout: float = PROCESS_TIMEOUT,
    ) -> None:
        self._profile = profile
        self._environ = environ
        self._process_timeout = process_timeout
        self.refresh_windows: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return f"SharedFilesSource(profile={self._profile!r})"

    async def load(self) -> Credentials:
        """Credentials of the selected profile; ``SourceUnavailable`` when it has none, ``SourceFailed`` on errors."""
        environ = environ_or_os(self._environ)
        try:
            files = await load_files(environ)
        except ConfigFileError as exc:
            raise SourceFailed(str(exc)) from None
        name, named = profile_name(self._profile, environ)
        if not files.has(name):
            if named:
                raise SourceFailed(f"profile {name!r} not found in {files.where}")
            raise SourceUnavailable(f"no [default] profile in {files.where}")
        region = region_from_env(environ) or files.region(name)
        lookup = _Lookup(files, environ, region)
        self.refresh_windows = None
        return await self._profile_credentials(lookup, name, [name], as_source=False)

    async def _profile_credentials(
        self, lookup: _Lookup, name: str, visited: list[str], *, as_source: bool
    ) -> Credentials:
        files = lookup.files
        values = files.merged(name)
        if as_source and _has_static(values):
            return _static(values)  # a source profile's keys win over its own role_arn, as in botocore
        if values.get("role_arn"):
            if values.get("web_identity_token_file"):
                return await assume_role_with_web_identity(
                    role_arn=values["role_arn"],
                    token_file=values["web_identity_token_file"],
                    session_name=values.get("role_session_name"),
                    environ=lookup.environ,
                    region=lookup.region,
                )
            return await self._assume_role(lookup, name, values, visited)
        sso = sso_profile(files, name, values)
        if sso is not None:
            return await sso_credentials(sso, lookup.environ, files)
        if _has_static(files.credentials.get(name, {})):
            return _static(files.credentials[name])
        login_session = values.get("login_session")
        if login_session:
            region = region_from_env(lookup.environ) or files.region(name)
            credentials = await login_credentials(name, login_session, region, lookup.environ, files)
            if not as_source:
                self.refresh_windows = LOGIN_WINDOWS
            return credentials
        command = values.get("credential_process")
        if command:
            return await run_credential_process(command, profile=name, timeout=self._process_timeout)
        if _has_static(files.config.get(name, {})):
            return _static(files.config[name])
        if as_source:
            raise SourceFailed(f"source profile {name!r} has no credentials")
        raise SourceUnavailable(
            f"profile {name!r} has no keys, role_arn, sso_session/sso_account_id, login_session or credential_process"
        )

    async def _assume_role(
        self, lookup: _Lookup, name: str, values: Mapping[str, str], visited: list[str]
    ) -> Credentials:
        source_profile = values.get("source_profile")
        credential_source = values.get("credential_source")
        if source_profile and credential_source:
            raise SourceFailed(f"profile {name!r} has both source_profile and credential_source")
        if values.get("mfa_serial"):
            raise SourceFailed(
                f"profile {name!r} needs an MFA code (mfa_serial), which a non-interactive client cannot ask for; "
                "use credential_process or fetch the session first"
            )
        if source_profile:
            if source_profile in visited and not (
                source_profile == name and _has_static(lookup.files.merged(source_profile))
            ):
                chain = " -> ".join([*visited, source_profile])
                raise SourceFailed(f"source_profile loop: {chain}")
            if not lookup.files.has(source_profile):
                raise SourceFailed(f"source_profile {source_profile!r} of profile {name!r} not found")
            source = await self._profile_credentials(lookup, source_profile, [*visited, source_profile], as_source=True)
        elif credential_source:
            source = await self._credential_source(lookup, name, credential_source)
        else:
            raise SourceFailed(f"profile {name!r} has role_arn but neither source_profile nor credential_source")
        params = {
            "RoleArn": values["role_arn"],
            "RoleSessionName": values.get("role_session_name") or default_session_name(),
        }
        if values.get("external_id"):
            params["ExternalId"] = values["external_id"]
        if values.get("duration_seconds"):
            try:
                params["DurationSeconds"] = str(int(values["duration_seconds"]))
            except ValueError:
                raise SourceFailed(f"duration_seconds of profile {name!r} is not a whole number") from None
        try:
            return await sts_call(
                "AssumeRole", params, environ=lookup.environ, region=lookup.region, credentials=source
            )
        except SourceFailed as exc:
            raise SourceFailed(f"profile {name!r}: {exc}") from None

    async def _credential_source(self, lookup: _Lookup, name: str, kind: str) -> Credentials:
        source: CredentialSource
        if kind == "Environment":
            source = EnvironmentProvider(lookup.environ)
        elif kind == "Ec2InstanceMetadata":
            source = InstanceMetadataSource(lookup.environ)
        elif kind == "EcsContainer":
            source = ContainerSource(lookup.environ)
        else:
            raise SourceFailed(
                f"credential_source of profile {name!r} must be Environment, Ec2InstanceMetadata or EcsContainer"
            )
        try:
            return await source.load()
        except SourceUnavailable as exc:
            raise SourceFailed(f"credential_source {kind} of profile {name!r} gave nothing: {exc}") from None
