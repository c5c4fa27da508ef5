"""The service's endpoint URL: configured (argument, environment, shared config file) or from the region.

``configured_endpoint`` finds an endpoint set outside the code, in the AWS
SDKs' order: ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, then
``AWS_ENDPOINT_URL``, then ``endpoint_url`` in the profile's ``services``
section for ``personalize_events``, then the profile's own ``endpoint_url``;
none of them when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` (or the profile's
``ignore_configured_endpoint_urls``) is true. An ``endpoint_url=`` argument
wins over all of them; without any, ``endpoint_for`` builds the URL from the
region.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from ._environ import environ_or_os, flag
from .errors import ValidationError

__all__ = [
    "ENDPOINT_ENV",
    "SERVICE_KEY",
    "check_endpoint_url",
    "configured_endpoint",
    "endpoint_for",
    "endpoint_from_env",
    "host_header",
    "is_loopback_host",
]

ENDPOINT_ENV: Final = "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"
"""The service's own endpoint variable (the SDKs' service id ``Personalize Events``, upper-cased, ``_`` for spaces)."""
SERVICE_KEY: Final = "personalize_events"
"""The service's key in a ``[services NAME]`` section of the shared config file."""

log: Final = logging.getLogger("aiopersonalize_events")


def check_endpoint_url(name: str, url: str) -> str:
    """``url`` without a trailing ``/``; ``ValidationError`` naming ``name`` unless it is an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ValidationError(name, "must be an http:// or https:// URL with a host")
    return url.rstrip("/")


def endpoint_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` or ``AWS_ENDPOINT_URL`` sets, or None."""
    env = environ_or_os(environ)
    if flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        return None
    for name in (ENDPOINT_ENV, "AWS_ENDPOINT_URL"):
        value = env.get(name, "").strip()
        if value:
            return check_endpoint_url(name, value)
    return None


async def configured_endpoint(profile: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint set in the environment or the shared config file, in the AWS SDKs' order, or None.

    The config file (``AWS_CONFIG_FILE``, ``~/.aws/config``) is read, in a
    worker thread, only when the environment sets no endpoint; the profile is
    ``profile``, else ``AWS_PROFILE``, else ``default``. A config file that
    cannot be parsed is passed over here (with a warning): the region and
    credentials searches report it when they need it. Raises
    ``ValidationError`` naming the setting when the URL found is malformed.
    """
    env = environ_or_os(environ)
    found = endpoint_from_env(env)
    if found is not None or flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        return found
    from ._aws_config import ConfigFileError, load_config, profile_name  # the file only when the environment is silent

    name, _ = profile_name(profile, env)
    try:
        files = await load_config(env)
    except ConfigFileError as exc:
        log.warning("endpoint_url settings in the shared config file are not used: %s", exc)
        return None
    settings = files.config.get(name, {})
    if settings.get("ignore_configured_endpoint_urls", "").strip().lower() == "true":
        return None
    section = "[default]" if name == "default" else f"[profile {name}]"
    service = files.service_setting(name, SERVICE_KEY, "endpoint_url")
    if service:
        where = f"{SERVICE_KEY}.endpoint_url of the services section named by {section} in {files.config_path}"
        return check_endpoint_url(where, service)
    own = settings.get("endpoint_url", "").strip()
    if own:
        return check_endpoint_url(f"endpoint_url of {section} in {files.config_path}", own)
    return None


def endpoint_for(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """Return ``https://personalize-events...`` for a region and the chosen variants.

    China regions (``cn-*``) use ``amazonaws.com.cn``; dual-stack endpoints
    use ``api.aws`` (``api.amazonwebservices.com.cn`` in China); FIPS adds the
    ``-fips`` host prefix (GovCloud regions take it like any other).
    """
    if not region or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in region):
        raise ValidationError("region", "must be a region name such as us-east-1")
    china = region.startswith("cn-")
    prefix = "personalize-events-fips" if fips else "personalize-events"
    if dualstack:
        suffix = "api.amazonwebservices.com.cn" if china else "api.aws"
    else:
        suffix = "amazonaws.com.cn" if china else "amazonaws.com"
    return f"https://{prefix}.{region}.{suffix}"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): hosts on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_header(url: str) -> str:
    """The ``Host`` value aiohttp sends for ``url``: the port only when not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    default = 443 if parts.scheme == "https" else 80
    return host if port is None or port == default else f"{host}:{port}"
