"""Region, partition, FIPS and dual-stack to the service's endpoint URL."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ValidationError

__all__ = ["endpoint_for", "host_header", "is_loopback_host"]


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
