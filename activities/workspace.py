"""Git workspaces: uet's refs in the user's repository and throwaway checkouts for tools/gates.

The user's repository is only ever touched through its object store and uet's own refs
(``refs/heads/uet/<run>/…``, ``refs/tags/uet/<run>/…``): commits are built with a private index
and ``commit-tree``, merges with ``merge-tree --write-tree`` (in-process where it is trivial:
lib/tree_merge.py), refs moved with compare-and-swap.
Their HEAD, index and working tree are never used.

Checkouts for tools and gates are standalone throwaway repositories that borrow the user's
objects through ``objects/info/alternates``: a tool that runs ``git config`` or installs hooks
there changes nothing the user or uet relies on.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, GitError, apply_patch, resolve_commit
from activities.lib.heartbeat import heartbeating
from activities.lib.journal_store import compose
from activities.lib.parts import whole_record
from activities.lib.remote_repo import open_run_repository
from activities.lib.state_dir import StateDir
from activities.lib.telemetry.recorder import RunFact
from activities.lib.tree_merge import Lineage, disjoint_merge
from schemas.base import ArtifactRef
from schemas.events import EventType
from schemas.refs import patch_tag, tag_ref
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


class WorkspaceActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def open_run(self, input: OpenRunInput) -> OpenRunResult:
        """Resolve the base and create the run's integration branch there."""
        repo = await open_run_repository(self.state.home, input.repo_path)
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
    @heartbeating
    async def commit_patch(self, input: CommitPatchInput) -> CommitPatchResult:
        """Commit the patch on the workstream branch: the tree the tool's capture left in uet's
        index, where this host has it, else the patch applied to the base in a private index.
        No work tree is involved, so nothing on disk can redirect the write."""
        repo = await open_run_repository(self.state.home, input.repo_path, input.base_sha)
        tree = input.tree_sha
        if tree is None or not repo.has_loose(tree, b"tree"):
            # Not the tool's capture here (another host made it, or a reviewed patch resumes):
            # the patch itself, applied.
            tree = await self._applied(repo, input)
        message = (
            f"{input.title or input.workstream_id}\n\n"
            f"Uet-Run: {input.run_id}\n"
            f"Uet-Workstream: {input.workstream_id}\n"
            f"Uet-Patch: {input.patch_id}\n"
        )
        commit = await repo.commit_tree(tree, [input.base_sha], message, input.timestamp)
        await repo.update_ref(
            input.branch_ref, commit, keep=tag_ref(patch_tag(input.run_id, input.patch_id))
        )
        return CommitPatchResult(commit_sha=commit, tree_sha=tree)

    async def _applied(self, repo: Git, input: CommitPatchInput) -> str:
        """The tree of the patch applied to the base, in a private index."""
        patch = await asyncio.to_thread(self.state.artifacts.verified_path, input.patch)
        async with self.state.private_index(repo, input.run_id, at=input.base_sha) as git:
            await apply_patch(
                git,
                patch,
                target="--cached",
                what=f"patch for {input.workstream_id} at {input.base_sha[:12]}",
            )
            return await git.write_tree()

    @activity.defn
    @heartbeating
    async def integrate(self, input: IntegrateInput) -> IntegrateResult:
        """Merge the wave's branches into the integration branch, in the given order.

        The merge commits depend only on the inputs, so a retry computes the same head and
        the compare-and-swap at the end either applies it or finds it already applied."""
        repo = await open_run_repository(self.state.home, input.repo_path)
        head = input.expected_head
        lineage = Lineage(head)
        outcomes = []
        for request in input.merges:
            made = repo.loose_commit(request.commit_sha)
            tree = await self._merged(repo, head, request.commit_sha, made, lineage)
            if isinstance(tree, list):
                outcomes.append(
                    MergeOutcome(workstream_id=request.workstream_id, merged=False, conflicts=tree)
                )
                continue
            message = (
                f"uet: integrate {request.workstream_id} (wave {input.wave})\n\n"
                f"Uet-Run: {input.run_id}\n"
                f"Uet-Integrates: {request.workstream_id}\n"
            )
            head = await repo.commit_tree(
                tree, [head, request.commit_sha], message, input.timestamp
            )
            lineage.merged(request.commit_sha, made[1] if made else None, head)
            outcomes.append(
                MergeOutcome(workstream_id=request.workstream_id, merged=True, merge_commit=head)
            )
        # A mirror's refs move on its remote first, one push each (Git.update_ref).
        if repo.remote is not None or not await self._move_in_one(repo, input, head):
            await self._move_checked(repo, input, head)
        return IntegrateResult(
            head_sha=head, outcomes=outcomes, history=self._extend_history(input, outcomes)
        )

    @classmethod
    async def _merged(
        cls,
        repo: Git,
        head: str,
        commit: str,
        made: tuple[str, list[str]] | None,
        lineage: Lineage,
    ) -> str | list[str]:
        """The tree of ``head`` merged with ``commit`` (``made``: its tree and parents, when
        it is a loose object here), or the paths that conflict."""
        if made is not None and made[1] == [head]:
            # Made on the head itself (each step of an eager chain, a wave's first): the
            # merge's tree is its own, as merge-tree would find, without its process.
            return made[0]
        # A wave's later workstreams: the sides changed different files (tree_merge). In a
        # thread: writing a large tree takes as long as merge-tree's process (20 ms for 10,000
        # files at the root), and a wave of hundreds must not stall the worker's event loop
        # (its heartbeats, its other activities) for the whole integration.
        base = lineage.base_of(commit, made[1] if made else None)
        merged = await asyncio.to_thread(disjoint_merge, repo, head, commit, base)
        return merged or await cls._merge_tree(repo, head, commit)

    @staticmethod
    async def _merge_tree(repo: Git, head: str, commit: str) -> str | list[str]:
        """``git merge-tree``: the merged tree, or the paths that conflict."""
        result = await repo.run(
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            head,
            commit,
            check=False,
        )
        fields = result.stdout.decode("utf-8", "replace").split("\0")
        if result.returncode == 1:
            # merge-tree is already a 3-way merge (merge-ort, with renames): what it cannot
            # merge, re-applying the patch with `git apply --3way` cannot either.
            return sorted({f for f in fields[1:] if f})
        if result.returncode != 0:
            raise GitError(("merge-tree",), result.returncode, result.stderr.decode())
        return fields[0]

    @staticmethod
    async def _move_in_one(repo: Git, input: IntegrateInput, head: str) -> bool:
        """The integration branch from the head uet expects to ``head`` and the step's tag to
        ``head``, as one transaction (Git.move_refs; else one ``update-ref --stdin``).
        False when the branch is not where uet expects it — a retry that moved it already,
        or someone else: the caller looks which."""
        branch = input.integration_ref
        moves: list[tuple[str, str | None, str | None]] = [
            (branch, head if head != input.expected_head else None, input.expected_head)
        ]
        if input.tag_ref:
            moves.append((input.tag_ref, head, None))
        done = repo.move_refs(moves)
        if done is not None:
            return done
        script = (
            f"update {branch} {head} {input.expected_head}\n"
            if head != input.expected_head
            else f"verify {branch} {input.expected_head}\n"
        )
        if input.tag_ref:
            script += f"update {input.tag_ref} {head}\n"
        moved = await repo.run(
            "update-ref", "--no-deref", "--stdin", input=script.encode(), check=False
        )
        return moved.returncode == 0

    @staticmethod
    async def _move_checked(repo: Git, input: IntegrateInput, head: str) -> None:
        """Move the branch only from where uet left it (a retry finds ``head`` there
        already), then the step's tag."""
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

    def _extend_history(
        self, input: IntegrateInput, outcomes: list[MergeOutcome]
    ) -> ArtifactRef | None:
        """Reverse fingerprints of every patch integrated so far (a patch equal to one of them
        would undo integrated work: oscillation). Content-addressed, so a retry is a no-op."""
        history: dict[str, str] = (
            json.loads(self.state.artifacts.read_bytes(input.history)) if input.history else {}
        )
        merged = {o.workstream_id for o in outcomes if o.merged}
        for request in input.merges:
            if request.workstream_id in merged and request.reverse_fingerprint:
                history[request.reverse_fingerprint] = request.patch_id or request.workstream_id
        if not history:
            return input.history
        data = json.dumps(history, sort_keys=True).encode()
        return self.state.artifacts.put_bytes(data, "application/json")

    @activity.defn
    @heartbeating
    async def close_run(self, input: CloseRunInput) -> CloseRunResult:
        """Write what people read after the run (record, ledger and events as JSON Lines) and
        remove its checkouts: they are caches, everything that matters is in refs and
        artifacts. Rewriting the same files makes a retry harmless."""
        run_id = input.record.run_id
        folder = self.state.report_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        whole = whole_record(input.record, self.state.artifacts)
        record = whole.model_copy(update={"report_dir": str(folder)})
        _write_atomically(folder / "run.json", record.model_dump_json(indent=2) + "\n")
        ledger, events = compose(
            self.state.artifacts, record.journal, input.ledger, input.events, input.moves
        )
        _write_atomically(
            folder / "ledger.jsonl", "".join(e.model_dump_json() + "\n" for e in ledger)
        )
        _write_atomically(
            folder / "events.jsonl", "".join(e.model_dump_json() + "\n" for e in events)
        )
        self.state.drop_run_dir(run_id)
        started = next((e.at for e in events if e.type == EventType.RUN_STARTED), None)
        ended = events[-1].at if events else None
        self.state.telemetry.record(
            RunFact(
                run_id=run_id,
                phase_id=record.phase_id,
                status=str(record.status),
                scheduling=record.scheduling,
                workstreams=len(record.workstreams),
                cost_usd=record.cost_usd_total,
                started_at=started,
                ended_at=ended,
            )
        )
        return CloseRunResult(report_dir=str(folder))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)
