"""Compensation steps: each idempotent, each fine when its forward step never happened."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.heartbeat import heartbeating
from activities.lib.process import run_process
from activities.lib.remote_repo import open_run_repository
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from activities.lib.step_sandbox import step_sandbox
from activities.lib.workspace.prepare import workspace_checkout
from schemas.refs import branch_ref, workstream_branch
from schemas.saga import CompensateInput, CompensateResult
from schemas.spec import WorkspaceSpec


class SagaActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def compensate(self, input: CompensateInput) -> CompensateResult:
        step = input.step
        repo = await open_run_repository(self.state.home, input.repo_path)
        if step.kind == "reset_ref":
            assert step.ref and step.to_sha
            current = await repo.rev_parse(step.ref)
            if current == step.to_sha:
                return CompensateResult(step_id=step.step_id, done=True, detail="already there")
            await repo.update_ref(step.ref, step.to_sha)
            return CompensateResult(
                step_id=step.step_id,
                done=True,
                detail=f"{step.ref} {str(current)[:12]} -> {step.to_sha[:12]}",
            )
        if step.kind == "delete_ref":
            assert step.ref
            if await repo.rev_parse(step.ref) is None:
                return CompensateResult(step_id=step.step_id, done=True, detail="already gone")
            await repo.delete_refs([step.ref])
            return CompensateResult(step_id=step.step_id, done=True, detail=f"deleted {step.ref}")
        if step.kind == "delete_branches":
            refs = [branch_ref(workstream_branch(input.run_id, w)) for w in step.workstream_ids]
            await repo.delete_refs(refs)  # one transaction; a ref not there is no error
            return CompensateResult(
                step_id=step.step_id, done=True, detail=f"deleted {len(refs)} branches"
            )
        # The user's own undo, in a fresh checkout of the integration head (their work is
        # still there: its merge is undone after this step).
        assert step.command is not None
        head = await repo.rev_parse(input.integration_ref)
        if head is None:
            raise ApplicationError(f"{input.integration_ref} is gone", non_retryable=True)
        scratch = self.state.scratch(
            input.run_id, "compensation", f"{step.step_id}.{activity.info().attempt}"
        )
        # The workstream's workspace: an undo script may need the project's setup too.
        async with workspace_checkout(
            step.workspace or WorkspaceSpec(),
            state=self.state,
            repo=repo,
            repo_path=input.repo_path,
            commit=head,
            scratch=scratch,
        ) as (slot, ready):
            env = step_env(
                {
                    **ready.env,
                    "UET_RUN_ID": input.run_id,
                    "UET_WORKSTREAM_ID": step.workstream_id or "",
                    "UET_COMPENSATION": "1",
                    "UET_INTEGRATION_SHA": head,
                },
                passthrough=(step.workspace or WorkspaceSpec()).env_passthrough,
            )
            result = await run_process(
                step.command,
                cwd=slot.tree,
                env=env,
                timeout_s=input.timeout_s,
                log_path=scratch / "compensation.log",
                sandbox=step_sandbox(
                    (step.workspace or WorkspaceSpec()).sandbox,
                    "compensation",
                    tree=slot.tree,
                    repo=repo,
                    repo_path=input.repo_path,
                    state=self.state,
                    scratch=scratch,
                    env=env,
                ),
            )
        if result.exit_code != 0:
            what = "timed out" if result.timed_out else f"exited with {result.exit_code}"
            raise ApplicationError(
                f"compensation of {step.workstream_id} {what}: {result.tail.strip()[-500:]}",
                type="CompensationFailed",
            )
        return CompensateResult(step_id=step.step_id, done=True, detail="command ran")
