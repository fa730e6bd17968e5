"""Run a workstream's tool in a fresh checkout at its base and capture the change as a patch."""

from __future__ import annotations

import asyncio
import codecs
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.adapters import ADAPTERS, Adapter, ToolContext, ToolEnd
from activities.lib.errors.engine import Classification, classify
from activities.lib.feedback import render_feedback
from activities.lib.git import Git
from activities.lib.heartbeat import heartbeating
from activities.lib.remote_repo import open_run_repository
from activities.lib.repo_guard import Snapshot, WorkTreeSnapshot, check_untouched, check_work_tree
from activities.lib.slot_wait import SlotGate
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from activities.lib.step_sandbox import step_sandbox
from activities.lib.telemetry.recorder import (
    ExecutionFact,
    Fact,
    error_fact,
    file_types,
    now,
    scope_signature,
)
from activities.lib.workspace.pool import copy_index
from activities.lib.workspace.prepare import user_work_tree, workspace_checkout
from schemas.tools import ToolRunInput, ToolRunResult

#: Flags that make the diff exact and reproducible, whatever the user's config says.
DIFF_FLAGS = (
    "--binary",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--no-renames",
)


class ToolActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def run_tool(self, input: ToolRunInput) -> ToolRunResult:
        started = time.monotonic()
        gate = SlotGate(input.slot_from)
        try:
            result = await self._run(input, gate)
        except ApplicationError as exc:
            if exc.non_retryable:  # final: it counts as a failed run (a retry would not)
                final = classify(exc.message, code=_code_of(exc), detail=_detail_of(exc))
                spent = time.monotonic() - started - gate.waited_s
                self.state.telemetry.record(*_facts(input, None, final, exc.message, spent))
            raise
        found: Classification | None = None
        if result.outcome in ("failed", "timeout"):
            code = result.reason_code if result.reason_code not in ("", "tool_failed") else None
            found = classify(result.output_tail, code=code, detail=input.request.tool_id)
            result.signature, result.category = found.signature, found.category
        self.state.telemetry.record(
            *_facts(input, result, found, result.output_tail, result.duration_s)
        )
        return result

    async def _run(self, input: ToolRunInput, gate: SlotGate) -> ToolRunResult:
        adapter = ADAPTERS.get(input.request.tool_id)
        if adapter is None:
            raise ApplicationError(
                f"no adapter for tool {input.request.tool_id!r}",
                type="UnknownTool",
                non_retryable=True,
            )
        started = time.monotonic()
        repo = await open_run_repository(self.state.home, input.repo_path, input.base_sha)
        scratch = self.state.scratch(input.run_id, input.workstream_id, f"tool-{input.attempt}")
        env = self._tool_env(input, adapter)
        if input.feedback is not None:
            # Outside the tree, so it never ends up in the patch.
            feedback_file = scratch / "feedback.md"
            feedback_file.write_text(render_feedback(input.feedback))
            env["UET_FEEDBACK_FILE"] = str(feedback_file)
        if adapter.needs_work_tree:
            end, change = await self._run_in_checkout(input, adapter, repo, scratch, env, gate)
        else:
            async with self.state.private_index(repo, input.run_id, at=input.base_sha) as index:
                ctx = ToolContext(
                    input, index, env, scratch / "tool.log", self.state.artifacts, scratch
                )
                await gate.passed()
                end = await adapter.run(ctx)
                change = await captured(index, input.base_sha) if end.ok else (None, [], None)
        log = await asyncio.to_thread(
            self.state.artifacts.put_file, scratch / "tool.log", "text/plain"
        )
        result = ToolRunResult(
            outcome="changed",
            reason=end.reason,
            reason_code=end.reason_code,
            exit_code=end.exit_code,
            output_tail=end.output_tail,
            log=log,
            usage=end.usage,
        )
        patch, files, tree = change
        if not end.ok:
            result.outcome = "timeout" if end.timed_out else "failed"
        elif patch is None and end.reason_code == "permission_denied":
            result.outcome = "failed"  # it wanted to change something and was not let
        elif patch is None:
            result.outcome = "no_change"
            result.reason_code = "no_change"
            result.reason = end.reason or "the tool changed nothing"
        else:
            result.patch = self.state.artifacts.put_bytes(patch, "text/x-diff")
            result.files_changed = files
            result.tree_sha = tree
        result.duration_s = round(time.monotonic() - started - gate.waited_s, 3)
        return result

    async def _run_in_checkout(
        self,
        input: ToolRunInput,
        adapter: Adapter,
        repo: Git,
        scratch: Path,
        env: dict[str, str],
        gate: SlotGate,
    ) -> tuple[ToolEnd, tuple[bytes | None, list[str], str | None]]:
        """The tool in a throwaway checkout at the base; its change captured as a diff."""
        async with workspace_checkout(
            input.workspace,
            state=self.state,
            repo=repo,
            repo_path=input.repo_path,
            commit=input.base_sha,
            scratch=scratch,
        ) as (slot, ready):
            tree, local = slot.tree, slot.git
            env = {**ready.env, **env}
            # AI tools reach their APIs; a shell tool, by default, nothing.
            sandbox = step_sandbox(
                input.workspace.sandbox,
                "ai" if adapter.env_vars else "shell",
                tree=tree,
                repo=repo,
                repo_path=input.repo_path,
                state=self.state,
                scratch=scratch,
                env=env,
                config_paths=adapter.config_paths,
            )
            ctx = ToolContext(
                input, local, env, scratch / "tool.log", self.state.artifacts, scratch, sandbox
            )
            # Started ahead: the checkout (setup included) is ready; the tool starts when the
            # phase hands over a slot. Before the snapshots, which watch the tool alone.
            await gate.passed()
            guard = Snapshot.take(repo.git_dir)
            user_tree = user_work_tree(repo, input.repo_path)
            before = None
            # A confined tool sees nothing of the user's work tree (tests/test_sandbox.py
            # tries): only an unconfined one is watched, by the stat data of every file there.
            if user_tree is not None and not (sandbox is not None and sandbox.confined):
                before = await asyncio.to_thread(WorkTreeSnapshot.take, user_tree, repo.git_dir)
            try:
                end = await adapter.run(ctx)
            except BaseException:
                guard.restore()  # undo any tampering; the tool's own error (or a cancel) wins
                raise
            # Before any git command of uet's touches the tool's work (capture runs filters).
            check_untouched(guard, input.workstream_id)
            if before is not None:
                await asyncio.to_thread(check_work_tree, before, repo.git_dir, input.workstream_id)
            if not end.ok:
                return end, (None, [], None)
            # What the workspace put in (caches, included files) is never part of the change.
            with ready.step("capture"):
                change = await capture_change(
                    repo,
                    tree,
                    input.base_sha,
                    self.state,
                    input.run_id,
                    (*adapter.private_paths, *ready.private_paths),
                    seed_index=slot.pristine_index(),
                )
            return end, change

    @staticmethod
    def _tool_env(input: ToolRunInput, adapter: Adapter) -> dict[str, str]:
        """Least privilege: the tool's own keys, what the workspace passes through, uet's."""
        return step_env(
            {
                **input.request.env,
                "UET_RUN_ID": input.run_id,
                "UET_WORKSTREAM_ID": input.workstream_id,
                "UET_BASE_SHA": input.base_sha,
                "UET_ATTEMPT": str(input.attempt),
            },
            needs=adapter.env_vars,
            passthrough=input.workspace.env_passthrough,
        )


async def capture_change(
    repo: Git,
    tree: Path,
    base_sha: str,
    state: StateDir,
    run_id: str,
    private_paths: tuple[str, ...] = (),
    seed_index: Path | None = None,
) -> tuple[bytes | None, list[str], str | None]:
    """Everything the tool left in the work tree — its commits, edits and new files — as one
    diff against the base, through a temporary index in the *user's* git dir (trusted config),
    so nothing the tool did to its own ``.git`` can influence the capture."""
    at = None if seed_index is not None else base_sha
    async with state.private_index(repo.with_(work_tree=tree), run_id, at=at) as git:
        if seed_index is not None and git.index_file is not None:
            # An index uet wrote for this very tree at the base (a pooled checkout's): its
            # stat data spares hashing every unchanged file again.
            copy_index(seed_index, git.index_file)
        await git.run("add", "--all", "--", ".")
        if private_paths:
            # The tool's own caches and histories, and what the workspace put in, are not part
            # of its change: back to the base in the index (an exclude pathspec would make
            # `git add` fail on a path that is also ignored).
            await git.run("reset", "-q", base_sha, "--", *[f":(glob){p}" for p in private_paths])
        return await captured(git, base_sha)


async def captured(git: Git, base_sha: str) -> tuple[bytes | None, list[str], str | None]:
    """The index's change from ``base_sha`` (diff_index) and, when there is one, the tree the
    index holds: the base with exactly that change, which commit_patch can commit as it is
    rather than apply the patch a second time."""
    patch, files = await diff_index(git, base_sha)
    return patch, files, (await git.write_tree()) if patch is not None else None


async def diff_index(git: Git, base_sha: str) -> tuple[bytes | None, list[str]]:
    """The index's difference from ``base_sha`` as an exact patch, and the paths it touches.

    One git process: ``--raw`` lists each path (``:modes shas status TAB path``, the path
    C-quoted when it has to be, as in the patch's own headers), then an empty line, then the
    same patch ``git diff`` alone prints. (``-z`` would spare the unquoting but changes how
    the patch's headers spell non-ASCII paths.)"""
    out = (await git.run("diff", "--cached", "--raw", "--patch", *DIFF_FLAGS, base_sha)).stdout
    files: list[str] = []
    pos = 0
    while out.startswith(b":", pos):
        end = out.index(b"\n", pos)
        files.append(_unquote(out[pos:end].split(b"\t", 1)[1]))
        pos = end + 1
    if not files:
        return None, []
    if out.startswith(b"\n", pos):
        pos += 1
    return out[pos:], files


def _unquote(path: bytes) -> str:
    """A path as git prints it (C-quoted, with octal escapes, when it has to be)."""
    if path.startswith(b'"') and path.endswith(b'"'):
        path = codecs.escape_decode(path[1:-1])[0]  # git quotes as C does
    return path.decode("utf-8", "surrogateescape")


def _code_of(error: ApplicationError) -> str | None:
    """uet's own code for a final tool error, when it has one."""
    if error.type == "LimitExceeded" and error.details:
        return str(error.details[0].get("reason_code"))
    return {
        "CommandNotFound": "command_not_found",
        "ToolApiError": "api_error",
        "SetupFailed": "setup_failed",
    }.get(error.type or "")


def _detail_of(error: ApplicationError) -> str:
    first = error.message.split(":", 2)
    return first[-1].strip().split()[0].strip("'[],") if error.type == "CommandNotFound" else ""


def _facts(
    input: ToolRunInput,
    result: ToolRunResult | None,
    found: Classification | None,
    output: str,
    duration_s: float,
) -> list[Fact]:
    """The tool run, and its error when it failed."""
    key = f"tool/{input.run_id}/{input.workstream_id}/{input.attempt}/{input.request.tool_id}"
    usage = result.usage if result else None
    facts: list[Fact] = [
        ExecutionFact(
            key=key,
            run_id=input.run_id,
            workstream_id=input.workstream_id,
            attempt=input.attempt,
            kind="tool",
            tool_id=input.request.tool_id,
            model=(usage.model if usage else None) or input.request.model,
            task_kind=input.task_kind,
            scope_signature=scope_signature(input.allowed_paths),
            file_types=file_types(result.files_changed) if result else "",
            at=now(),
            duration_s=round(duration_s, 3),
            outcome=result.outcome if result else "failed",
            reason_code=(result.reason_code or None) if result else "tool_failed",
            signature=found.signature if found else None,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cost_usd=usage.cost_usd if usage else None,
        )
    ]
    if found is not None:
        facts.append(
            error_fact(
                found,
                key=key,
                run_id=input.run_id,
                workstream_id=input.workstream_id,
                attempt=input.attempt,
                source=f"tool:{input.request.tool_id}",
                excerpt=output,
                log=result.log if result else None,
            )
        )
    return facts
