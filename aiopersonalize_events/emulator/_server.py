"""Serving one aiohttp application on a loopback TCP port: what the emulators share of their lifecycle.

``Server.start(app)`` sets the application up on ``host:port`` in the
running loop (port 0: one the system picks) and gives the ``http://HOST:PORT``
clients use (a wildcard host such as ``0.0.0.0`` answered as its loopback
address, an IPv6 one in brackets); ``stop()`` closes it and its open
connections, idempotently. ``Emulator`` and ``IdentityEmulator`` each serve
their routes through one.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

__all__ = ["Server"]

_WILDCARDS: Final = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
"""A host that listens everywhere, and the address a client on this machine reaches it at."""


class Server:
    """One application on ``host:port`` while started; ``url`` is None while it is not."""

    __slots__ = ("_host", "_port", "_runner", "_shutdown_timeout", "url")

    def __init__(self, host: str, port: int, *, shutdown_timeout: float = 2.0) -> None:
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        """``http://HOST:PORT`` while serving."""

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._runner is not None

    async def start(self, app: web.Application) -> str:
        """Serve ``app`` in the running loop; returns the URL (a failed start leaves nothing set up)."""
        if self._runner is not None:
            raise RuntimeError("already serving")
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        host = _WILDCARDS.get(self._host, host)
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving and close open connections; idempotent."""
        runner, self._runner = self._runner, None
        self.url = None
        if runner is not None:
            await runner.cleanup()
