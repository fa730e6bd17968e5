"""Repository globs, as file scopes, protected paths and router rules use them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(_glob(p).fullmatch(path) for p in patterns)


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """Repository globs: ``*`` and ``?`` stay within a path segment, ``**`` spans segments,
    ``[...]`` is a character class; ``dir/`` means everything under dir."""
    if pattern.endswith("/"):
        pattern += "**"
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
