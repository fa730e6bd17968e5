"""The error engine: a failure's output → a stable signature and a category. Pure functions.

Stable: the same root cause gets the same signature wherever and whenever it happens — file
paths, temp dirs, line and column numbers, memory addresses, timestamps, ids and durations are
normalized away before the rules (rules.py) read the output. Different: what a rule keys on
(a failing test's id and exception type, a linter's rule codes, a traceback's exception and
innermost frame of the project's own code) tells root causes apart.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from activities.lib.errors.rules import PYTHON_EXCEPTIONS, RULES, Rule

#: uet's own reason codes: the failure is already classified.
UET_CODES = {
    # patch policy (activities/lib/patch_policy.py)
    **dict.fromkeys(
        [
            "unparseable",
            "garbage_between_files",
            "parent_traversal",
            "absolute_path",
            "git_dir",
            "not_normalized",
            "empty_path",
            "out_of_scope",
            "forbidden_path",
            "protected_path",
            "symlink_escape",
            "gitlink",
            "binary_not_allowed",
            "too_many_files",
            "too_many_lines",
            "too_many_hunks",
            "too_large",
            "deletion_not_allowed",
            "oscillation",
            "secret_in_patch",
        ],
        "policy",
    ),
    # tool outcomes (activities/lib/adapters)
    "api_error": "tool_api",
    "max_turns": "tool_api",
    "permission_denied": "permission",
    "timeout": "timeout",
    "command_not_found": "environment",
    "gate_command_not_found": "environment",
    "setup_failed": "environment",
    "merge_conflict": "merge_conflict",
}
#: Codes that name the same root cause: a program missing is missing for a gate or a tool.
_SAME_AS = {"gate_command_not_found": "command_not_found"}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Directories of a path (absolute, or a tmp/home prefix): the file's name stays.
    (re.compile(r"(?<![\w.<>-])(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"()\[\],]+)+[/\\](?=[^\s/\\])"), ""),
    (re.compile(r"(?<![\w.])~[/\\](?:[^\s/\\:'\"()]+[/\\])*"), ""),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<ADDR>"),
    (
        re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\b"),
        "<TIME>",
    ),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<TIME>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<ID>"),
    (re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{7,64}\b"), "<SHA>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s|sec|seconds)\b"), "<N>s"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])"), "<N>"),
    (re.compile(r"[ \t]+"), " "),
)


@dataclass(frozen=True)
class Classification:
    signature: str
    category: str
    rule: str
    #: What the signature was built from, for people: `uet errors classify` prints it.
    key: tuple[str, ...]
    #: The normalized lines the rule matched.
    lines: tuple[str, ...]


def normalize(text: str) -> str:
    """The output with everything that changes between two runs of the same failure replaced
    by placeholders: ``<N>``, ``<ADDR>``, ``<TIME>``, ``<ID>``, ``<SHA>``, and paths cut to
    the file's name."""
    lines = []
    for raw in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        for pattern, replacement in _SUBSTITUTIONS:
            line = pattern.sub(replacement, line)
        lines.append(line.rstrip())
    return "\n".join(lines)


def classify(output: str, code: str | None = None, detail: str = "") -> Classification:
    """``output``: what the failing command printed. ``code``: uet's own reason code when uet
    already knows what went wrong (a policy code, a tool outcome); ``detail`` then says more
    (the program that was not found, the path out of scope)."""
    if code in UET_CODES:
        code = _SAME_AS.get(code, code)
        key = (code, normalize(detail).strip()) if detail else (code,)
        return _result(UET_CODES[code], f"uet:{code}", key, (detail,) if detail else ())
    text = normalize(output)
    for rule in RULES:
        found = _apply(rule, text, output)
        if found is not None:
            return found
    tail = tuple(line.strip() for line in text.splitlines() if line.strip())[-3:]
    return _result("unknown", "last-lines", tail, tail)


def _apply(rule: Rule, text: str, raw: str) -> Classification | None:
    if rule.requires is not None and not rule.requires.search(text):
        return None
    matches = list(rule.pattern.finditer(text)) if rule.collect else []
    if not rule.collect:
        first = rule.pattern.search(text)
        matches = [first] if first else []
        if rule.name == "python-traceback":  # the innermost exception is the last one
            matches = list(rule.pattern.finditer(text))[-1:]
    if not matches:
        return None
    groups = [m.groupdict() for m in matches]
    extra: dict[str, str] = {}
    if rule.extract is not None:
        extra = EXTRACTORS[rule.extract](raw, text, groups)
    parts = sorted(
        {
            "|".join((g.get(name) or extra.get(name) or "").strip() for name in rule.key)
            for g in groups
        }
    )
    category = rule.category
    if rule.category_of is not None:
        group, table = rule.category_of
        value = groups[-1].get(group) or extra.get(group) or ""
        etype = value.split(",")[0].rsplit(".", 1)[-1]
        category = table.get(etype, category)
    key = (*parts, *(f"{k}={v}" for k, v in sorted(extra.items()) if k not in rule.key))
    lines = tuple(m.group(0).strip() for m in matches)
    return _result(category, rule.name, key, lines)


def _result(
    category: str, rule: str, key: tuple[str, ...], lines: tuple[str, ...]
) -> Classification:
    digest = hashlib.sha256("\x1f".join((category, *key)).encode()).hexdigest()[:16]
    return Classification(f"{category}:{digest}", category, rule, key, lines)


# -- extractors: structure a regex cannot see ---------------------------------------------------

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<func>\S+)', re.MULTILINE)
_LIBRARY = re.compile(r"[/\\](?:site-packages|dist-packages|lib[/\\]python\d[\d.]*)[/\\]|^<")


def _python_frame(raw: str, text: str, groups: list[dict[str, str | None]]) -> dict[str, str]:
    """The innermost frame of the project's own code in the last traceback: its file's name
    and function (library frames are skipped: the project's code is where a fix goes)."""
    last = raw.rfind("Traceback (most recent call last)")
    frames = list(_FRAME.finditer(raw[last:] if last >= 0 else raw))
    own = [f for f in frames if not _LIBRARY.search(f.group("path"))]
    if not own:
        return {}
    frame = own[-1]
    name = re.split(r"[/\\]", frame.group("path"))[-1]
    return {"frame": f"{name}:{frame.group('func')}"}


_PYTEST_ETYPE = re.compile(
    r"^(?:E\s+)?(?:\S+\.py:<N>: )?(?P<etype>[A-Za-z_]\w*(?:Error|Exception))\b", re.MULTILINE
)


def _pytest_exception(raw: str, text: str, groups: list[dict[str, str | None]]) -> dict[str, str]:
    """The exception types the failing tests raised (``test_x.py:<N>: AssertionError``)."""
    types = sorted({m.group("etype") for m in _PYTEST_ETYPE.finditer(text)})
    return {"etype": ",".join(types) or "AssertionError"}


def _python_exception(raw: str, text: str, groups: list[dict[str, str | None]]) -> dict[str, str]:
    types = sorted(
        {
            m.group("etype")
            for m in re.finditer(r"^(?P<etype>\w+(?:Error|Exception))\b", text, re.MULTILINE)
        }
    )
    return {"etype": ",".join(types)}


def _file_role(raw: str, text: str, groups: list[dict[str, str | None]]) -> dict[str, str]:
    """Each linted file's role (test or source), so a rule broken in tests and the same rule
    broken in the code are told apart, but not two source files."""
    for group in groups:
        name = (group.get("file") or group.get("file2") or "").lower()
        group["role"] = (
            "test" if re.search(r"(^|[/\\_])tests?([/\\_.]|$)|_test\.", name) else "source"
        )
    return {}


EXTRACTORS: dict[str, Callable[[str, str, list[dict[str, str | None]]], dict[str, str]]] = {
    "python_frame": _python_frame,
    "pytest_exception": _pytest_exception,
    "python_exception": _python_exception,
    "file_role": _file_role,
}

__all__ = ["PYTHON_EXCEPTIONS", "Classification", "classify", "normalize"]
