"""What happens to a workstream's patch: validated (a local activity: pure CPU), applied and
committed on the workstream's branch (local too: a few git commands in a private index), gated
in a fresh checkout, or quarantined with its evidence. A step's non-retryable failure ends the
workstream (``Failed``); a refused patch asks a person when the workstream does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

from workflows.failures import AskReview, Failed, cause_message, last_lines
from workflows.journal import Journal
from workflows.steps import WORKSTREAM, StepOptions, Steps
from workflows.steps import gates as gates_options
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.patches import PatchActivities
    from activities.workspace import WorkspaceActivities
    from schemas.base import ArtifactRef
    from schemas.events import EventType
    from schemas.gates import GateResult, GateRunInput, GateRunResult
    from schemas.learning import PatternApplied, Resolving
    from schemas.ledger import LedgerEntry, PatchState, Quarantine
    from schemas.patch import (
        PatchArtifact,
        QuarantineInput,
        ValidatePatchInput,
        ValidatePatchResult,
        ValidationReport,
    )
    from schemas.ready_patch import ReadyPatchResult
    from schemas.refs import branch_ref
    from schemas.review import ReviewNeed
    from schemas.run import WorkstreamInput
    from schemas.tools import Feedback, ToolRunResult
    from schemas.workspace import CommitPatchInput, CommitPatchResult

#: workflow.patched id: validate_patch became a local activity (issue 7).
VALIDATE_LOCALLY = "validate-patch-locally"
#: workflow.patched id: commit_patch became a local activity (issue 7).
COMMIT_LOCALLY = "commit-patch-locally"
A = TypeVar("A")
R = TypeVar("R")


class PatchSteps:
    def __init__(self, input: WorkstreamInput, journal: Journal, steps: Steps) -> None:
        self.input = input
        self.ws = input.workstream
        self.journal = journal
        self.steps = steps
        self.gate_results: list[GateResult] = []  # the latest gates' results
        #: patch sha256 → the tree its tool's capture made of it: committed as it is.
        self.trees: dict[str, str] = {}

    def validation_input(
        self, patch_id: str, patch: ArtifactRef, attempt: int, earlier: list[PatchArtifact]
    ) -> ValidatePatchInput:
        return ValidatePatchInput(
            run_id=self.input.run_id,
            workstream_id=self.ws.workstream_id,
            tool_id=self.ws.execution_request.tool_id,
            attempt=attempt,
            patch_id=patch_id,
            base_sha=self.input.base_sha,
            patch=patch,
            repo_path=self.input.repo_path,
            scope=self.ws.constraints.file_scope,
            policy=self.ws.patch_policy,
            earlier_attempts=earlier,
            run_history=self.input.run_history,
        )

    def commit_input(
        self, patch_id: str, patch: ArtifactRef, tree_sha: str | None
    ) -> CommitPatchInput:
        return CommitPatchInput(
            repo_path=self.input.repo_path,
            run_id=self.input.run_id,
            workstream_id=self.ws.workstream_id,
            title=self.ws.title,
            base_sha=self.input.base_sha,
            patch=patch,
            patch_id=patch_id,
            branch_ref=branch_ref(self.input.branch_ref),
            timestamp=int(workflow.time_ns() // 1_000_000_000),
            tree_sha=tree_sha,
        )

    async def validate(
        self,
        entry: LedgerEntry,
        tool: ToolRunResult,
        attempt: int,
        earlier: list[PatchArtifact],
        feedback: Feedback | None,
        taken: ValidatePatchResult | None = None,
    ) -> None:
        """``taken``: the validation already made, in the tool's own step (a ready patch)."""
        assert tool.patch is not None
        # Pure CPU on a small artifact: as a local activity it costs no workflow task of its
        # own (runs started before this change keep the scheduled activity they recorded).
        checked = taken
        if checked is None:
            checked = await self.activity(
                PatchActivities.validate_patch,
                self.validation_input(entry.patch_id, tool.patch, attempt, earlier),
                summary=f"validate patch of {self.ws.workstream_id}",
                local=patched(VALIDATE_LOCALLY),
            )
        entry.patch = checked.artifact
        entry.record_validation(checked.report)
        if tool.tree_sha is not None and checked.artifact.sha256 == tool.patch.sha256:
            self.trees[checked.artifact.sha256] = tool.tree_sha
        if checked.report.ok:
            stats = checked.artifact.stats
            allowed = "".join(f"; {w.code} (allowed): {w.message}" for w in checked.report.warnings)
            self.journal.move(
                entry,
                PatchState.VALIDATED,
                f"{stats.files_changed} files, +{stats.insertions}/-{stats.deletions}{allowed}",
            )
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
        self.journal.move(entry, PatchState.QUARANTINED, reason)
        await self.quarantine(entry, reason, report=checked.report)
        message = f"patch quarantined: {reason}"
        if feedback is not None and feedback.gate_id:
            # Say what the fix attempt was trying to fix, not only how it went wrong.
            tail = last_lines(feedback.output_tail)
            message += f"; it was fixing gate {feedback.gate_id} (exit {feedback.exit_code})"
            message += f"\n{tail}" if tail else ""
        # patch_policy.oscillation: review leaves a patch refused for oscillation alone to a
        # person, whatever the workstream's review mode (nobody to ask: it fails).
        ask = self.ws.patch_policy.oscillation == "review" and all(
            e.code == "oscillation" for e in checked.report.errors
        )
        if ask:
            message += "\npatch_policy.oscillation is review: " + (
                "nobody reviews this run" if self.input.options.no_review else "a person decides"
            )
        if self.input.options.asks_on_failure(self.ws.review) or (
            ask and not self.input.options.no_review
        ):
            raise AskReview(
                ReviewNeed(
                    reason="quarantined",
                    summary=message,
                    patch_id=entry.patch_id,
                    patch=checked.artifact.ref,
                ),
                checked.artifact,
            )
        raise Failed(message, checked.artifact)

    async def apply(self, entry: LedgerEntry, taken: ReadyPatchResult | None = None) -> str:
        """``taken``: the commit already made (or refused), in the tool's own step."""
        assert entry.patch is not None
        self.journal.move(entry, PatchState.QUEUED)
        entry.apply_attempts += 1
        try:
            committed = await self._committed(entry, entry.patch.ref, taken)
        except Failed as failed:
            self.journal.move(entry, PatchState.APPLY_FAILED, failed.reason)
            raise Failed(failed.reason, entry.patch) from None
        entry.commit = committed.commit_sha
        self.journal.move(entry, PatchState.APPLIED, f"commit {committed.commit_sha[:12]}")
        return committed.commit_sha

    async def _committed(
        self, entry: LedgerEntry, patch: ArtifactRef, taken: ReadyPatchResult | None
    ) -> CommitPatchResult:
        if taken is not None:
            if taken.commit is None:  # validated (apply comes after a valid patch only)
                assert taken.commit_error is not None
                raise Failed(taken.commit_error)
            return taken.commit
        # A few git commands in a private index: local too, so validate → apply → commit of a
        # patch costs no workflow task beyond the one the tool's result arrives in.
        return await self.activity(
            WorkspaceActivities.commit_patch,
            self.commit_input(entry.patch_id, patch, self.trees.get(patch.sha256)),
            summary=f"apply and commit {self.ws.workstream_id}",
            local=patched(COMMIT_LOCALLY),
        )

    async def gates(
        self,
        commit: str,
        entry: LedgerEntry | None,
        attempt: int,
        *,
        resolving: Resolving | None = None,
        applied: PatternApplied | None = None,
    ) -> GateRunResult:
        gates = self.ws.acceptance_criteria.gates
        if not gates:
            return GateRunResult(passed=True)
        result = await self.activity(
            GateActivities.run_gates,
            GateRunInput(
                repo_path=self.input.repo_path,
                run_id=self.input.run_id,
                label=self.ws.workstream_id,
                commit_sha=commit,
                gates=gates,
                attempt=attempt,
                resolving=resolving,
                applied=applied,
                workspace=self.ws.workspace,
            ),
            options=gates_options([g.timeout_s for g in gates], WORKSTREAM),
            summary=f"gates for {self.ws.workstream_id}",
        )
        self.gate_results = result.results
        for gate in result.results:
            if gate.retried:
                self.journal.event(
                    EventType.GATE_RETRIED,
                    f"{self.ws.workstream_id}: gate {gate.gate_id} is known flaky; its first "
                    f"run {gate.retried}, re-run: {gate.status}",
                    workstream_id=self.ws.workstream_id,
                    patch_id=entry.patch_id if entry else None,
                    gate_id=gate.gate_id,
                )
            kind = {"passed": EventType.GATE_PASSED, "skipped": EventType.GATE_SKIPPED}.get(
                gate.status, EventType.GATE_FAILED
            )
            self.journal.event(
                kind,
                f"{self.ws.workstream_id}: gate {gate.gate_id} {gate.status}"
                + (f" ({gate.reason})" if gate.reason else ""),
                workstream_id=self.ws.workstream_id,
                patch_id=entry.patch_id if entry else None,
                gate_id=gate.gate_id,
                exit_code=gate.exit_code,
            )
            if gate.signature is not None:
                self.journal.event(
                    EventType.ERROR_CLASSIFIED,
                    f"{self.ws.workstream_id}: gate {gate.gate_id}: {gate.category} "
                    f"({gate.signature})",
                    workstream_id=self.ws.workstream_id,
                    patch_id=entry.patch_id if entry else None,
                    gate_id=gate.gate_id,
                    signature=gate.signature,
                    category=gate.category,
                )
        if entry is not None:
            entry.gates = result.results
            entry.validation.tests_ran = True
            entry.validation.tests_passed = result.passed
        return result

    async def quarantine(
        self,
        entry: LedgerEntry,
        reason: str,
        report: ValidationReport | None = None,
        gate_output: str = "",
    ) -> None:
        assert entry.patch is not None
        kept = await self.activity(
            PatchActivities.quarantine_patch,
            QuarantineInput(
                run_id=self.input.run_id,
                workstream_id=self.ws.workstream_id,
                patch=entry.patch,
                reason=reason,
                report=report,
                gate_output=gate_output,
            ),
            summary=f"quarantine patch of {self.ws.workstream_id}",
        )
        entry.quarantine = Quarantine(reason=reason, folder=kept.folder)

    async def gate_unrunnable(self, failure: GateResult, entry: LedgerEntry | None) -> NoReturn:
        """A gate that cannot run where the workers are (its program is not installed) says
        nothing about the change: no fix attempt, no second tool run, no review."""
        reason = (
            f"{failure.reason} (gate {failure.gate_id}); install it where the workers run, "
            "or fix the gate's command"
        )
        if entry is not None:
            self.journal.move(
                entry, PatchState.QUARANTINED, f"gate {failure.gate_id}: {failure.reason}"
            )
            await self.quarantine(entry, reason, gate_output=failure.output_tail)
        raise Failed(reason, entry.patch if entry else None)

    async def activity(
        self,
        method: Callable[[Any, A], Awaitable[R]],
        arg: A,
        *,
        summary: str,
        options: StepOptions = WORKSTREAM,
        local: bool = False,
    ) -> R:
        """A short activity; its non-retryable failures end the workstream. ``local``: in this
        worker, inside the current workflow task (no task of its own, no heartbeat)."""
        try:
            return await self.steps.run(method, arg, options, summary=summary, local=local)
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            raise Failed(cause_message(err)) from None
