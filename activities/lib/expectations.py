"""A gate's ``expect:``: ground truth beyond "it exited 0". Pure functions.

A gate that passes without doing its work (a test runner that collected nothing, a build that
wrote no bundle) must not count. The output checked is the gate's whole log: ``run_process``
writes stdout and stderr into it together (interleaved, redacted, cut at its size limit), so
``stdout_contains`` / ``stdout_matches`` see both streams.
"""

from __future__ import annotations

import re
from pathlib import Path

from schemas.spec import GateExpect
from schemas.spec_check import expect_path_problem


def unmet_expectation(
    expect: GateExpect, exit_code: int | None, output: str, checkout: Path
) -> str | None:
    """None when the gate's run shows everything ``expect`` asks for; else the first thing it
    does not, in one line (``expected stdout to contain 'collected 12 items'``)."""
    if exit_code != expect.exit_code:
        return f"expected exit code {expect.exit_code}, got {exit_code}"
    if expect.stdout_contains is not None and expect.stdout_contains not in output:
        return f"expected stdout to contain {expect.stdout_contains!r}"
    if expect.stdout_matches is not None and not re.search(
        expect.stdout_matches, output, re.MULTILINE
    ):
        return f"expected stdout to match {expect.stdout_matches!r}"
    for path, present in ((expect.file_exists, True), (expect.file_absent, False)):
        if path is None:
            continue
        unsafe = expect_path_problem(path)
        if unsafe is not None:  # spec validation rejects these; never look outside anyway
            return unsafe
        root = checkout.resolve()
        target = checkout / path
        if root not in target.parent.resolve().parents and target.parent.resolve() != root:
            return f"expected file {path} is reached through a symlink out of the checkout"
        # A symlink counts as there (even a dangling one): it is not followed out.
        found = target.is_symlink() or target.exists()
        if found != present:
            return f"expected file {path} to {'exist' if present else 'be absent'}"
    return None


def read_output(log_path: Path) -> str:
    """The gate's log as text (stdout and stderr together)."""
    try:
        return log_path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
