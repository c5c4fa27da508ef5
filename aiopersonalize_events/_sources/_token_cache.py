"""The JSON token caches the AWS CLI writes (``~/.aws/sso/cache``, ``~/.aws/login/cache``), used off the loop.

A cache entry is one JSON object in ``<dir>/<key>.json``. Reads and writes
happen in a worker thread; a write goes to a temporary file in the same
directory (mode 0600) and replaces the entry atomically, as the AWS CLI and
botocore do, so a reader in another process never sees half a file. No
message here repeats a value from an entry: they hold tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .._credentials import SourceFailed
from ._documents import parse_timestamp

__all__ = ["cache_path", "home_dir", "read_entry", "timestamp", "utc_text", "write_entry"]


def home_dir(environ: Mapping[str, str]) -> str:
    """The user's home: ``HOME`` from ``environ`` (so tests can move it), else what ``~`` expands to."""
    return environ.get("HOME") or os.path.expanduser("~")


def cache_path(directory: str, key: str) -> str:
    """``<directory>/<key>.json``."""
    return os.path.join(directory, key + ".json")


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SourceFailed(f"the token cache file {path} cannot be read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise SourceFailed(f"the token cache file {path} does not hold a JSON object")
    return data


async def read_entry(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``, None when there is no such file; ``SourceFailed`` when it is unreadable."""
    return await asyncio.to_thread(_read, path)


def _write(path: str, entry: Mapping[str, Any]) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def write_entry(path: str, entry: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``entry`` atomically (a temporary file, then ``os.replace``), in a worker thread."""
    try:
        await asyncio.to_thread(_write, path, dict(entry))
    except OSError as exc:
        raise SourceFailed(f"the token cache file {path} cannot be written ({type(exc).__name__})") from None


def timestamp(entry: Mapping[str, Any], key: str, what: str) -> datetime:
    """``entry[key]`` parsed as an ISO 8601 time stamp; ``SourceFailed`` naming ``what`` when missing or malformed."""
    value = entry.get(key)
    if not isinstance(value, str):
        raise SourceFailed(f"{what} has no {key}")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise SourceFailed(f"{what} has a {key} that is not a time stamp") from None


def utc_text(moment: datetime) -> str:
    """``2026-12-06T21:00:00Z``: how the AWS CLI writes time stamps into its caches."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
