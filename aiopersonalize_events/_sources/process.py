"""A profile's ``credential_process``: an external program that prints credentials as JSON.

It runs through ``asyncio.create_subprocess_exec`` (no shell), with stdin
closed and a timeout after which it is killed. A failure names the program
and exit status, with at most a redacted line of its stderr: never the
command's arguments, its output or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
from datetime import datetime
from typing import Final

from .._credentials import Credentials, SourceFailed
from ._documents import parse_timestamp, redact

__all__ = ["PROCESS_TIMEOUT", "run_credential_process"]

PROCESS_TIMEOUT: Final = 60.0
"""Seconds a ``credential_process`` may run before it is killed."""


async def run_credential_process(command: str, *, profile: str, timeout: float = PROCESS_TIMEOUT) -> Credentials:
    """Run a profile's ``credential_process`` (off the loop, killed after ``timeout``) and read its JSON.

    The output must be ``{"Version": 1, "AccessKeyId": ..., "SecretAccessKey":
    ..., "SessionToken": ..., "Expiration": ...}`` (the last two optional).
    Raises ``SourceFailed``.
    """
    try:
        argv = shlex.split(command, posix=os.name != "nt")
    except ValueError:
        raise SourceFailed(f"credential_process of profile {profile!r} is not a valid command line") from None
    if not argv:
        raise SourceFailed(f"credential_process of profile {profile!r} is empty")
    program = os.path.basename(argv[0])
    what = f"credential_process {program!r} of profile {profile!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SourceFailed(f"{what} could not be started ({type(exc).__name__})") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        raise SourceFailed(f"{what} did not finish within {timeout:g} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
    if process.returncode != 0:
        detail = redact(stderr.decode("utf-8", "replace"))
        raise SourceFailed(f"{what} exited with status {process.returncode}" + (f": {detail}" if detail else ""))
    return _output_credentials(what, stdout)


def _output_credentials(what: str, stdout: bytes) -> Credentials:
    try:
        data = json.loads(stdout)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise SourceFailed(f"{what} did not print a JSON object")
    version = data.get("Version")
    if version != 1 or isinstance(version, bool):
        shown = repr(version) if isinstance(version, int) and not isinstance(version, bool) else "none"
        raise SourceFailed(f"{what} printed Version {shown}; only Version 1 is supported")
    key, secret, token = data.get("AccessKeyId"), data.get("SecretAccessKey"), data.get("SessionToken")
    missing = [
        name for name in ("AccessKeyId", "SecretAccessKey") if not isinstance(data.get(name), str) or not data[name]
    ]
    if missing or not isinstance(key, str) or not isinstance(secret, str):
        raise SourceFailed(f"{what} printed no {' or '.join(missing)}")
    if token is not None and not isinstance(token, str):
        raise SourceFailed(f"{what} printed a SessionToken that is not a string")
    expiration = data.get("Expiration")
    expires: datetime | None = None
    if expiration is not None:
        try:
            if not isinstance(expiration, str):
                raise ValueError
            expires = parse_timestamp(expiration)
        except ValueError:
            raise SourceFailed(f"{what} printed an Expiration that is not an ISO 8601 time stamp") from None
    return Credentials(key, secret, token or None, expires)
