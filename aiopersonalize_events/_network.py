"""Proxies and CA bundles, as the AWS SDKs read them, for every HTTP call the package makes.

``Network`` holds what a connection needs beyond the URL: the proxy for each
scheme (``{"https": url, "http": url}``), the hosts that bypass the proxy
(``NO_PROXY``), and the TLS context that verifies servers (the system's
trust store, or the one PEM file ``ca_bundle`` names, which then replaces it,
as in botocore). The client resolves one when it opens (its
``ClientConfig``, then the environment, then the profile's ``ca_bundle``)
and makes it ``current`` while its credentials are resolved, so the
credential sources' own HTTP calls (STS, SSO, the container endpoint,
instance metadata) go the same way; outside a client, ``current()`` is the
environment's.

A proxy URL may carry a user name and password: they are split off into a
``Proxy-Authorization`` header (HTTP Basic) sent to the proxy alone and never
put back into a URL, a ``repr``, a log line or an exception message
(``without_userinfo`` removes them from any text).

Nothing imports this module (nor ``ssl``) at ``import aiopersonalize_events``:
the client's transport imports it when it opens, ``ClientConfig`` when it is
given ``proxies``, and the credential sources when they make an HTTP call.
"""

from __future__ import annotations

import base64
import contextvars
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs

from ._redact import hidden
from .errors import ValidationError

__all__ = [
    "Network",
    "ProxyRoute",
    "check_proxies",
    "current",
    "load_ca_bundle",
    "proxies_repr",
    "without_userinfo",
]

_SCHEMES: Final = ("http", "https")
_USERINFO: Final = re.compile(r"(?<=//)[^/@\s]+@")


def without_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub("***@", text)


def proxies_repr(value: Mapping[str, str] | None) -> str:
    """A proxies mapping as ``repr`` shows it: the URLs without their user name and password."""
    if value is None:
        return "None"
    return "{" + ", ".join(f"{k!r}: {without_userinfo(v)!r}" for k, v in value.items()) + "}"


def check_proxies(name: str, value: object) -> dict[str, str]:
    """A proxies mapping checked: keys ``http``/``https``, values ``http(s)://host[:port]`` URLs.

    Raises ``ValidationError`` naming ``name`` (and the key); the URL itself is
    never quoted, as it may hold a password.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(name, 'must be a mapping such as {"https": "http://proxy:3128"}')
    checked: dict[str, str] = {}
    for key, url in value.items():
        if key not in _SCHEMES:
            raise ValidationError(name, f"keys must be 'http' or 'https', not {str(key)[:20]!r}")
        if not isinstance(url, str):
            raise ValidationError(f"{name}[{key!r}]", "must be a URL string")
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018  # a malformed port raises here
        except ValueError:
            raise ValidationError(f"{name}[{key!r}]", "has a port that is not a number") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValidationError(f"{name}[{key!r}]", "must be an http:// or https:// URL with a host")
        checked[key] = url
    return checked


@attrs.frozen
class ProxyRoute:
    """The proxy one request goes through: its URL (no user info) and its ``Proxy-Authorization``, if any."""

    url: str
    authorization: str | None = attrs.field(default=None, repr=hidden)

    def options(self, scheme: str) -> tuple[dict[str, Any], dict[str, str]]:
        """aiohttp's request keywords and the extra request headers for a request to a ``scheme`` URL.

        To an https URL the credentials go on the ``CONNECT`` (``proxy_headers``);
        to an http one, which the proxy forwards, on the request itself.
        """
        if self.authorization is None:
            return {"proxy": self.url}, {}
        header = {"Proxy-Authorization": self.authorization}
        if scheme == "https":
            return {"proxy": self.url, "proxy_headers": header}, {}
        return {"proxy": self.url}, header


def _route(proxy: str) -> ProxyRoute:
    parts = urlsplit(proxy)
    auth = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return ProxyRoute(urlunsplit((parts.scheme, netloc, parts.path, "", "")), auth)


@attrs.frozen(eq=False)
class Network:
    """How the package's HTTP calls connect: proxies by scheme, proxy bypass, and the TLS context.

    ``proxies`` maps ``http``/``https`` to a proxy URL; ``no_proxy`` is the
    ``NO_PROXY`` list (None: every host goes through the proxy);
    ``ca_bundle`` is the PEM file whose CAs verify servers (None: the
    system's), already loaded into ``ssl_context``. ``repr`` shows the proxy
    URLs without their user name and password.
    """

    proxies: Mapping[str, str] = attrs.field(factory=dict, repr=proxies_repr)
    no_proxy: str | None = None
    ca_bundle: str | None = None
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    _routes: dict[str, ProxyRoute] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for scheme, url in self.proxies.items():
            self._routes[scheme] = _route(url)

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        proxies: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Network:
        """The settings: ``proxies`` when given (an empty mapping: no proxy), else ``HTTPS_PROXY``/``HTTP_PROXY``
        and ``NO_PROXY`` (either case, lower case first, as urllib reads them); ``ca_bundle`` when given, else
        ``AWS_CA_BUNDLE``. A CA bundle not given as ``ssl_context`` is loaded here (it reads the file)."""
        env = os.environ if environ is None else environ
        no_proxy = None
        if proxies is None:
            found = {}
            for scheme in _SCHEMES:
                value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
                if value:
                    found[scheme] = value
            proxies = check_proxies("HTTPS_PROXY/HTTP_PROXY", found)
            no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or None
        if ca_bundle is None:
            ca_bundle = env.get("AWS_CA_BUNDLE") or None
        if ca_bundle is not None and ssl_context is None:
            ssl_context = load_ca_bundle("AWS_CA_BUNDLE", ca_bundle)
        return cls(proxies=dict(proxies), no_proxy=no_proxy, ca_bundle=ca_bundle, ssl_context=ssl_context)

    def proxy_for(self, url: str) -> ProxyRoute | None:
        """The proxy a request to ``url`` goes through, or None: no proxy for its scheme, ``NO_PROXY`` names
        the host, or the host is the instance's own metadata or container endpoint (a link-local address,
        ``fd00:ec2::254``, ``fd00:ec2::23``), which a proxy could only answer with another machine's."""
        parts = urlsplit(url)
        route = self._routes.get(parts.scheme)
        if route is None:
            return None
        if _machine_local(parts.hostname or ""):
            return None
        if self.no_proxy and parts.netloc and _bypass(parts.netloc, self.no_proxy):
            return None
        return route

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` takes: the CA bundle's context, or True (verify with the system's CAs)."""
        return self.ssl_context if self.ssl_context is not None else True

    def use(self) -> contextvars.Token[Network | None]:
        """Make this the ``current()`` network in this context; the caller hands the token to ``unuse`` when done."""
        return _current.set(self)

    @staticmethod
    def unuse(token: contextvars.Token[Network | None]) -> None:
        """Undo ``use``."""
        _current.reset(token)


_METADATA_V6: Final = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("fd00:ec2::23")})


def _machine_local(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_link_local or address in _METADATA_V6


def _bypass(netloc: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names the host: ``*``, a host or domain (``.example.com`` or ``example.com``, its
    sub-domains too), ``host:port``, or an IP network (``10.0.0.0/8``), comma or space separated, as curl,
    requests and botocore read it. Matching is on the name as given: ``localhost`` does not cover ``127.0.0.1``."""
    parts = urlsplit("//" + netloc)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in re.split(r"[,\s]+", no_proxy.strip().lower()):
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry and address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and not (entry_port.isdigit() and port == int(entry_port)):
            continue
        name = name.strip("[]").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def load_ca_bundle(name: str, path: str) -> ssl.SSLContext:
    """A TLS context that trusts exactly the CAs of the PEM file at ``path``; ``ValidationError`` naming ``name``."""
    try:
        return ssl.create_default_context(cafile=os.path.expanduser(path))
    except FileNotFoundError:
        raise ValidationError(name, f"the CA bundle {path} does not exist") from None
    except (ssl.SSLError, ValueError):
        raise ValidationError(name, f"the CA bundle {path} holds no PEM certificate that can be loaded") from None
    except OSError as exc:
        raise ValidationError(name, f"the CA bundle {path} cannot be read ({type(exc).__name__})") from None


_current: contextvars.ContextVar[Network | None] = contextvars.ContextVar("aiopersonalize_events_network", default=None)
_from_environment: dict[tuple[str | None, ...], Network] = {}


def current() -> Network:
    """The settings in force: the resolving client's, else the environment's (cached while it is unchanged)."""
    found = _current.get()
    if found is not None:
        return found
    env = os.environ
    key = tuple(env.get(n) for n in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"))
    key += tuple(env.get(n) for n in ("no_proxy", "NO_PROXY", "AWS_CA_BUNDLE"))
    network = _from_environment.get(key)
    if network is None:
        network = Network.from_environment()
        _from_environment.clear()
        _from_environment[key] = network
    return network
