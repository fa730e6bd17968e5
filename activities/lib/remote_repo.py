"""Repositories given by URL: each worker keeps its own bare mirror, fetched, never shared.

A run names its repository by ``repo_path``: a local path (the user's repository, used in
place as always) or a git URL (``ssh://``, ``https://``, ``git://``, ``file://``, or scp-like
``user@host:path``). For a URL every activity works in this worker's mirror under
``$UET_HOME/mirrors``: checkouts borrow its objects, commits and merges are written into it,
and every ref uet moves is pushed to the remote first, with a lease (``Git.update_ref``). So
the remote is the one truth all workers share and the mirror only a cache of it: a worker
on another host, or this one after its disk was wiped, fetches and goes on.

A fetch happens when an activity names a commit the mirror lacks (it was made on another
host since), and always when the activity reads uet's refs (``need=()``): the remote may
have moved them. Anything an activity is given was pushed before it was scheduled, so one
fetch at its start sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, GitError, open_repository, redact_url, run_git
from activities.lib.stale_locks import break_stale_locks_named

_SCHEMES = re.compile(r"^(ssh|git|https?|file)://", re.IGNORECASE)
#: ``git@github.com:owner/repo.git``; a local path with a colon has no ``user@`` before it.
_SCP_LIKE = re.compile(r"^[\w.+-]+@[\w.-]+:(?!//)")
#: A mirror has every branch and tag of its remote, uet's own among them.
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
#: What git prints when the URL names nothing it can read (no retry will change that).
_NOT_THERE = (
    "does not appear to be a git repository",
    "repository not exported",
    "not found",
    "authentication failed",
    "permission denied",
    "could not read username",
)


def is_url(spec: str) -> bool:
    return bool(_SCHEMES.match(spec) or _SCP_LIKE.match(spec))


def local_path(spec: str) -> Path | None:
    """The user's repository on this host, or None when the run names it by URL."""
    return None if is_url(spec) else Path(spec).resolve()


def mirror_dir(home: Path, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return home / "mirrors" / f"{digest}.git"


async def open_run_repository(home: Path, spec: str, *need: str) -> Git:
    """The run's repository: the user's own (a path: used in place), or this worker's mirror
    of a URL holding the commits in ``need`` (none: fetched now, for reading uet's refs)."""
    if is_url(spec):
        return await open_mirror(home, spec, need)
    return await open_repository(spec)


async def open_mirror(home: Path, url: str, need: Sequence[str] = ()) -> Git:
    """This worker's mirror of ``url``, holding every commit in ``need``; with no ``need``,
    fetched now (the caller reads refs)."""
    path = mirror_dir(home, url)
    git = Git(git_dir=path, remote=url)
    async with _locked(path.with_suffix(".lock")):
        if not (path / "HEAD").is_file():
            await _create(path, url)
        elif need and await _has_all(git, need):
            return git
        await _fetch(git, url)
    missing = [sha for sha in need if not await _has_all(git, [sha])]
    if missing:
        raise ApplicationError(
            f"{redact_url(url)} has no commit {missing[0][:12]}; was the run's history "
            "rewritten or its refs deleted on the remote?",
            type="CommitNotFound",
            non_retryable=True,
        )
    return git


async def _create(path: Path, url: str) -> None:
    """A bare repository whose HEAD is the remote's (``base_ref`` unset means its HEAD)."""
    tmp = path.with_name(path.name + ".new")
    await asyncio.to_thread(_rmtree, tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    await run_git("init", "--bare", "--quiet", "--template=", str(tmp), cwd=tmp.parent)
    head = await run_git("ls-remote", "--symref", "--", url, "HEAD", cwd=tmp, check=False)
    if head.returncode != 0:
        await asyncio.to_thread(_rmtree, tmp)
        raise _unreachable(url, head.stderr.decode("utf-8", "replace"))
    for line in head.text.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            branch = line[len("ref: ") : -len("\tHEAD")]
            await run_git("symbolic-ref", "HEAD", branch, cwd=tmp, env={"GIT_DIR": str(tmp)})
    os.replace(tmp, path)


async def _fetch(git: Git, url: str) -> None:
    fetched = await git.run(
        "fetch", "--quiet", "--prune", "--prune-tags", "--no-write-fetch-head", "--", url,
        *REFSPECS, check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        stderr = fetched.stderr.decode("utf-8", "replace")
        if break_stale_locks_named(git.git_dir, stderr):
            return await _fetch(git, url)  # a killed fetch's locks were in the way
        raise _unreachable(url, stderr)


async def _has_all(git: Git, shas: Sequence[str]) -> bool:
    listed = await git.run(
        "cat-file", "--batch-check=%(objectname)", input="".join(f"{s}\n" for s in shas).encode()
    )
    return b"missing" not in listed.stdout


def _unreachable(url: str, stderr: str) -> ApplicationError:
    """A URL that names nothing (or nothing we may read) fails for good; a network that is
    down may come back, so that one is retried."""
    said = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    gone = any(marker in stderr.lower() for marker in _NOT_THERE)
    return ApplicationError(
        f"cannot fetch {redact_url(url)}: {said}",
        type="RepositoryNotFound" if gone else "RemoteUnreachable",
        non_retryable=gone,
    )


@contextlib.asynccontextmanager
async def _locked(lock: Path) -> AsyncIterator[None]:
    """One fetch at a time per mirror, across the processes of this host (two workers may
    share a home); a non-blocking lock polled, so a cancelled activity never leaves a
    thread waiting on it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                await asyncio.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["GitError", "is_url", "local_path", "mirror_dir", "open_mirror", "open_run_repository"]
