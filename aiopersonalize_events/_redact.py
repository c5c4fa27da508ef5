"""How the package shows a secret: whether it is set, never its value (``hidden``), and URLs without their password.

``hidden`` is the ``repr=`` of secrets and of the members the service model
marks sensitive. ``url`` is the one way a URL that may hold a password (a
Redis URL ``redis://user:password@host``) is shown in a message, a log line
or a ``repr``; it also copes with URLs that do not parse (a ``/``, ``#``,
``?`` or ``@`` in the password, not percent-encoded).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["hidden", "url"]

_SECRET_QUERY: Final = re.compile(r"(?i)([?&;](?:password|pass|pwd|token|secret)=)[^&;#]*")


def hidden(value: object) -> str:
    """``'***'`` for a value that is set and ``None`` for one that is not (an attrs ``repr=`` callable)."""
    return "None" if value is None else "'***'"


def url(text: object) -> str:
    """``text`` (a URL) with its user information and any ``password=`` in the query shown as ``***``.

    Everything between ``://`` and the last ``@`` is user information
    (a password may hold ``/``, ``#`` or ``@`` itself, which is why the URL
    would not parse): ``redis://user:pa/ss@host:6379/0`` ->
    ``redis://***@host:6379/0``. A value that is not a string is shown by
    its type only.
    """
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    at = rest.rfind("@")
    if at >= 0:
        rest = "***" + rest[at:]
    rest = _SECRET_QUERY.sub(r"\1***", rest)
    return f"{scheme}{sep}{rest}"
