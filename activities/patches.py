"""Applying unified-diff patches with git, the one way uet does it.

``--check`` first so that a patch that does not apply changes nothing; never ``--reject``,
``--unsafe-paths`` or ``--whitespace=fix`` (it would rewrite the tool's lines).
"""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.git import Git


async def apply_patch(git: Git, patch: Path, *, target: str, what: str) -> str:
    """Apply ``patch`` with ``git apply <target>`` (``--cached`` or ``--index``); git's output.

    A patch that does not apply never will: a non-retryable ``PatchDoesNotApply``.
    """
    args = ("apply", target, "--whitespace=nowarn")
    check = await git.run(*args, "--check", str(patch), check=False)
    if check.returncode != 0:
        output = (check.stdout + check.stderr).decode("utf-8", "replace").strip()
        raise ApplicationError(
            f"{what} does not apply: {output[:500]}", type="PatchDoesNotApply", non_retryable=True
        )
    result = await git.run(*args, str(patch))
    return (result.stdout + result.stderr).decode("utf-8", "replace")
