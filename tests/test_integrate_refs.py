"""The integration step moves uet's branch and the step's tag in one transaction, only from
the head uet expects: a retry finds its own result there and is done; a branch someone else
moved is refused, non-retryable, and nothing moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import git_out
from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, open_repository
from activities.lib.state_dir import StateDir
from activities.workspace import WorkspaceActivities
from schemas.workspace import CommitPatchInput, IntegrateInput, MergeRequest

BRANCH = "refs/heads/uet/R1/integration"
TAG = "refs/tags/uet/R1/wave-1"


def setup(make_repo: Any) -> tuple[Path, str, str]:
    repo: Path = make_repo({"a.txt": "a\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    git_out(repo, "update-ref", BRANCH, base)
    git_out(repo, "checkout", "-q", "-b", "work")
    (repo / "b.txt").write_text("b\n")
    git_out(repo, "add", "b.txt")
    git_out(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b")
    work = git_out(repo, "rev-parse", "HEAD")
    git_out(repo, "checkout", "-q", "-")
    return repo, base, work


def step(repo: Path, base: str, work: str) -> IntegrateInput:
    return IntegrateInput(
        repo_path=str(repo),
        run_id="R1",
        wave=1,
        integration_ref=BRANCH,
        expected_head=base,
        merges=[MergeRequest(workstream_id="ws", commit_sha=work)],
        tag_ref=TAG,
        timestamp=1_700_000_000,
    )


async def test_moved_once_and_a_retry_is_done(make_repo: Any, tmp_path: Path) -> None:
    repo, base, work = setup(make_repo)
    activities = WorkspaceActivities(StateDir(tmp_path / "home"))
    first = await activities.integrate(step(repo, base, work))
    assert git_out(repo, "rev-parse", BRANCH) == first.head_sha == git_out(repo, "rev-parse", TAG)
    again = await activities.integrate(step(repo, base, work))  # a retry of the same step
    assert again.head_sha == first.head_sha
    assert git_out(repo, "rev-parse", BRANCH) == first.head_sha


async def test_a_branch_someone_else_moved_is_refused(make_repo: Any, tmp_path: Path) -> None:
    repo, base, work = setup(make_repo)
    git_out(repo, "update-ref", BRANCH, work)  # not uet's doing
    activities = WorkspaceActivities(StateDir(tmp_path / "home"))
    with pytest.raises(ApplicationError) as refused:
        await activities.integrate(step(repo, base, work))
    assert refused.value.type == "IntegrationRefMoved" and refused.value.non_retryable
    assert git_out(repo, "rev-parse", BRANCH) == work
    assert git_out(repo, "tag", "--list") == ""  # the step's tag did not move either


async def test_a_commit_made_on_the_head_merges_as_merge_tree_would(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its loose object says its parent is the head: the merge takes its tree without a
    merge-tree process, and makes the same merge commit as one (and as libgit2, packed)."""
    repo, base, work = setup(make_repo)
    activities = WorkspaceActivities(StateDir(tmp_path / "home"))
    trees: list[tuple[str, str]] = []
    merge_tree = WorkspaceActivities._merge_tree

    async def counted(repo_: Any, head: str, commit: str) -> str | list[str]:
        trees.append((head, commit))
        return await merge_tree(repo_, head, commit)

    monkeypatch.setattr(WorkspaceActivities, "_merge_tree", staticmethod(counted))
    read = await activities.integrate(step(repo, base, work))
    assert trees == []  # read from the loose commit
    git_out(repo, "update-ref", BRANCH, base)
    git_out(repo, "tag", "-d", "uet/R1/wave-1")
    git_out(repo, "gc", "-q")  # packed: not loose any more, merged by libgit2 (tree_merge)
    packed = await activities.integrate(step(repo, base, work))
    assert trees == [] and packed.head_sha == read.head_sha
    git_out(repo, "update-ref", BRANCH, base)
    monkeypatch.setattr("activities.workspace.disjoint_merge", lambda *_: None)
    merged = await activities.integrate(step(repo, base, work))  # and by merge-tree
    assert trees == [(base, work)]
    assert merged.head_sha == read.head_sha
    assert git_out(repo, "rev-parse", f"{read.head_sha}^{{tree}}") == git_out(
        repo, "rev-parse", f"{work}^{{tree}}"
    )


async def test_a_patch_commits_the_captures_tree_or_applies_it_where_the_tree_is_not_here(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool's capture left the tree of base + patch in the repository: committing it is
    the same commit as applying the patch; a tree this host lacks (a tool on another host)
    is applied instead."""
    repo, base, work = setup(make_repo)
    state = StateDir(tmp_path / "home")
    diff = git_out(repo, "diff", "--binary", base, work).encode() + b"\n"
    made = git_out(repo, "rev-parse", f"{work}^{{tree}}")
    activities = WorkspaceActivities(state)
    applied: list[str] = []
    apply = WorkspaceActivities._applied

    async def counted(self: WorkspaceActivities, repo_: Any, input: CommitPatchInput) -> str:
        applied.append(input.patch_id)
        return await apply(self, repo_, input)

    monkeypatch.setattr(WorkspaceActivities, "_applied", counted)

    async def commit(n: int, tree: str | None) -> str:
        committed = await activities.commit_patch(
            CommitPatchInput(
                repo_path=str(repo),
                run_id="R1",
                workstream_id="ws",
                title="b",
                base_sha=base,
                patch=state.artifacts.put_bytes(diff, "text/x-diff"),
                patch_id=f"P{n}",
                branch_ref=f"refs/heads/uet/R1/ws-{n}",
                timestamp=1_700_000_000,
                tree_sha=tree,
            )
        )
        assert committed.tree_sha == made
        return git_out(repo, "rev-parse", f"refs/heads/uet/R1/ws-{n}^{{tree}}")

    assert await commit(1, made) == await commit(2, None) == made
    assert await commit(3, "0" * 40) == made  # not here: the patch applied
    assert applied == ["P2", "P3"]


async def test_a_base_is_read_into_an_index_once_per_run(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each private index at a base holds what `git read-tree` writes, and only the first one
    of a run reads it; a name that is not a commit id is read every time, never kept."""
    repo, _, work = setup(make_repo)
    state = StateDir(tmp_path / "home")
    git = await open_repository(repo)
    reads: list[str] = []
    read_tree = Git.read_tree

    async def counted(self: Git, commit: str) -> None:
        reads.append(commit)
        await read_tree(self, commit)

    monkeypatch.setattr(Git, "read_tree", counted)

    async def listing(at: str) -> str:
        async with state.private_index(git, "R1", at=at) as index:
            return (await index.run("ls-files", "--stage")).stdout.decode()

    first, again = await listing(work), await listing(work)
    assert first == again and "b.txt" in first and reads == [work]
    by_git = git.with_(index_file=tmp_path / "by-git")
    await by_git.run("read-tree", work)  # what git itself reads (libgit2 read it above)
    assert (await by_git.run("ls-files", "--stage")).stdout.decode() == first
    assert await listing("work") == first  # a branch name: read, not kept
    assert reads == [work, "work"]
    assert [p.name for p in (state.run_dir("R1") / "indexes").iterdir()] == [work]
