"""The region a client signs for and sends to, found as the AWS SDKs find it.

The argument, then ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the
``region`` of the profile in the shared config file. The shared files (and
``configparser``) are loaded only when neither the argument nor the
environment names a region.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._environ import environ_or_os, region_from_env
from .errors import NoRegionError

__all__ = ["resolve_region"]


async def resolve_region(
    region: str | None = None,
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Find the region: the argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile's ``region``.

    The profile is ``profile``, else ``AWS_PROFILE``, else ``default``; its
    ``region`` is read from the shared config file (``AWS_CONFIG_FILE``,
    ``~/.aws/config``) in a worker thread. Raises ``NoRegionError`` (a
    ``ValueError``) naming every place looked at when none is set.
    """
    if region:
        return region
    env = environ_or_os(environ)
    found = region_from_env(env)
    if found:
        return found
    from ._aws_config import ConfigFileError, load_files, profile_name  # the files only when the environment is silent

    name, named = profile_name(profile, env)
    section = "[default]" if name == "default" else f"[profile {name}]"
    problem = ""
    try:
        files = await load_files(env)
    except ConfigFileError as exc:
        where = "~/.aws/config"
        problem = f" ({exc})"
    else:
        where = files.config_path
        found = files.region(name)
        if found:
            return found
        if named and not files.has(name):
            problem = f" (profile {name!r} is not in {files.where})"
    raise NoRegionError(
        "no AWS region: pass region=..., or set AWS_REGION or AWS_DEFAULT_REGION, "
        f"or set region in the {section} section of {where}{problem}"
    )
