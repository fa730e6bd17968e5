"""What a conversion is made of: the legacy names uet knows, its result and its notes, and
small pure helpers. No I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.spec import KNOWN_TOOLS

#: Legacy tool names → uet tool ids.
TOOL_ALIASES: dict[str, str] = {
    "aider": "aider",
    "claude": "claude",
    "claude-code": "claude",
    "claude_code": "claude",
    "codex": "codex",
    "shell": "shell",
    "sh": "shell",
    "bash": "shell",
    "cmd": "shell",
    "patch": "patch",
}

#: Legacy test types → uet gate kinds.
GATE_KINDS: dict[str, str] = {
    **dict.fromkeys(["unit", "unittest", "unit-test", "test", "tests", "pytest"], "unit"),
    **dict.fromkeys(["lint", "linter", "style", "format", "typecheck", "types"], "lint"),
    **dict.fromkeys(["integration", "e2e", "end-to-end", "smoke", "system"], "integration"),
    **dict.fromkeys(["security", "sast", "audit"], "security"),
    "custom": "custom",
}

#: Used when neither the caller nor any bundle names the phase.
DEFAULT_PHASE_ID = "PH-LEGACY"

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BAD_REF_PART = re.compile(r"\.\.|\.lock$|\.$|@\{")  # as schemas/spec_check.py refuses
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs)?\s*$")
DURATION_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
}

Kind = Literal["unmapped", "renamed", "kept"]
#: ``rebase_path(source, patch_file)`` → the patch_file as the converted spec should name it.
PathRebaser = Callable[[str, str], str]


@dataclass(frozen=True)
class Unmapped:
    """A legacy field the conversion could not carry over as it was.

    ``kind``: ``unmapped`` (no place in uet; dropped), ``renamed`` (an id was normalized),
    ``kept`` (carried over as written although uet may refuse it, e.g. an unknown tool).
    """

    source: str
    json_path: str
    value: Any
    why: str
    kind: Kind = "unmapped"

    def line(self) -> str:
        """``file: $.path: value — why``, one line."""
        return f"{self.source}: {self.json_path}: {short_json(self.value)} — {self.why}"


@dataclass(frozen=True)
class Conversion:
    """The phase spec (a plain dict, ready for YAML) and what did not map."""

    phase: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    #: Per workstream, in order: where it came from (``source $.path``).
    origins: list[str] = field(default_factory=list)
    #: Legacy workstream id → uet workstream id, for the ids that changed.
    renamed_ids: dict[str, str] = field(default_factory=dict)


class LegacyFormatError(ValueError):
    """A file whose overall shape is not one of the legacy forms (nothing in it can map)."""


def is_identifier(value: str) -> bool:
    """Whether uet accepts ``value`` as a workstream, gate or phase id."""
    return bool(IDENTIFIER.match(value)) and len(value) <= 100 and not BAD_REF_PART.search(value)


def normalize_id(value: str) -> str:
    """Lowercase, whitespace → '-', invalid characters dropped; '' when nothing is left."""
    text = re.sub(r"\s+", "-", value.strip().lower())
    text = re.sub(r"[^a-z0-9._-]", "", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"-{2,}", "-", text)
    text = text.lstrip("._-")[:100].rstrip(".")
    if text.endswith(".lock"):
        text = text[: -len(".lock")] + "-lock"
    return text


def fresh_id(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``… — the first not in ``taken`` (which gets it)."""
    new, n = base, 2
    while new in taken:
        suffix = f"-{n}"
        new, n = base[: 100 - len(suffix)] + suffix, n + 1
    taken.add(new)
    return new


def short_json(value: Any, limit: int = 80) -> str:
    """``value`` as compact JSON on one line, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_at(base: str, key: str | int) -> str:
    return f"{base}[{key}]" if isinstance(key, int) else f"{base}.{key}"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def strings(value: Any) -> list[str] | None:
    """A string or a list of strings as a list; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


ITEM_INDEX = re.compile(r"^\$(?:\.workstreams)?\[(\d+)\]")


def item_index(json_path: str) -> int:
    """Which workstream of its file a note is about (-1: the file or the phase itself)."""
    match = ITEM_INDEX.match(json_path)
    return int(match.group(1)) if match else -1


def known_tools() -> list[str]:
    return sorted(set(TOOL_ALIASES.values()) | set(KNOWN_TOOLS))


def as_seconds(value: Any) -> int | float | None:
    if is_number(value):
        return whole(value) if value > 0 else None
    if isinstance(value, str):
        match = DURATION.match(value.lower())
        if match:
            seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
            return whole(seconds) if seconds > 0 else None
    return None


def clean_glob(pattern: str) -> str:
    """``./src/**`` and ``src/**`` mean the same; uet scopes are written without ``./``."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern
