"""One workstream: tool → patch → validate → apply → gates, with a fix loop.

Every change the tool makes becomes a patch with a ledger entry. A patch that breaks policy is
quarantined before git sees it; one that applies and passes its gates is ``verified`` and waits
for the phase to integrate it. When gates fail, the tool runs again from the same base with the
failure as feedback, up to ``max_fix_attempts`` times; each new patch ``replaces`` the last.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import SANDBOXED
from workflows.failures import AskReview, Failed, headline, last_lines
from workflows.ids import IdFactory
from workflows.journal import Journal
from workflows.patch_steps import PatchSteps
from workflows.steps import WORKSTREAM, Steps
from workflows.tool_chain import ToolChain
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.lib.feedback import render_feedback
    from activities.recovery import RecoveryActivities
    from schemas.events import EventType, RunEvent
    from schemas.gates import GateResult, GateRunResult
    from schemas.learning import (
        PatternApplied,
        RecoveryLookup,
        RecoveryPlan,
        RecoveryRunInput,
        Resolving,
    )
    from schemas.ledger import LedgerEntry, PatchState
    from schemas.patch import PatchArtifact, ValidatePatchInput
    from schemas.ready_patch import CAPTURE
    from schemas.review import ReviewNeed
    from schemas.run import WorkstreamInput, WorkstreamResult, WorkstreamState
    from schemas.spec import AI_TOOLS, GateSpec, RecoveryRule
    from schemas.tools import Feedback
    from schemas.workspace import CommitPatchInput

#: workflow.patched id: a gate whose program is missing fails the workstream at once (issue 11).
GATE_UNRUNNABLE = "gate-command-not-found-fails-at-once"
#: workflow.patched id: an execution whose patch failed and waits for review ends failed (11).
FAIL_FOR_REVIEW = "failed-patch-review-fails-execution"
#: workflow.patched id: recovery patterns and the learner's resolutions (issue 14).
RECOVER = "recovery-patterns"
#: workflow.patched id: an AI tool that changed nothing fails the workstream (issue 15).
NO_CHANGE_FAILS = "ai-no-change-fails"
#: Review reasons that mean the execution's patch failed (approval_required: it passed).
FAILED_REVIEWS = ("gates_failed", "quarantined")


@workflow.defn(sandboxed=SANDBOXED)
class WorkstreamWorkflow:
    @workflow.init
    def __init__(self, input: WorkstreamInput) -> None:
        self._input = input
        self._ws = input.workstream
        self._journal = Journal(input.run_id, IdFactory())
        steps = Steps(timedelta(seconds=input.options.heartbeat_timeout_s))
        self._tools = ToolChain(input, self._journal, steps)
        self._patches = PatchSteps(input, self._journal, steps)
        self._plans: dict[str, RecoveryPlan] = {}  # signature → what is known to fix it
        self._recovered: set[str] = set()  # signatures whose fixer ran already
        self._guided: PatternApplied | None = None  # the next attempt's guidance, if any

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
                WorkstreamState.AWAITING_REVIEW,
                patch=ask.patch,
                reason=ask.need.summary,
                review=ask.need,
            )
            if ask.need.reason in FAILED_REVIEWS and patched(FAIL_FOR_REVIEW):
                # Its patch failed; a person decides what happens next. In the Web UI this
                # execution is failed, not green; the parent reads the result from the details.
                raise ApplicationError(
                    f"{ws_id} needs a review ({ask.need.reason}): {headline(ask.need.summary)}",
                    result.model_dump(mode="json"),
                    type="WorkstreamNeedsReview",
                    non_retryable=True,
                ) from None
            return result
        except Failed as failed:
            # The event first: the result carries the events, and the run's report with it.
            self._journal.event(
                EventType.WORKSTREAM_FAILED,
                f"{ws_id} failed: {headline(failed.reason)}",
                workstream_id=ws_id,
            )
            result = self._result(WorkstreamState.FAILED, reason=failed.reason, patch=failed.patch)
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
        failed_commit: str | None = None  # the latest commit whose gates failed
        for attempt in range(first, last + 1):
            entry: LedgerEntry | None = None
            commit = self._input.base_sha
            if attempt == first and self._input.resume is not None:
                # A reviewer approved this quarantined patch: apply it as it is.
                entry = self._input.resume
                self._journal.entries.append(entry)
                commit = await self._patches.apply(entry)
            else:
                if feedback is not None and feedback.gate_id and attempt > first:
                    self._journal.event(
                        EventType.FIX_ATTEMPT,
                        f"{self._ws.workstream_id}: fix attempt {attempt - first} of "
                        f"{last - first} after gate {feedback.gate_id} failed"
                        + (
                            f" (with {feedback.pattern_id}'s guidance)" if feedback.guidance else ""
                        ),
                        workstream_id=self._ws.workstream_id,
                        gate_id=feedback.gate_id,
                    )
                ids, then = self._steps_with_the_tool(attempt, earlier)
                tool = await self._tools.run(attempt, feedback, then)
                if tool.patch is None:
                    self._journal.event(
                        EventType.NO_CHANGE,
                        f"{self._ws.workstream_id}: the tool changed nothing",
                        workstream_id=self._ws.workstream_id,
                    )
                    if self._no_change_fails():
                        raise Failed(
                            f"{self._tools.used[0]} changed nothing (no_change); set "
                            "allow_no_change: true if that can be right"
                        )
                else:
                    entry = self._journal.new_entry(
                        workstream_id=self._ws.workstream_id,
                        attempt=attempt,
                        tool_id=self._tools.used[0],
                        replaces=previous_id,
                        ids=ids,
                    )
                    entry.tool_reason = self._tools.used[1]
                    entry.tool_usage = tool.usage
                    if feedback is not None and feedback.guidance:
                        entry.pattern = feedback.pattern_id
                    taken = self._tools.taken
                    await self._patches.validate(
                        entry, tool, attempt, earlier, feedback, taken.validation if taken else None
                    )
                    assert entry.patch is not None
                    earlier.append(entry.patch)
                    commit = await self._patches.apply(entry, taken)
            learn = self._learns()
            gates = await self._patches.gates(
                commit,
                entry,
                attempt,
                resolving=self._resolving(feedback, failed_commit) if learn else None,
                applied=self._guidance_use(feedback) if learn else None,
            )
            if not gates.passed and learn:
                healed = await self._recover(gates, commit, entry, attempt, previous_id, earlier)
                if healed is not None:
                    entry, commit, gates = healed
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
            if failure.code is not None and patched(GATE_UNRUNNABLE):
                await self._patches.gate_unrunnable(failure, entry)
            why = f"gate {failure.gate_id} {failure.reason}"
            if attempt < last:
                if entry is not None:
                    self._journal.move(
                        entry, PatchState.DROPPED, f"{why}; replaced by attempt {attempt + 1}"
                    )
                    previous_id = entry.patch_id
                feedback = self._feedback(failure, attempt + 1, last)
                if learn:
                    feedback = await self._guide(feedback, failure)
                failed_commit = commit
                continue
            tail = last_lines(failure.output_tail)
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
            await self._patches.quarantine(entry, why, gate_output=failure.output_tail)
            raise Failed(f"{why}\n{tail}" if tail else why, entry.patch)
        raise AssertionError("the loop returns or raises")

    def _steps_with_the_tool(
        self, attempt: int, earlier: list[PatchArtifact]
    ) -> tuple[tuple[str, str] | None, tuple[ValidatePatchInput, CommitPatchInput] | None]:
        """(the entry's ids, its validation and commit) where the patch goes from tool to
        commit in one activity (activities/ready_patch.py): the steps after the tool need the
        patch's id before the tool runs. Their ``patch`` stands for the capture the step makes
        (the ready patch's file, or CAPTURE), which the step puts in its place."""
        if not self._tools.takes_its_patch():
            return None, None
        ids = self._journal.next_ids()
        made = self._input.patch_file if self._tools.ready_patch_alone() else CAPTURE
        assert made is not None  # ready_patch_alone
        return ids, (
            self._patches.validation_input(ids[1], made, attempt, earlier),
            self._patches.commit_input(ids[1], made, None),
        )

    def _no_change_fails(self) -> bool:
        """An AI tool that changed nothing did not do the work: no gates on the base, no
        review, unless the spec says nothing may be right (shell and patch: as before)."""
        return (
            self._tools.used[0] in AI_TOOLS
            and not self._ws.allow_no_change
            and patched(NO_CHANGE_FAILS)
        )

    # -- learning from runs --------------------------------------------------------------------

    def _learns(self) -> bool:
        """Whether this workstream looks up recoveries and teaches the learner: not with
        ``learning: {mode: off}`` and no recoveries of its own, nor in runs started before."""
        if self._input.learning.mode == "off" and not self._rules():
            return False
        return patched(RECOVER)

    def _rules(self) -> list[RecoveryRule]:
        return [*self._ws.recoveries, *self._input.recoveries]

    async def _plan(self, failure: GateResult) -> RecoveryPlan:
        """What is known to fix this failure's error (asked once per signature)."""
        assert failure.signature is not None
        if failure.signature not in self._plans:
            self._plans[failure.signature] = await self._patches.activity(
                RecoveryActivities.find_recovery,
                RecoveryLookup(
                    run_id=self._input.run_id,
                    workstream_id=self._ws.workstream_id,
                    signature=failure.signature,
                    category=failure.category,
                    rules=self._rules(),
                    learning=self._input.learning,
                ),
                summary=f"look up a recovery for {failure.signature}",
                local=True,
            )
        return self._plans[failure.signature]

    async def _recover(
        self,
        gates: GateRunResult,
        commit: str,
        entry: LedgerEntry | None,
        attempt: int,
        previous_id: str | None,
        earlier: list[PatchArtifact],
    ) -> tuple[LedgerEntry, str, GateRunResult] | None:
        """Run the known fixer on the failing tree before an AI fix attempt is spent: its
        change, gated like any other, replaces the failing patch when every gate passes."""
        failure = gates.first_failure
        if failure is None or failure.code is not None or failure.signature is None:
            return None
        plan = await self._plan(failure)
        if plan.command is None or failure.signature in self._recovered:
            return None
        self._recovered.add(failure.signature)  # once per error: a fixer that did not heal
        ws_id = self._ws.workstream_id
        command = plan.command if isinstance(plan.command, str) else " ".join(plan.command)
        self._journal.event(
            EventType.RECOVERY_STARTED,
            f"{ws_id}: gate {failure.gate_id} failed with {failure.signature}; trying "
            f"`{command}` ({plan.label}) before a fix attempt",
            workstream_id=ws_id,
            pattern_id=plan.pattern_id,
            version=plan.version,
            command=command,
        )
        tool = await self._patches.activity(
            RecoveryActivities.run_recovery,
            RecoveryRunInput(
                run_id=self._input.run_id,
                workstream_id=ws_id,
                repo_path=self._input.repo_path,
                base_sha=self._input.base_sha,
                start_sha=commit,
                attempt=attempt,
                command=plan.command,
                timeout_s=plan.timeout_s,
                pattern_id=str(plan.pattern_id),
                version=plan.version if plan.source == "pattern" else None,
                workspace=self._ws.workspace,
            ),
            options=WORKSTREAM.within(plan.timeout_s + 120),
            summary=f"recovery {plan.label} for {ws_id}",
        )
        if tool.patch is None:
            self._not_healed(plan, f"{command} changed nothing", gates)
            return None
        fix = self._journal.new_entry(
            workstream_id=ws_id,
            attempt=attempt,
            tool_id="recovery",
            replaces=entry.patch_id if entry is not None else previous_id,
        )
        fix.tool_reason = f"recovery {plan.label}: {command}"
        fix.pattern = plan.label
        try:
            await self._patches.validate(fix, tool, attempt, earlier, None)
            assert fix.patch is not None
            earlier.append(fix.patch)
            fixed = await self._patches.apply(fix)
        except (AskReview, Failed) as refused:
            # The fixer's change broke the policy or did not apply: it stays on the record
            # (quarantined), and the AI fix attempt goes on as if it had not run.
            reason = refused.need.summary if isinstance(refused, AskReview) else refused.reason
            self._not_healed(plan, headline(reason), gates)
            return None
        checked = await self._patches.gates(
            fixed,
            fix,
            attempt,
            resolving=self._resolving(self._feedback(failure, attempt, attempt), commit),
            applied=PatternApplied(
                pattern_id=str(plan.pattern_id), version=plan.version or "", kind="recovery"
            )
            if plan.source == "pattern"
            else None,
        )
        if not checked.passed:
            still = checked.first_failure
            why = f"gate {still.gate_id} {still.reason}" if still else "its gates failed"
            self._journal.move(fix, PatchState.DROPPED, f"recovery did not heal: {why}")
            self._not_healed(plan, why, gates)
            return None
        if entry is not None:
            self._journal.move(entry, PatchState.DROPPED, f"healed by recovery {plan.label}")
        self._journal.event(
            EventType.RECOVERY_APPLIED,
            f"{ws_id}: {plan.label} healed gate {failure.gate_id} ({failure.signature}): "
            "no fix attempt needed",
            workstream_id=ws_id,
            patch_id=fix.patch_id,
            pattern_id=plan.pattern_id,
            version=plan.version,
        )
        return fix, fixed, checked

    def _not_healed(self, plan: RecoveryPlan, why: str, gates: GateRunResult) -> None:
        self._patches.gate_results = gates.results  # the workstream's verdict stays the failure
        self._journal.event(
            EventType.RECOVERY_FAILED,
            f"{self._ws.workstream_id}: recovery {plan.label} did not heal: {why}",
            workstream_id=self._ws.workstream_id,
            pattern_id=plan.pattern_id,
            version=plan.version,
        )

    async def _guide(self, feedback: Feedback, failure: GateResult) -> Feedback:
        """The next fix attempt's feedback, with what fixed this error before."""
        self._guided = None
        if failure.signature is None or failure.code is not None:
            return feedback
        plan = await self._plan(failure)
        if not plan.guidance:
            return feedback
        if plan.pattern_id and plan.version:
            self._guided = PatternApplied(
                pattern_id=plan.pattern_id, version=plan.version, kind="guidance"
            )
        return feedback.model_copy(update={"guidance": plan.guidance, "pattern_id": plan.label})

    def _guidance_use(self, feedback: Feedback | None) -> PatternApplied | None:
        return self._guided if feedback is not None and feedback.guidance else None

    def _resolving(self, feedback: Feedback | None, failed_commit: str | None) -> Resolving | None:
        """For the gates of a fix attempt: what it was fixing (the learner's resolution)."""
        if feedback is None or not feedback.gate_id:
            return None
        return Resolving(
            failed_commit=failed_commit or self._input.base_sha,
            signature=feedback.signature,
            category=feedback.category,
            gate_id=feedback.gate_id,
            tool_id=self._tools.used[0],
            feedback=render_feedback(feedback)[:4000],
            adjust=feedback.instructions,
            candidates=self._rules(),
            learning=self._input.learning,
        )

    # -- steps ---------------------------------------------------------------------------------

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
            signature=failure.signature,
            category=failure.category,
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
            cost_usd=round(self._tools.cost_usd, 6),
            tool_attempts=self._tools.attempts,
            workstream_id=self._ws.workstream_id,
            status=status,
            commit=commit,
            patch=patch,
            reason=reason,
            gates=self._patches.gate_results,
            ledger=self._journal.entries,
            events=self._journal.events,
        )
