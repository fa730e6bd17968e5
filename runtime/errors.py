"""User-facing failures: one clear line and a documented exit code, never a traceback."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    COMPLETED = 0
    FAILED = 1
    INVALID_INPUT = 2
    TEMPORAL_UNAVAILABLE = 3


class UserError(Exception):
    """A mistake the user can fix. ``lines`` are printed as they are, one problem per line."""

    def __init__(self, *lines: str, exit_code: ExitCode = ExitCode.INVALID_INPUT) -> None:
        super().__init__(lines[0] if lines else "error")
        self.lines = list(lines)
        self.exit_code = exit_code
