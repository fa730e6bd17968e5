"""A ref lock a killed worker left behind does not stop uet's refs for good: one older than
any live holder keeps it is removed, and the move (the commit, the integration, a mirror's
fetch, a gc's delete) goes on; a fresh lock, a lock on the user's own branch and a lock
another uet process is judging are left where they are.

Found by CI's chaos run: a worker SIGKILLed while it moved a workstream's branch left
``<ref>.lock``; every retry of the workstream's step failed on it until the run stalled."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out, phase, run_input, run_phase
from temporalio.client import Client
from temporalio.worker import Worker
from test_integrate_refs import BRANCH
from test_integrate_refs import setup as integration_repo
from test_integrate_refs import step as integration_step

from activities.lib import gc
from activities.lib.git import GitError, open_repository
from activities.lib.remote_repo import open_mirror
from activities.lib.stale_locks import STALE_AFTER_S, break_stale_lock
from activities.lib.state_dir import StateDir
from activities.workspace import WorkspaceActivities
from runtime.settings import Settings
from schemas.refs import branch_ref, integration_branch, workstream_branch
from schemas.run import PhaseState


def left_behind(git_dir: Path, ref: str, age_s: float = 10 * STALE_AFTER_S) -> Path:
    """``ref``'s lock as a worker killed mid-move leaves it: created ``age_s`` ago."""
    lock = git_dir / f"{ref}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


async def test_a_stale_lock_on_uets_ref_is_removed_and_the_ref_moves(make_repo: Any) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    git = await open_repository(repo)
    base = git_out(repo, "rev-parse", "HEAD")
    lock = left_behind(git.git_dir, BRANCH)
    await git.update_ref(BRANCH, base, "")
    assert git_out(repo, "rev-parse", BRANCH) == base and not lock.exists()
    git_out(repo, "fsck", "--strict")


async def test_a_fresh_lock_and_a_lock_on_the_users_branch_are_left(make_repo: Any) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    git = await open_repository(repo)
    base = git_out(repo, "rev-parse", "HEAD")
    fresh = left_behind(git.git_dir, BRANCH, age_s=0)  # a live git may be moving it now
    with pytest.raises(GitError, match="lock"):
        await git.update_ref(BRANCH, base, "")
    assert fresh.exists() and git_out(repo, "for-each-ref", BRANCH) == ""
    theirs = left_behind(git.git_dir, "refs/heads/main")  # not uet's to unlock, however old
    with pytest.raises(GitError, match="lock"):
        await git.update_ref("refs/heads/main", base)
    assert theirs.exists()


def test_a_lock_another_uet_process_is_judging_is_left_to_it(tmp_path: Path) -> None:
    lock = left_behind(tmp_path, BRANCH)
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the other process holds the lock's inode
        assert break_stale_lock(lock) is False and lock.exists()
    finally:
        os.close(fd)
    assert break_stale_lock(lock) is True and not lock.exists()
    assert break_stale_lock(lock) is False  # nothing there: nothing to do


async def test_the_integration_step_retried_after_a_kill_goes_through(
    make_repo: Any, tmp_path: Path
) -> None:
    repo, base, work = integration_repo(make_repo)
    step = integration_step(repo, base, work)
    activities = WorkspaceActivities(StateDir(tmp_path / "home"))
    lock = left_behind((await open_repository(repo)).git_dir, BRANCH, age_s=0)
    with pytest.raises(GitError, match="cannot lock"):
        await activities.integrate(step)  # the killed worker's lock is too young to judge
    assert git_out(repo, "rev-parse", BRANCH) == base
    then = time.time() - 2 * STALE_AFTER_S
    os.utime(lock, (then, then))  # a later retry of the step, after the backoff
    done = await activities.integrate(step)
    assert git_out(repo, "rev-parse", BRANCH) == done.head_sha != base


async def test_a_mirror_fetches_past_a_killed_fetchs_locks(
    make_repo: Any, git_daemon: Any, tmp_path: Path
) -> None:
    repo: Path = make_repo({"f.txt": "x\n"})
    url: str = git_daemon(repo)
    mirror = await open_mirror(tmp_path / "host", url)
    served = git_daemon.root / "project.git"
    base = git_out(served, "rev-parse", "refs/heads/main")
    tree = git_out(served, "rev-parse", f"{base}^{{tree}}")
    newer = git_out(served, "commit-tree", tree, "-p", base, "-m", "newer")
    git_out(served, "update-ref", "refs/heads/main", newer)
    lock = left_behind(mirror.git_dir, "refs/heads/main")  # a fetch killed as it updated
    fetched = await open_mirror(tmp_path / "host", url, [newer])
    assert await fetched.rev_parse("refs/heads/main") == newer and not lock.exists()


def test_gc_deletes_a_closed_runs_ref_past_a_stale_lock(make_repo: Any) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    git_out(repo, "update-ref", BRANCH, base)
    lock = left_behind(repo / ".git", BRANCH)
    item = gc.GcItem(kind="ref", path=str(repo), size=0, why="closed", ref=BRANCH, old=base)
    done = gc.remove([item], time.time(), None)
    assert not done.skipped and git_out(repo, "for-each-ref", BRANCH) == "" and not lock.exists()


async def test_a_run_whose_refs_a_killed_worker_left_locked_completes(
    client: Client, settings: Settings, worker: Worker, make_repo: Any
) -> None:
    """The locks a worker killed in an earlier attempt of this run left: the workstream's
    branch and the integration branch, both long past any live holder's time."""
    repo: Path = make_repo({"a.txt": "zero\n"})
    spec = phase(
        workstreams=[{"workstream_id": "a", "execution_request": {"command": "echo one > a.txt"}}]
    )
    input = run_input(spec, repo)
    refs = [
        branch_ref(workstream_branch(input.run_id, "a")),
        branch_ref(integration_branch(input.run_id)),
    ]
    locks = [left_behind(repo / ".git", ref) for ref in refs]
    record = await run_phase(client, settings, input)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert not any(lock.exists() for lock in locks)
    assert git_out(repo, "show", f"{refs[1]}:a.txt") == "one"
    assert git_out(repo, "status", "--porcelain") == ""  # the user's tree untouched
