"""Shared machinery of the fake AI coding CLIs (``aider``, ``claude``, ``codex``).

Stdlib only. The executables next to this file import it through ``sys.path`` (relative to
their own real path), so a test only has to put ``tests/fakes`` first on ``PATH``.

The "model" is driven by the prompt: see README.md. The scenario (what goes wrong) is chosen by
``UET_FAKE_SCENARIO`` or, one line per invocation, by the file named in
``UET_FAKE_SCENARIO_FILE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = (
    "success",
    "api_error",
    "api_error_transient",
    "max_turns",
    "no_cost",
    "tool_calls_fail",
    "permission_denied",
    "hang",
    "no_change",
)

# Exit code of a fake asked for a scenario it does not know: loud, and no real tool's code.
EXIT_BAD_SCENARIO = 70

_DIRECTIVE = re.compile(r"^[ \t]*(WRITE|APPEND) (\S.*?):(?: (.*))?$")
_ECHO = re.compile(r"^[ \t]*ECHO-FEEDBACK (\S.*?)[ \t]*$")


# --------------------------------------------------------------------------- invocation log


def log_invocation(tool: str, argv: list[str]) -> None:
    """Append ``<tool> <argv as JSON>`` to ``$UET_FAKE_LOG`` (one line, one ``write``)."""
    path = os.environ.get("UET_FAKE_LOG")
    if not path:
        return
    line = f"{tool} {json.dumps(argv)}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- scenarios


def pick_scenario() -> str:
    """The scenario of this invocation.

    ``UET_FAKE_SCENARIO_FILE`` wins: its first non-blank line is this run's scenario and is
    removed, except the last one, which repeats for every later run. Otherwise
    ``UET_FAKE_SCENARIO`` (default ``success``). An unknown name ends the process with
    ``EXIT_BAD_SCENARIO`` so a typo in a test never passes for a real outcome.
    """
    name = os.environ.get("UET_FAKE_SCENARIO", "success").strip() or "success"
    path = os.environ.get("UET_FAKE_SCENARIO_FILE")
    if path:
        with open(path, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
            if lines:
                name = lines[0]
                if len(lines) > 1:
                    handle.seek(0)
                    handle.truncate()
                    handle.write("".join(f"{line}\n" for line in lines[1:]))
    if name not in SCENARIOS:
        sys.stderr.write(f"fake CLI: unknown scenario {name!r} (known: {', '.join(SCENARIOS)})\n")
        sys.exit(EXIT_BAD_SCENARIO)
    return name


# --------------------------------------------------------------------------- the "model"


@dataclass(frozen=True)
class Op:
    """One edit the prompt asks for: ``WRITE``/``APPEND`` ``path`` with ``text``."""

    verb: str
    path: str
    text: str


@dataclass(frozen=True)
class Plan:
    ops: list[Op]
    echo_paths: list[str]


def parse_prompt(prompt: str) -> Plan:
    ops: list[Op] = []
    echoes: list[str] = []
    for raw in prompt.splitlines():
        line = raw.rstrip("\r")
        match = _DIRECTIVE.match(line)
        if match:
            ops.append(Op(match.group(1), match.group(2), match.group(3) or ""))
            continue
        echo = _ECHO.match(line)
        if echo:
            echoes.append(echo.group(1))
    return Plan(ops, echoes)


def write_echoes(plan: Plan, prompt: str, root: Path) -> None:
    """``ECHO-FEEDBACK <path>``: the whole prompt, verbatim, so a test can read what was said."""
    for name in plan.echo_paths:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(prompt, encoding="utf-8")


def op_kind(op: Op, root: Path) -> str:
    """``add`` for a file that does not exist yet, else ``update`` (codex's vocabulary)."""
    return "update" if (root / op.path).exists() else "add"


def apply_op(op: Op, root: Path) -> None:
    target = root / op.path
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = "w" if op.verb == "WRITE" else "a"
    with open(target, mode, encoding="utf-8") as handle:
        handle.write(op.text + "\n")


def unique_paths(ops: list[Op]) -> list[str]:
    seen: dict[str, None] = {}
    for op in ops:
        seen.setdefault(op.path, None)
    return list(seen)


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# --------------------------------------------------------------------------- input


def read_stdin() -> str:
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", errors="replace")


def stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        return True  # closed stdin: nothing to read


def read_stdin_within(seconds: float) -> str | None:
    """All of stdin if its first byte (or EOF) arrives within ``seconds``, else None."""
    try:
        ready, _, _ = select.select([sys.stdin], [], [], seconds)
    except (OSError, ValueError):
        return ""
    if not ready:
        return None
    return read_stdin()


# --------------------------------------------------------------------------- signals, hang


def install_signal_handlers() -> None:
    """SIGTERM ends the fake with 143 (``128 + 15``), SIGINT with 130.

    ``UET_FAKE_SIGTERM=signal`` instead lets SIGTERM kill the process (a parent then sees
    ``-15`` from ``Popen.returncode``), which is what an unhandled SIGTERM does to a Python
    (aider) or Rust (codex) process.
    """

    def on_term(signum: int, _frame: object) -> None:
        _flush_quietly()
        if os.environ.get("UET_FAKE_SIGTERM") == "signal":
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def hang() -> None:
    """Print nothing more and wait to be killed."""
    _flush_quietly()
    while True:
        time.sleep(3600)


def emit(text: str = "", stream=None) -> None:
    target = stream or sys.stdout
    target.write(text + "\n")
    target.flush()


# --------------------------------------------------------------------------- git helpers


def find_git_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``.git`` (dir, or worktree file)."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def dumps(value: object) -> str:
    """Compact JSON with raw UTF-8, as both JSON.stringify and serde_json write it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def new_uuid() -> str:
    return str(uuid.uuid4())


def short_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]
