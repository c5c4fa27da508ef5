"""Reading what credential sources answer: ISO 8601 time stamps, JSON credential documents, token files.

Also ``redact``, which makes a short, safe excerpt of foreign text (a
process's stderr, an STS error message) for our messages. Time stamps go
through the package's one ISO 8601 parser, ``_validators.parse_iso8601``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import datetime
from typing import Final

from .._credentials import Credentials, SourceFailed
from .._validators import parse_iso8601

__all__ = ["json_credentials", "parse_timestamp", "read_text", "redact"]


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 time stamp as AWS writes them (``2024-05-01T12:00:00Z``, fractions, offsets).

    A time stamp without an offset is taken as UTC. Raises ``ValueError``
    (the package's one ISO-8601 parser, ``_validators.parse_iso8601``).
    """
    return parse_iso8601("", text)


_LONG_RUN: Final = re.compile(r"[A-Za-z0-9/+=_\-]{16,}")


def _redact_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) >= 32 or any(c.isdigit() or c in "/+=" for c in run):
        return "[redacted]"
    return run


def redact(text: str, limit: int = 200) -> str:
    """A short, safe excerpt of foreign text (a process's stderr, an error message) for a message.

    The last non-empty line only, with every run that could be a key or a
    token (16+ characters of base64 with a digit or ``/+=``, or any 32+) replaced.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    excerpt = _LONG_RUN.sub(_redact_run, lines[-1])
    return excerpt if len(excerpt) <= limit else excerpt[: limit - 3] + "..."


async def read_text(path: str) -> str:
    """Read a small text file (a token file) in a worker thread; ``~`` is expanded."""

    def read() -> str:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            return handle.read()

    return await asyncio.to_thread(read)


def json_credentials(what: str, body: bytes) -> Credentials:
    """Credentials from a JSON document with ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and ``Expiration``.

    The container endpoint and instance metadata answer this way. Raises
    ``SourceFailed`` naming ``what`` and the missing members, never a value.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise SourceFailed(f"{what} answered with something that is not a JSON object")
    key, secret, token = data.get("AccessKeyId"), data.get("SecretAccessKey"), data.get("Token")
    missing = [n for n, v in (("AccessKeyId", key), ("SecretAccessKey", secret)) if not isinstance(v, str) or not v]
    if missing or not isinstance(key, str) or not isinstance(secret, str):
        raise SourceFailed(f"{what} answered without {', '.join(missing)}")
    expiration = data.get("Expiration")
    try:
        expires = parse_timestamp(expiration) if isinstance(expiration, str) else None
    except ValueError:
        raise SourceFailed(f"{what} answered with an Expiration that is not a time stamp") from None
    return Credentials(key, secret, token if isinstance(token, str) and token else None, expires)
