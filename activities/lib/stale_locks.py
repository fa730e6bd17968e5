"""Ref locks a killed process left behind, removed so that uet's refs move again.

Git and libgit2 move a ref by creating ``<ref>.lock`` (exclusively), writing the new value
into it and renaming it over the ref: the lock lives for the milliseconds in between. A
worker killed in those milliseconds (SIGKILL, the OOM killer, a host losing power) leaves the
lock behind, and git never removes one: every later move of that ref fails with "Unable to
create '….lock': File exists", and so does every retry of the step that moves it — until the
step's attempts run out and its workstream fails for nothing it did.

A lock older than :data:`STALE_AFTER_S` is such a leftover: no git or libgit2 holds one that
long. Only the locks of uet's own refs are judged (:data:`UET_REFS`; in a worker's mirror,
uet's own repository, any): the user's other refs are theirs to unlock. Two uet processes
may judge the same lock at once; each holds ``flock`` on the lock's inode while it looks and
removes it only while the path still names that inode, so the second finds it gone (or a
fresh lock of someone else's, which it leaves alone) instead of removing a live lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("uet.git")

#: uet's own refs in a user's repository: the only ones whose locks uet may remove there.
UET_REFS = ("refs/heads/uet/", "refs/tags/uet/")

#: How git names the lock it could not take.
_LOCK_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")

#: How old a ref's lock must be to be a dead process's (git holds one for milliseconds; a
#: retry's backoff reaches this within a few attempts).
STALE_AFTER_S = 10.0


def break_stale_ref_locks(
    git_dir: Path, refs: Iterable[str], *, any_ref: bool = False
) -> list[str]:
    """The stale locks of ``refs`` in the repository at ``git_dir`` removed (uet's own refs
    only, unless ``any_ref``: a repository uet owns whole); the refs whose lock was."""
    return [
        ref
        for ref in refs
        if (any_ref or ref.startswith(UET_REFS)) and break_stale_lock(git_dir / f"{ref}.lock")
    ]


def break_stale_lock(lock: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """``lock`` removed if it is older than ``stale_after_s``; True if this call removed it.
    Costs one failed ``open`` where there is no lock (the common case: every ref move asks)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # none (or not a file uet may open): nothing to break
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another uet process is judging it now: the next retry sees
        held = os.fstat(fd)
        age = time.time() - held.st_mtime
        if age < stale_after_s:
            return False  # a live holder's, or too young to tell: the retry waits it out
        with contextlib.suppress(FileNotFoundError):
            now = os.stat(lock, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                os.unlink(lock)
                log.warning(
                    "removed %s: a ref lock %.0f s old, left by a killed process", lock, age
                )
                return True
        return False
    finally:
        os.close(fd)


def break_stale_locks_named(git_dir: Path, stderr: str) -> bool:
    """The stale locks git's ``stderr`` says it could not take, in the repository at
    ``git_dir`` (one uet owns whole: a mirror), removed; True if any was."""
    root = git_dir.resolve()
    named = (Path(m) for m in _LOCK_EXISTS.findall(stderr))
    return any([break_stale_lock(p) for p in named if p.resolve().is_relative_to(root)])
