"""What the error engine knows about tools' output: a table, in the order it is tried.

A rule matches the (normalized) output; what its named groups capture, in ``key``, is what
makes the signature — so two failures share a signature exactly when those parts agree. A new
tool is a new row, not new code: ``collect`` gathers every match (a linter reports many), and
``extract`` names one of the few extractors the engine has for structure a regex cannot see
(a Python traceback's innermost frame of the project's own code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CATEGORIES = (
    "syntax",
    "import",
    "type",
    "test_assertion",
    "test_error",
    "lint",
    "format",
    "timeout",
    "tool_api",
    "permission",
    "environment",
    "merge_conflict",
    "policy",
    "unknown",
)


@dataclass(frozen=True)
class Rule:
    name: str
    #: Tried on the whole normalized output, multi-line.
    pattern: re.Pattern[str]
    category: str
    #: Named groups whose values make the key, in this order.
    key: tuple[str, ...] = ()
    #: Every match counts (sorted, without repeats), not only the first.
    collect: bool = False
    #: A category by the value of a group (e.g. the exception's type), else ``category``.
    category_of: tuple[str, dict[str, str]] | None = None
    #: One of engine.EXTRACTORS, adding key parts from structure.
    extract: str | None = None
    #: The rule applies only when this also matches (the output's tool).
    requires: re.Pattern[str] | None = None
    examples: tuple[str, ...] = field(default=(), compare=False)


def rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


#: Python exception types → categories.
PYTHON_EXCEPTIONS = {
    "SyntaxError": "syntax",
    "IndentationError": "syntax",
    "TabError": "syntax",
    "ImportError": "import",
    "ModuleNotFoundError": "import",
    "TypeError": "type",
    "AttributeError": "type",
    "AssertionError": "test_assertion",
    "PermissionError": "permission",
    "FileNotFoundError": "environment",
    "TimeoutError": "timeout",
}

RULES: tuple[Rule, ...] = (
    # -- the shell and the system ----------------------------------------------------------------
    Rule(
        "command-not-found",
        rx(r"^(?:.*?:\s*)?(?:line <N>: |<N>: )?(?P<program>[^\s:]+): (?:command )?not found\s*$"),
        "environment",
        key=("program",),
    ),
    Rule(
        "permission-denied",
        rx(r"^(?:.*?:\s*)?(?:line <N>: |<N>: )?(?P<what>[^\s:]+): Permission denied\s*$"),
        "permission",
        key=("what",),
    ),
    # -- git -----------------------------------------------------------------------------------
    Rule(
        "git-conflict",
        rx(r"^CONFLICT \((?P<kind>[\w/ -]+)\): .*?(?:conflict in|deleted in) (?P<file>\S+)"),
        "merge_conflict",
        key=("kind", "file"),
        collect=True,
    ),
    Rule(
        "git-apply",
        rx(r"^error: patch failed: (?P<file>[^:\s]+):<N>"),
        "merge_conflict",
        key=("file",),
        collect=True,
    ),
    Rule("git-fatal", rx(r"^fatal: (?P<message>.+)$"), "environment", key=("message",)),
    # -- test runners --------------------------------------------------------------------------
    Rule(
        "pytest-collection",
        rx(r"^ERROR (?P<test>\S+\.py)(?: - (?P<etype>\w+(?:\.\w+)*))?"),
        "test_error",
        key=("test", "etype"),
        collect=True,
        category_of=("etype", PYTHON_EXCEPTIONS),
        requires=rx(r"^=+ short test summary info =+$|^=+ ERRORS =+$"),
    ),
    Rule(
        "pytest-failure",
        rx(r"^FAILED (?P<test>\S+::\S+)"),
        "test_error",
        key=("test",),
        collect=True,
        category_of=("etype", PYTHON_EXCEPTIONS),
        extract="pytest_exception",
    ),
    Rule(
        "unittest",
        rx(r"^(?P<kind>FAIL|ERROR): (?P<test>\w+) \((?P<where>[\w.]+)\)"),
        "test_error",
        key=("kind", "where", "test"),
        collect=True,
        category_of=("etype", PYTHON_EXCEPTIONS),
        extract="python_exception",
        requires=rx(r"^Ran <N> tests? in"),
    ),
    Rule(
        "jest",
        rx(r"^\s*● (?P<test>.+?)\s*$"),
        "test_assertion",
        key=("test",),
        collect=True,
        requires=rx(r"^Tests:\s+<N> failed"),
    ),
    Rule(
        "go-test",
        rx(r"^--- FAIL: (?P<test>\w+)"),
        "test_assertion",
        key=("test",),
        collect=True,
    ),
    # -- compilers and type checkers -----------------------------------------------------------
    Rule(
        "mypy",
        rx(r"^(?P<file>[^:\s]+\.pyi?):<N>: error: .*\[(?P<code>[\w-]+)\]\s*$"),
        "type",
        key=("code",),
        collect=True,
    ),
    Rule(
        "tsc",
        rx(r"^(?P<file>[^(\s]+\.tsx?)\(<N>,<N>\): error (?P<code>TS\d+):"),
        "type",
        key=("code",),
        collect=True,
    ),
    Rule(
        "rustc",
        rx(r"^error\[(?P<code>E\d{4})\]: (?P<message>.+)$"),
        "type",
        key=("code", "message"),
        collect=True,
    ),
    Rule(
        "go-build",
        rx(r"^(?P<file>[^:\s]+\.go):<N>:<N>: (?P<message>.+)$"),
        "type",
        key=("message",),
        collect=True,
    ),
    # -- linters and formatters ----------------------------------------------------------------
    Rule(
        "format-check",
        # black and older ruff: "would reformat F"; ruff 0.15: "unformatted: …" then " --> F:L:C".
        rx(
            r"^(?:[Ww]ould reformat:? (?P<file>\S+)"
            r"|unformatted: .*\n\s*--> (?P<file2>[^:\s]+):<N>:<N>)"
        ),
        "format",
        key=("role",),
        collect=True,
        extract="file_role",
    ),
    Rule(
        "lint-concise",
        rx(r"^(?P<file>[^:\s]+):<N>:<N>: (?P<code>[A-Z]{1,3}\d{2,4})\b"),
        "lint",
        key=("code", "role"),
        collect=True,
        extract="file_role",
    ),
    Rule(
        "lint-full",
        rx(r"^(?P<code>[A-Z]{1,3}\d{2,4})(?: \[\*\])? .+\n\s*--> (?P<file>[^:\s]+):<N>:<N>"),
        "lint",
        key=("code", "role"),
        collect=True,
        extract="file_role",
    ),
    Rule(
        "pylint",
        rx(r"^(?P<file>[^:\s]+):<N>:<N>: (?P<code>[CRWEF]\d{4}): .*\((?P<symbol>[\w-]+)\)$"),
        "lint",
        key=("code", "role"),
        collect=True,
        extract="file_role",
    ),
    # -- Python itself -------------------------------------------------------------------------
    Rule(
        "python-traceback",
        rx(
            r"^(?P<etype>[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning))(?::\s*(?P<message>.*))?$"
        ),
        "test_error",
        key=("etype", "message"),
        category_of=("etype", PYTHON_EXCEPTIONS),
        extract="python_frame",
    ),
    # -- AI tools and time -----------------------------------------------------------------------
    Rule(
        "tool-api",
        # Numbers (429, 529) are normalized away before rules read the output: words only.
        rx(r"(?P<what>rate.?limit|overloaded|Too Many Requests|API error|api_error|quota)"),
        "tool_api",
        key=("what",),
    ),
    Rule(
        "timeout",
        rx(r"(?P<what>timed out|timeout expired|deadline exceeded)"),
        "timeout",
        key=("what",),
    ),
)
