"""The shared AWS files, ``~/.aws/credentials`` and ``~/.aws/config``, read as the SDKs read them.

Both are ini files parsed with ``configparser`` (no interpolation, keys
lower-cased, later duplicates win). In the credentials file a section is a
profile name; in the config file it is ``[profile NAME]``, except
``[default]`` (``[profile default]`` is accepted too). ``AWS_SHARED_CREDENTIALS_FILE``
and ``AWS_CONFIG_FILE`` move them. The functions here block on the file
system: callers on the event loop use ``load_files``, which reads them in a
worker thread. Nothing here ever repeats a value read from a file in a
message or a ``repr``: the files hold secrets. Settings that come from
environment variables alone are in ``_environ``; this module (and
``configparser``) is loaded only when a file has to be read.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import shlex
from collections.abc import Mapping

import attrs

__all__ = [
    "AwsFiles",
    "ConfigFileError",
    "load_config",
    "load_files",
    "profile_name",
    "read_files",
    "service_settings",
]

Profiles = Mapping[str, Mapping[str, str]]


class ConfigFileError(Exception):
    """A shared file exists but cannot be read or parsed; the message names the file and line only."""


def _path(environ: Mapping[str, str], variable: str, default: str) -> str:
    return os.path.expanduser(environ.get(variable) or default)


def _parse(path: str) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(strict=False, default_section="\x00no default section\x00")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle, source=path)
    except FileNotFoundError:
        return {}
    except configparser.MissingSectionHeaderError as exc:
        # configparser's own text quotes the offending line, which may hold a secret
        raise ConfigFileError(f"{path}: line {exc.lineno} comes before any [section] header") from None
    except configparser.ParsingError as exc:
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors) or "?"
        raise ConfigFileError(f"{path}: cannot parse line {lines}") from None
    except configparser.Error as exc:
        raise ConfigFileError(f"{path}: not a valid ini file ({type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _config_services(sections: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The ``[services NAME]`` sections of the config file, by NAME."""
    services: dict[str, dict[str, str]] = {}
    for section, values in sections.items():
        if not section.startswith("services"):
            continue
        try:
            parts = shlex.split(section)
        except ValueError:
            continue
        if len(parts) == 2 and parts[0] == "services":
            services.setdefault(parts[1], {}).update(values)
    return services


def _config_sso_sessions(sections: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The ``[sso-session NAME]`` sections of the config file, by NAME."""
    sessions: dict[str, dict[str, str]] = {}
    for section, values in sections.items():
        if not section.startswith("sso-session"):
            continue
        try:
            parts = shlex.split(section)
        except ValueError:
            continue
        if len(parts) == 2 and parts[0] == "sso-session":
            sessions.setdefault(parts[1], {}).update(values)
    return sessions


def _config_profiles(sections: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    profiles: dict[str, dict[str, str]] = {}
    for section, values in sections.items():
        if section == "default":
            profiles.setdefault("default", {}).update(values)
            continue
        if not section.startswith("profile"):
            continue  # sso-session, services, plugins, ...
        try:
            parts = shlex.split(section)
        except ValueError:
            continue
        if len(parts) == 2 and parts[0] == "profile":
            profiles.setdefault(parts[1], {}).update(values)
    return profiles


@attrs.frozen
class AwsFiles:
    """What the two shared files hold, by profile name; ``repr`` shows the paths and profile names only."""

    credentials_path: str
    config_path: str
    credentials: Profiles = attrs.field(repr=False, factory=dict)
    config: Profiles = attrs.field(repr=False, factory=dict)
    services: Profiles = attrs.field(repr=False, factory=dict)
    sso_sessions: Profiles = attrs.field(repr=False, factory=dict)

    @property
    def where(self) -> str:
        """Both paths, for messages."""
        return f"{self.credentials_path} or {self.config_path}"

    def has(self, profile: str) -> bool:
        """True when either file has a section for ``profile``."""
        return profile in self.credentials or profile in self.config

    def merged(self, profile: str) -> dict[str, str]:
        """The profile's settings from both files; the credentials file wins a key both have (as botocore)."""
        values = dict(self.config.get(profile, {}))
        values.update(self.credentials.get(profile, {}))
        return values

    def region(self, profile: str) -> str | None:
        """The profile's ``region`` setting, or None when it has none."""
        return self.merged(profile).get("region", "").strip() or None

    def service_setting(self, profile: str, service: str, key: str) -> str | None:
        """``key`` of ``service`` in the ``[services NAME]`` section the profile's ``services`` names, or None.

        A service's settings are a nested block, as the AWS SDKs write them::

            [services local]
            personalize_events =
              endpoint_url = http://127.0.0.1:4566
        """
        name = self.config.get(profile, {}).get("services", "").strip()
        block = self.services.get(name, {}).get(service) if name else None
        return service_settings(block).get(key) if block else None

    def service_endpoint(self, profile: str, environ: Mapping[str, str], service_id: str, default: str) -> str:
        """The endpoint of an AWS service (``service_id`` as in ``AWS_ENDPOINT_URL_<ID>``), as botocore finds it.

        ``AWS_ENDPOINT_URL_<ID>``, then ``AWS_ENDPOINT_URL``, then the
        service's ``endpoint_url`` in the ``[services NAME]`` section the
        profile names (key: the id lower-cased), then the profile's own
        ``endpoint_url``; none of them when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``
        or the profile's ``ignore_configured_endpoint_urls`` is true. Else ``default``.
        """
        settings = self.config.get(profile, {})
        ignore = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "") or settings.get(
            "ignore_configured_endpoint_urls", ""
        )
        if ignore.strip().lower() == "true":
            return default
        for variable in (f"AWS_ENDPOINT_URL_{service_id.upper()}", "AWS_ENDPOINT_URL"):
            value = environ.get(variable, "").strip()
            if value:
                return value
        return (
            self.service_setting(profile, service_id.lower(), "endpoint_url")
            or settings.get("endpoint_url", "").strip()
            or default
        )

    def profile_names(self) -> list[str]:
        """Every profile either file defines, sorted."""
        return sorted(set(self.credentials) | set(self.config))


def service_settings(block: str) -> dict[str, str]:
    """The ``key = value`` lines of a nested block (a service's settings), keys lower-cased, values stripped."""
    settings: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            settings[key.strip().lower()] = value.strip()
    return settings


def read_files(environ: Mapping[str, str]) -> AwsFiles:
    """Read and parse both shared files (blocking); a missing file is an empty one.

    Raises ``ConfigFileError`` when a file exists but cannot be read or parsed.
    """
    return _read(environ, with_credentials=True)


def _read(environ: Mapping[str, str], *, with_credentials: bool) -> AwsFiles:
    credentials_path = _path(environ, "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    config_path = _path(environ, "AWS_CONFIG_FILE", "~/.aws/config")
    sections = _parse(config_path)
    return AwsFiles(
        credentials_path=credentials_path,
        config_path=config_path,
        credentials=_parse(credentials_path) if with_credentials else {},
        config=_config_profiles(sections),
        services=_config_services(sections),
        sso_sessions=_config_sso_sessions(sections),
    )


async def load_files(environ: Mapping[str, str]) -> AwsFiles:
    """``read_files`` in a worker thread, so the event loop never waits on the disk."""
    return await asyncio.to_thread(read_files, dict(environ))


async def load_config(environ: Mapping[str, str]) -> AwsFiles:
    """The config file alone (the credentials file, which holds secrets, is left unread), in a worker thread."""
    return await asyncio.to_thread(_read, dict(environ), with_credentials=False)


def profile_name(explicit: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The profile to use and whether it was named (``profile=`` or ``AWS_PROFILE``) rather than defaulted."""
    if explicit:
        return explicit, True
    from_env = environ.get("AWS_PROFILE")
    if from_env:
        return from_env, True
    return "default", False
