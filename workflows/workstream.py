"""One workstream: tool → patch → validate → apply → gates, with a fix loop.

Every change the tool makes becomes a patch with a ledger entry. A patch that breaks policy is
quarantined before git sees it; one that applies and passes its gates is ``verified`` and waits
for the phase to integrate it. When gates fail, the tool runs again from the same base with the
failure as feedback, up to ``max_fix_attempts`` times; each new patch ``replaces`` the last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import steps
from workflows.failures import cause_message
from workflows.ids import IdFactory
from workflows.journal import Journal
from workflows.steps import StepOptions, Steps

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.patches import PatchActivities
    from activities.tools import ToolActivities
    from activities.workspace import WorkspaceActivities
    from schemas.events import EventType, RunEvent
    from schemas.gates import GateResult, GateRunInput, GateRunResult
    from schemas.ledger import LedgerEntry, PatchState, Quarantine
    from schemas.patch import (
        PatchArtifact,
        QuarantineInput,
        ValidatePatchInput,
        ValidationReport,
    )
    from schemas.refs import branch_ref
    from schemas.review import ReviewNeed
    from schemas.run import WorkstreamInput, WorkstreamResult, WorkstreamState
    from schemas.spec import GateSpec
    from schemas.tools import Feedback, ToolAttempt, ToolReason, ToolRunInput, ToolRunResult
    from schemas.workspace import CommitPatchInput

#: workflow.patched id: validate_patch became a local activity (issue 7).
VALIDATE_LOCALLY = "validate-patch-locally"
#: workflow.patched id: commit_patch became a local activity (issue 7).
COMMIT_LOCALLY = "commit-patch-locally"
#: workflow.patched id: a gate whose program is missing fails the workstream at once (issue 11).
GATE_UNRUNNABLE = "gate-command-not-found-fails-at-once"
#: workflow.patched id: an execution whose patch failed and waits for review ends failed (11).
FAIL_FOR_REVIEW = "failed-patch-review-fails-execution"
#: Review reasons that mean the execution's patch failed (approval_required: it passed).
FAILED_REVIEWS = ("gates_failed", "quarantined")
A = TypeVar("A")
R = TypeVar("R")


class Failed(Exception):
    """Ends the workstream as failed (raised inside the workflow, caught in run())."""

    def __init__(self, reason: str, patch: PatchArtifact | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.patch = patch


class AskReview(Exception):
    """Ends this execution waiting for a person: the phase asks, then resumes or re-runs it."""

    def __init__(self, need: ReviewNeed, patch: PatchArtifact | None = None) -> None:
        super().__init__(need.summary)
        self.need = need
        self.patch = patch


@workflow.defn
class WorkstreamWorkflow:
    @workflow.init
    def __init__(self, input: WorkstreamInput) -> None:
        self._input = input
        self._ws = input.workstream
        self._journal = Journal(input.run_id, IdFactory())
        self._steps = Steps(timedelta(seconds=input.options.heartbeat_timeout_s))
        self._gates: list[GateResult] = []
        self._cost_usd = 0.0
        self._tool_attempts: list[ToolAttempt] = []
        self._tool_used = (input.workstream.execution_request.tool_id, "")

    @workflow.query
    def ledger(self) -> list[LedgerEntry]:
        return self._journal.entries

    @workflow.query
    def events(self) -> list[RunEvent]:
        """What happened so far: fix attempts, gate results… (the phase gets them when this
        execution ends; ``uet run`` shows them as they happen)."""
        return self._journal.events

    @workflow.run
    async def run(self, input: WorkstreamInput) -> WorkstreamResult:
        ws_id = self._ws.workstream_id
        self._journal.event(
            EventType.WORKSTREAM_STARTED, f"{ws_id} started", workstream_id=ws_id, wave=input.wave
        )
        try:
            commit, patch = await self._attempts()
        except AskReview as ask:
            result = self._result(
                WorkstreamState.AWAITING_REVIEW, patch=ask.patch, reason=ask.need.summary,
                review=ask.need,
            )  # fmt: skip
            if ask.need.reason in FAILED_REVIEWS and workflow.patched(FAIL_FOR_REVIEW):
                # Its patch failed; a person decides what happens next. In the Web UI this
                # execution is failed, not green; the parent reads the result from the details.
                raise ApplicationError(
                    f"{ws_id} needs a review ({ask.need.reason}): {_headline(ask.need.summary)}",
                    result.model_dump(mode="json"),
                    type="WorkstreamNeedsReview",
                    non_retryable=True,
                ) from None
            return result
        except Failed as failed:
            result = self._result(WorkstreamState.FAILED, reason=failed.reason, patch=failed.patch)
            self._journal.event(
                EventType.WORKSTREAM_FAILED, f"{ws_id} failed: {_headline(failed.reason)}",
                workstream_id=ws_id,
            )  # fmt: skip
            # Failed in the Web UI too; the parent reads the result from the details. Most
            # reasons from activities already name the workstream.
            prefix = f"{ws_id}: "
            raise ApplicationError(
                failed.reason if failed.reason.startswith(prefix) else prefix + failed.reason,
                result.model_dump(mode="json"),
                type="WorkstreamFailed",
                non_retryable=True,
            ) from None
        self._journal.event(
            EventType.WORKSTREAM_COMPLETED, f"{ws_id} completed", workstream_id=ws_id
        )
        return self._result(
            WorkstreamState.COMPLETED,
            commit=commit if patch is not None else None,
            patch=patch,
            reason=None if patch is not None else "the tool changed nothing",
        )

    async def _attempts(self) -> tuple[str, PatchArtifact | None]:
        """The fix loop: returns the verified commit (the base when nothing changed)."""
        first = self._input.first_attempt
        last = first + self._ws.resilience_policy.max_fix_attempts
        feedback = self._input.feedback
        previous_id = self._input.replaces
        earlier: list[PatchArtifact] = []
        for attempt in range(first, last + 1):
            entry: LedgerEntry | None = None
            commit = self._input.base_sha
            if attempt == first and self._input.resume is not None:
                # A reviewer approved this quarantined patch: apply it as it is.
                entry = self._input.resume
                self._journal.entries.append(entry)
                commit = await self._apply(entry)
            else:
                if feedback is not None and feedback.gate_id and attempt > first:
                    self._journal.event(
                        EventType.FIX_ATTEMPT,
                        f"{self._ws.workstream_id}: fix attempt {attempt - first} of "
                        f"{last - first} after gate {feedback.gate_id} failed",
                        workstream_id=self._ws.workstream_id,
                        gate_id=feedback.gate_id,
                    )
                tool = await self._run_tool(attempt, feedback)
                if tool.patch is None:
                    self._journal.event(
                        EventType.NO_CHANGE, f"{self._ws.workstream_id}: the tool changed nothing",
                        workstream_id=self._ws.workstream_id,
                    )  # fmt: skip
                else:
                    entry = self._journal.new_entry(
                        workstream_id=self._ws.workstream_id,
                        attempt=attempt,
                        tool_id=self._tool_used[0],
                        replaces=previous_id,
                    )
                    entry.tool_reason = self._tool_used[1]
                    entry.tool_usage = tool.usage
                    await self._validate(entry, tool, attempt, earlier, feedback)
                    assert entry.patch is not None
                    earlier.append(entry.patch)
                    commit = await self._apply(entry)
            gates = await self._run_gates(commit, entry)
            if gates.passed:
                if entry is not None:
                    self._journal.move(entry, PatchState.VERIFIED, "all gates passed")
                    if self._ws.review == "always":
                        raise AskReview(
                            ReviewNeed(
                                reason="approval_required",
                                summary=f"patch {entry.patch_id} passed its gates and waits "
                                "for approval",
                                patch_id=entry.patch_id,
                                patch=entry.patch.ref if entry.patch else None,
                                gate_logs=[g.log for g in gates.results if g.log],
                            ),
                            entry.patch,
                        )
                return commit, entry.patch if entry else None
            failure = gates.first_failure
            assert failure is not None
            if failure.code is not None and workflow.patched(GATE_UNRUNNABLE):
                await self._gate_unrunnable(failure, entry)
            why = f"gate {failure.gate_id} {failure.reason}"
            if attempt < last:
                if entry is not None:
                    self._journal.move(
                        entry, PatchState.DROPPED, f"{why}; replaced by attempt {attempt + 1}"
                    )
                    previous_id = entry.patch_id
                feedback = self._feedback(failure, attempt + 1, last)
                continue
            tail = _last_lines(failure.output_tail)
            fixes = last - first
            if fixes:
                why += f" after {fixes} fix attempt{'s' if fixes != 1 else ''}"
            if entry is None:
                raise Failed(f"{why}\n{tail}" if tail else why)
            if self._input.options.asks_on_failure(self._ws.review):
                # The patch stays `applied`: a reviewer may still approve it as it is.
                raise AskReview(
                    ReviewNeed(
                        reason="gates_failed",
                        summary=f"{why}\n{tail}" if tail else why,
                        patch_id=entry.patch_id,
                        patch=entry.patch.ref if entry.patch else None,
                        gate_logs=[g.log for g in gates.results if g.log],
                    ),
                    entry.patch,
                )
            self._journal.move(entry, PatchState.QUARANTINED, why)
            await self._quarantine(entry, why, gate_output=failure.output_tail)
            raise Failed(f"{why}\n{tail}" if tail else why, entry.patch)
        raise AssertionError("the loop returns or raises")

    async def _gate_unrunnable(self, failure: GateResult, entry: LedgerEntry | None) -> NoReturn:
        """A gate that cannot run where the workers are (its program is not installed) says
        nothing about the change: no fix attempt, no second tool run, no review."""
        reason = (
            f"{failure.reason} (gate {failure.gate_id}); install it where the workers run, "
            "or fix the gate's command"
        )
        if entry is not None:
            self._journal.move(entry, PatchState.QUARANTINED, f"gate {failure.gate_id}: "
                               f"{failure.reason}")  # fmt: skip
            await self._quarantine(entry, reason, gate_output=failure.output_tail)
        raise Failed(reason, entry.patch if entry else None)

    # -- steps ---------------------------------------------------------------------------------

    async def _run_tool(self, attempt: int, feedback: Feedback | None) -> ToolRunResult:
        """The tool, or the next in the router's chain when it fails (fallback)."""
        chain = self._input.tool_chain or [self._ws.execution_request.tool_id]
        why = self._input.tool_reason or f"{chain[0]} (set in the spec)"
        for index, tool_id in enumerate(chain):
            failure, code, tool = await self._try_tool(tool_id, attempt, feedback)
            self._tool_attempts.append(
                ToolAttempt(tool_id=tool_id, ok=failure is None, reason_code=code,
                            reason=(failure or "").split("\n")[0])
            )  # fmt: skip
            if failure is None:
                assert tool is not None
                self._tool_used = (tool_id, why)
                return tool
            if index + 1 == len(chain):
                raise Failed(failure)
            self._journal.event(
                EventType.TOOL_FALLBACK,
                f"{self._ws.workstream_id}: {tool_id} failed ({code}); trying {chain[index + 1]}",
                workstream_id=self._ws.workstream_id,
                tool_id=tool_id,
                next_tool=chain[index + 1],
            )
            why = f"{chain[index + 1]}: fallback after {tool_id} failed ({code}); {why}"
        raise AssertionError("the chain is never empty")

    async def _try_tool(
        self, tool_id: str, attempt: int, feedback: Feedback | None
    ) -> tuple[str | None, ToolReason, ToolRunResult | None]:
        """(why it failed or None, reason code, result) for one tool."""
        policy = self._ws.resilience_policy
        request = self._ws.execution_request.model_copy(update={"tool_id": tool_id})
        try:
            tool = await self._steps.run(
                ToolActivities.run_tool,
                ToolRunInput(
                    run_id=self._input.run_id,
                    workstream_id=self._ws.workstream_id,
                    repo_path=self._input.repo_path,
                    base_sha=self._input.base_sha,
                    attempt=attempt,
                    request=request,
                    patch_file=self._input.patch_file,
                    timeout_s=policy.timeout_s,
                    feedback=feedback,
                    allowed_paths=self._ws.constraints.file_scope.allowed_paths,
                    max_budget_usd=self._budget_left(),
                    max_attempts=policy.max_attempts,
                ),
                # On cancel, wait until the tool is really dead: compensation comes next.
                steps.tool(policy.timeout_s, policy.max_attempts),
                summary=f"{tool_id} for {self._ws.workstream_id} (attempt {attempt})",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the run was cancelled: end as cancelled, not as a failed workstream
            cause = err.cause
            code: ToolReason = (
                "api_error"
                if isinstance(cause, ApplicationError) and cause.type == "ToolApiError"
                else "tool_failed"
            )
            return cause_message(err), code, None
        usage = tool.usage
        if usage is not None and usage.cost_usd:
            self._cost_usd += usage.cost_usd
        cost = f", ${usage.cost_usd:.4f}" if usage and usage.cost_usd is not None else ""
        self._journal.event(
            EventType.TOOL_FINISHED,
            f"{self._ws.workstream_id}: {tool_id} finished in {tool.duration_s:.1f}s "
            f"({tool.outcome.replace('_', ' ')}{cost})",
            workstream_id=self._ws.workstream_id,
            tool_id=tool_id,
            outcome=tool.outcome,
            reason_code=tool.reason_code,
            exit_code=tool.exit_code,
            usage=usage.model_dump(mode="json") if usage else None,
        )
        if tool.outcome in ("failed", "timeout"):
            tail = _last_lines(tool.output_tail)
            why = f"tool {tool.reason}\n{tail}" if tail else f"tool {tool.reason}"
            return (
                why,
                tool.reason_code or ("timeout" if tool.outcome == "timeout" else "tool_failed"),
                tool,
            )
        return None, "", tool

    def _budget_left(self) -> float | None:
        if self._input.max_budget_usd is None:
            return None
        return round(max(self._input.max_budget_usd - self._cost_usd, 0.0), 6)

    async def _validate(
        self,
        entry: LedgerEntry,
        tool: ToolRunResult,
        attempt: int,
        earlier: list[PatchArtifact],
        feedback: Feedback | None,
    ) -> None:
        assert tool.patch is not None
        # Pure CPU on a small artifact: as a local activity it costs no workflow task of its
        # own (runs started before this change keep the scheduled activity they recorded).
        checked = await self._activity(
            PatchActivities.validate_patch,
            ValidatePatchInput(
                run_id=self._input.run_id,
                workstream_id=self._ws.workstream_id,
                tool_id=self._ws.execution_request.tool_id,
                attempt=attempt,
                patch_id=entry.patch_id,
                base_sha=self._input.base_sha,
                patch=tool.patch,
                repo_path=self._input.repo_path,
                scope=self._ws.constraints.file_scope,
                policy=self._ws.patch_policy,
                earlier_attempts=earlier,
                run_history=self._input.run_history,
            ),
            summary=f"validate patch of {self._ws.workstream_id}",
            local=workflow.patched(VALIDATE_LOCALLY),
        )
        entry.patch = checked.artifact
        entry.record_validation(checked.report)
        if checked.report.ok:
            stats = checked.artifact.stats
            self._journal.move(
                entry, PatchState.VALIDATED,
                f"{stats.files_changed} files, +{stats.insertions}/-{stats.deletions}",
            )  # fmt: skip
            return
        first = checked.report.errors[0]
        reason = (
            f"{first.code}: {first.path}: {first.message}"
            if first.path
            else (f"{first.code}: {first.message}")
        )
        more = len(checked.report.errors) - 1
        if more:
            reason += f" (and {more} more)"
        self._journal.move(entry, PatchState.QUARANTINED, reason)
        await self._quarantine(entry, reason, report=checked.report)
        message = f"patch quarantined: {reason}"
        if feedback is not None and feedback.gate_id:
            # Say what the fix attempt was trying to fix, not only how it went wrong.
            tail = _last_lines(feedback.output_tail)
            message += f"; it was fixing gate {feedback.gate_id} (exit {feedback.exit_code})"
            message += f"\n{tail}" if tail else ""
        if self._input.options.asks_on_failure(self._ws.review):
            raise AskReview(
                ReviewNeed(
                    reason="quarantined", summary=message, patch_id=entry.patch_id,
                    patch=checked.artifact.ref,
                ),
                checked.artifact,
            )  # fmt: skip
        raise Failed(message, checked.artifact)

    async def _apply(self, entry: LedgerEntry) -> str:
        assert entry.patch is not None
        self._journal.move(entry, PatchState.QUEUED)
        entry.apply_attempts += 1
        # A few git commands in a private index: local too, so validate → apply → commit of a
        # patch costs no workflow task beyond the one the tool's result arrives in.
        try:
            committed = await self._activity(
                WorkspaceActivities.commit_patch,
                CommitPatchInput(
                    repo_path=self._input.repo_path,
                    run_id=self._input.run_id,
                    workstream_id=self._ws.workstream_id,
                    title=self._ws.title,
                    base_sha=self._input.base_sha,
                    patch=entry.patch.ref,
                    patch_id=entry.patch_id,
                    branch_ref=branch_ref(self._input.branch_ref),
                    timestamp=int(workflow.time_ns() // 1_000_000_000),
                ),
                summary=f"apply and commit {self._ws.workstream_id}",
                local=workflow.patched(COMMIT_LOCALLY),
            )
        except Failed as failed:
            self._journal.move(entry, PatchState.APPLY_FAILED, failed.reason)
            raise Failed(failed.reason, entry.patch) from None
        entry.commit = committed.commit_sha
        self._journal.move(entry, PatchState.APPLIED, f"commit {committed.commit_sha[:12]}")
        return committed.commit_sha

    async def _run_gates(self, commit: str, entry: LedgerEntry | None) -> GateRunResult:
        gates = self._ws.acceptance_criteria.gates
        if not gates:
            return GateRunResult(passed=True)
        result = await self._activity(
            GateActivities.run_gates,
            GateRunInput(
                repo_path=self._input.repo_path,
                run_id=self._input.run_id,
                label=self._ws.workstream_id,
                commit_sha=commit,
                gates=gates,
            ),
            options=steps.gates([g.timeout_s for g in gates], steps.WORKSTREAM),
            summary=f"gates for {self._ws.workstream_id}",
        )
        self._gates = result.results
        for gate in result.results:
            kind = {"passed": EventType.GATE_PASSED, "skipped": EventType.GATE_SKIPPED}.get(
                gate.status, EventType.GATE_FAILED
            )
            self._journal.event(
                kind,
                f"{self._ws.workstream_id}: gate {gate.gate_id} {gate.status}"
                + (f" ({gate.reason})" if gate.reason else ""),
                workstream_id=self._ws.workstream_id,
                patch_id=entry.patch_id if entry else None,
                gate_id=gate.gate_id,
                exit_code=gate.exit_code,
            )
        if entry is not None:
            entry.gates = result.results
            entry.validation.tests_ran = True
            entry.validation.tests_passed = result.passed
        return result

    async def _quarantine(
        self,
        entry: LedgerEntry,
        reason: str,
        report: ValidationReport | None = None,
        gate_output: str = "",
    ) -> None:
        assert entry.patch is not None
        kept = await self._activity(
            PatchActivities.quarantine_patch,
            QuarantineInput(
                run_id=self._input.run_id,
                workstream_id=self._ws.workstream_id,
                patch=entry.patch,
                reason=reason,
                report=report,
                gate_output=gate_output,
            ),
            summary=f"quarantine patch of {self._ws.workstream_id}",
        )
        entry.quarantine = Quarantine(reason=reason, folder=kept.folder)

    async def _activity(
        self,
        method: Callable[[Any, A], Awaitable[R]],
        arg: A,
        *,
        summary: str,
        options: StepOptions = steps.WORKSTREAM,
        local: bool = False,
    ) -> R:
        """A short activity; its non-retryable failures end the workstream. ``local``: in this
        worker, inside the current workflow task (no task of its own, no heartbeat)."""
        try:
            return await self._steps.run(method, arg, options, summary=summary, local=local)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            raise Failed(cause_message(err)) from None

    # -- results -------------------------------------------------------------------------------

    def _feedback(self, failure: GateResult, attempt: int, max_attempts: int) -> Feedback:
        gate: GateSpec = next(
            g for g in self._ws.acceptance_criteria.gates if g.gate_id == failure.gate_id
        )
        command = gate.command if isinstance(gate.command, str) else " ".join(gate.command)
        return Feedback(
            attempt=attempt,
            max_attempts=max_attempts,
            gate_id=failure.gate_id,
            command=command,
            exit_code=failure.exit_code,
            output_tail=failure.output_tail,
        )

    def _result(
        self,
        status: WorkstreamState,
        *,
        commit: str | None = None,
        patch: PatchArtifact | None = None,
        reason: str | None = None,
        review: ReviewNeed | None = None,
    ) -> WorkstreamResult:
        return WorkstreamResult(
            review=review,
            cost_usd=round(self._cost_usd, 6),
            tool_attempts=self._tool_attempts,
            workstream_id=self._ws.workstream_id,
            status=status,
            commit=commit,
            patch=patch,
            reason=reason,
            gates=self._gates,
            ledger=self._journal.entries,
            events=self._journal.events,
        )


def _last_lines(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _headline(reason: str) -> str:
    return reason.splitlines()[0] if reason else ""
