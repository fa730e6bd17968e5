"""One workstream: tool → patch → commit on its branch → acceptance gates."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.failures import cause_message
from workflows.ids import IdFactory

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.tools import ToolActivities
    from activities.workspace import WorkspaceActivities
    from schemas.gates import GateRunInput, GateRunResult
    from schemas.refs import branch_ref
    from schemas.run import WorkstreamInput, WorkstreamResult, WorkstreamState
    from schemas.tools import ToolRunInput
    from schemas.workspace import CommitPatchInput

#: Git steps are quick and only fail transiently (locks, disk); errors typed here never heal.
GIT_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["PatchDoesNotApply"])


@workflow.defn
class WorkstreamWorkflow:
    def __init__(self) -> None:
        self._ids = IdFactory()
        self._workstream_id = ""

    @workflow.run
    async def run(self, input: WorkstreamInput) -> WorkstreamResult:
        result = await self._run(input)
        if result.status == WorkstreamState.FAILED:
            # Failed in the Web UI too; the parent reads the result from the details.
            raise ApplicationError(
                f"{result.workstream_id}: {result.reason}",
                result.model_dump(mode="json"),
                type="WorkstreamFailed",
                non_retryable=True,
            )
        return result

    async def _run(self, input: WorkstreamInput) -> WorkstreamResult:
        ws = input.workstream
        self._workstream_id = ws.workstream_id
        policy = ws.resilience_policy
        heartbeat = timedelta(seconds=input.options.heartbeat_timeout_s)
        patch_id = self._ids.new()
        try:
            tool = await workflow.execute_activity_method(
                ToolActivities.run_tool,
                ToolRunInput(
                    run_id=input.run_id,
                    workstream_id=ws.workstream_id,
                    repo_path=input.repo_path,
                    base_sha=input.base_sha,
                    attempt=1,
                    request=ws.execution_request,
                    patch_file=input.patch_file,
                    timeout_s=policy.timeout_s,
                ),
                # The adapter enforces timeout_s itself and reports it; this is the backstop.
                start_to_close_timeout=timedelta(seconds=policy.timeout_s + 120),
                heartbeat_timeout=heartbeat,
                retry_policy=RetryPolicy(maximum_attempts=policy.max_attempts),
                summary=f"{ws.execution_request.tool_id} for {ws.workstream_id}",
            )
            if tool.outcome in ("failed", "timeout"):
                return self._failed(f"tool {tool.reason}", tool.output_tail)
            commit = input.base_sha
            if tool.patch is not None:
                committed = await workflow.execute_activity_method(
                    WorkspaceActivities.commit_patch,
                    CommitPatchInput(
                        repo_path=input.repo_path,
                        run_id=input.run_id,
                        workstream_id=ws.workstream_id,
                        title=ws.title,
                        base_sha=input.base_sha,
                        patch=tool.patch,
                        patch_id=patch_id,
                        branch_ref=branch_ref(input.branch_ref),
                        timestamp=int(workflow.time_ns() // 1_000_000_000),
                    ),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=GIT_RETRY,
                    summary=f"commit {ws.workstream_id}",
                )
                commit = committed.commit_sha
            gates = await self._run_gates(input, commit, heartbeat)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the run was cancelled: end as cancelled, not as a failed workstream
            return self._failed(cause_message(err))
        if not gates.passed:
            failure = gates.first_failure
            assert failure is not None
            result = self._failed(
                f"gate {failure.gate_id} {failure.reason}", failure.output_tail, commit
            )
            result.gates = gates.results
            return result
        return WorkstreamResult(
            workstream_id=ws.workstream_id,
            status=WorkstreamState.COMPLETED,
            commit=commit if tool.patch is not None else None,
            patch=tool.patch,
            reason=None if tool.patch is not None else tool.reason,
            gates=gates.results,
        )

    async def _run_gates(
        self, input: WorkstreamInput, commit: str, heartbeat: timedelta
    ) -> GateRunResult:
        gates = input.workstream.acceptance_criteria.gates
        if not gates:
            return GateRunResult(passed=True)
        total = sum(g.timeout_s for g in gates)
        return await workflow.execute_activity_method(
            GateActivities.run_gates,
            GateRunInput(
                repo_path=input.repo_path,
                run_id=input.run_id,
                label=input.workstream.workstream_id,
                commit_sha=commit,
                gates=gates,
            ),
            start_to_close_timeout=timedelta(seconds=total + 120),
            heartbeat_timeout=heartbeat,
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"gates for {input.workstream.workstream_id}",
        )

    def _failed(self, reason: str, tail: str = "", commit: str | None = None) -> WorkstreamResult:
        # First line: what failed; then the end of its output, where the error usually is.
        detail = f"{reason}\n{_last_lines(tail)}" if tail.strip() else reason
        return WorkstreamResult(
            workstream_id=self._workstream_id,
            status=WorkstreamState.FAILED,
            commit=commit,
            reason=detail,
        )


def _last_lines(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])
