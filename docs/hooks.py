"""MkDocs hook: show a snippet's fragment marker to the reader.

A fenced block on these pages is either run by ``tests/package/test_package_readme.py`` (marked
``<!-- runnable -->``, invisible) or marked ``<!-- fragment: WHAT IT ASSUMES -->``.
The HTML comment alone would be invisible on the site; this hook turns it into a
short note above the block, so a reader knows what to add before running it.
"""

from __future__ import annotations

import html
import re
from typing import Any

_FRAGMENT = re.compile(r"^<!-- fragment: (?P<assumes>\S.*?) -->$", flags=re.M)
_CODE = re.compile(r"`([^`]+)`")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each ``<!-- fragment: ... -->`` line by a visible note (then a blank line, so the fence still opens)."""

    def note(match: re.Match[str]) -> str:
        assumes = match.group("assumes")
        if assumes.startswith("not code: "):
            text = "Not code: " + assumes.removeprefix("not code: ")
        else:
            text = "Fragment; it assumes: " + assumes
        shown = _CODE.sub(r"<code>\1</code>", html.escape(text))
        return f'<p class="snippet-note">{shown}</p>\n'

    return _FRAGMENT.sub(note, markdown)
