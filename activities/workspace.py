"""Git workspaces: uet's refs in the user's repository and throwaway checkouts for tools/gates.

The user's repository is only ever touched through its object store and uet's own refs
(``refs/heads/uet/<run>/…``, ``refs/tags/uet/<run>/…``): commits are built with a private index
and ``commit-tree``, merges with ``merge-tree --write-tree``, refs moved with compare-and-swap.
Their HEAD, index and working tree are never used.

Checkouts for tools and gates are standalone throwaway repositories that borrow the user's
objects through ``objects/info/alternates``: a tool that runs ``git config`` or installs hooks
there changes nothing the user or uet relies on.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.artifacts import ArtifactStore
from activities.git import Git, GitError, objects_dir, open_repository, run_git
from activities.patches import apply_patch
from schemas.workspace import (
    CloseRunInput,
    CloseRunResult,
    CommitPatchInput,
    CommitPatchResult,
    IntegrateInput,
    IntegrateResult,
    MergeOutcome,
    OpenRunInput,
    OpenRunResult,
)


class Workspace:
    """Where uet keeps its per-run scratch space under the state dir."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.artifacts = ArtifactStore(home / "artifacts")

    def run_dir(self, run_id: str) -> Path:
        return self.home / "worktrees" / run_id

    def scratch(self, run_id: str, *parts: str) -> Path:
        """A fresh, empty directory for one activity attempt (left-overs of a crashed attempt
        are removed first, so a retry starts from nothing)."""
        path = self.run_dir(run_id).joinpath(*parts)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    @asynccontextmanager
    async def private_index(self, repo: Git, run_id: str) -> AsyncIterator[Git]:
        """``repo`` with a throwaway index file of our own (never the user's)."""
        tmp_root = self.run_dir(run_id) / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            yield repo.with_(index_file=Path(tmp) / "index")


async def checkout(repo: Git, sha: str, path: Path) -> Git:
    """A standalone repository at ``path`` whose branch ``uet`` and work tree are at ``sha``."""
    await run_git("init", "--quiet", "--template=", "--initial-branch=uet", str(path), cwd=path)
    alternates = path / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(f"{objects_dir(repo)}\n")
    local = Git(git_dir=path / ".git", work_tree=path)
    await local.update_ref("refs/heads/uet", sha)
    await local.run("reset", "--quiet", "--hard", "refs/heads/uet")
    return local


async def resolve_commit(repo: Git, rev: str) -> str | None:
    return await repo.rev_parse(f"{rev}^{{commit}}")


class WorkspaceActivities:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @activity.defn
    async def open_run(self, input: OpenRunInput) -> OpenRunResult:
        """Resolve the base and create the run's integration branch there."""
        repo = await open_repository(input.repo_path)
        rev = input.base_ref or "HEAD"
        base = await resolve_commit(repo, rev)
        if base is None:
            raise ApplicationError(
                f"base_ref {rev!r} does not name a commit in {input.repo_path}",
                type="BaseRefNotFound",
                non_retryable=True,
            )
        current = await repo.rev_parse(input.integration_ref)
        if current is None:
            await repo.update_ref(input.integration_ref, base, "")
        elif current != base:
            raise ApplicationError(
                f"{input.integration_ref} already exists at {current[:12]}; run ids are unique, "
                "so another process is using this run id",
                type="IntegrationRefExists",
                non_retryable=True,
            )
        return OpenRunResult(base_sha=base, integration_ref=input.integration_ref)

    @activity.defn
    async def commit_patch(self, input: CommitPatchInput) -> CommitPatchResult:
        """Apply the patch to the base in a private index and commit it on the workstream
        branch. No work tree is involved, so nothing on disk can redirect the write."""
        repo = await open_repository(input.repo_path)
        patch = self.workspace.artifacts.verified_path(input.patch)
        async with self.workspace.private_index(repo, input.run_id) as git:
            await git.run("read-tree", input.base_sha)
            await apply_patch(
                git,
                patch,
                target="--cached",
                what=f"patch for {input.workstream_id} at {input.base_sha[:12]}",
            )
            tree = await git.out("write-tree")
        message = (
            f"{input.title or input.workstream_id}\n\n"
            f"Uet-Run: {input.run_id}\n"
            f"Uet-Workstream: {input.workstream_id}\n"
            f"Uet-Patch: {input.patch_id}\n"
        )
        commit = await repo.commit_tree(tree, [input.base_sha], message, input.timestamp)
        await repo.update_ref(input.branch_ref, commit)
        return CommitPatchResult(commit_sha=commit, tree_sha=tree)

    @activity.defn
    async def integrate(self, input: IntegrateInput) -> IntegrateResult:
        """Merge the wave's branches into the integration branch, in the given order.

        The merge commits depend only on the inputs, so a retry computes the same head and
        the compare-and-swap at the end either applies it or finds it already applied."""
        repo = await open_repository(input.repo_path)
        head = input.expected_head
        outcomes = []
        for request in input.merges:
            result = await repo.run(
                "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z",
                head, request.commit_sha, check=False,
            )  # fmt: skip
            fields = result.stdout.decode("utf-8", "replace").split("\0")
            if result.returncode == 1:
                conflicts = sorted({f for f in fields[1:] if f})
                outcomes.append(
                    MergeOutcome(
                        workstream_id=request.workstream_id, merged=False, conflicts=conflicts
                    )
                )
                continue
            if result.returncode != 0:
                raise GitError(("merge-tree",), result.returncode, result.stderr.decode())
            message = (
                f"uet: integrate {request.workstream_id} (wave {input.wave})\n\n"
                f"Uet-Run: {input.run_id}\n"
                f"Uet-Integrates: {request.workstream_id}\n"
            )
            head = await repo.commit_tree(
                fields[0], [head, request.commit_sha], message, input.timestamp
            )
            outcomes.append(
                MergeOutcome(workstream_id=request.workstream_id, merged=True, merge_commit=head)
            )
        current = await repo.rev_parse(input.integration_ref)
        if current == input.expected_head and head != current:
            await repo.update_ref(input.integration_ref, head, input.expected_head)
        elif current != head:
            raise ApplicationError(
                f"{input.integration_ref} moved to {str(current)[:12]} while uet expected "
                f"{input.expected_head[:12]}; only uet may move its refs",
                type="IntegrationRefMoved",
                non_retryable=True,
            )
        if input.tag_ref:
            await repo.update_ref(input.tag_ref, head)
        return IntegrateResult(head_sha=head, outcomes=outcomes)

    @activity.defn
    async def close_run(self, input: CloseRunInput) -> CloseRunResult:
        """Remove the run's checkouts; they are caches, everything that matters is in refs
        and artifacts."""
        run_dir = self.workspace.run_dir(input.run_id)
        removed = sum(1 for _ in run_dir.iterdir()) if run_dir.is_dir() else 0
        shutil.rmtree(run_dir, ignore_errors=True)
        return CloseRunResult(removed_paths=removed)
