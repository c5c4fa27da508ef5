"""Settings read from environment variables, as the AWS SDKs read them; nothing here touches a file.

Each reader takes the mapping to read: ``os.environ`` in use, a plain dict in
tests (``environ_or_os`` picks). Malformed numbers fall back to the default,
as botocore's do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

__all__ = ["environ_or_os", "flag", "positive_int", "positive_number", "region_from_env"]


def environ_or_os(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """``environ``, or ``os.environ`` when it is None (read at call time, so later changes are seen)."""
    return os.environ if environ is None else environ


def flag(environ: Mapping[str, str], variable: str) -> bool:
    """True when ``variable`` is ``true`` in any case (``AWS_EC2_METADATA_DISABLED=TRUE``)."""
    return environ.get(variable, "").strip().lower() == "true"


def positive_number(environ: Mapping[str, str], variable: str, default: float) -> float:
    """``variable`` as a number when it is a finite one above zero, else ``default``."""
    try:
        value = float(environ.get(variable, ""))
    except ValueError:
        return default
    return value if 0 < value < math.inf else default


def positive_int(environ: Mapping[str, str], variable: str, default: int) -> int:
    """``variable`` as a whole number of at least 1 (``2.0`` counts as 2), else ``default``."""
    value = int(positive_number(environ, variable, default))
    return value if value >= 1 else default


def region_from_env(environ: Mapping[str, str]) -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else None."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
