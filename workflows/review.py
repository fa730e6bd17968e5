"""The review desk: requests waiting for a person, and the checks on each decision.

Decisions arrive by update (``submit_review``, whose validator rejects a bad one before
anything reaches history) or by signal (``review_decision``, for ``temporal workflow signal``
and the Web UI, where a bad one is logged and ignored). Both land in ``decide``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

from workflows.journal import Journal

with workflow.unsafe.imports_passed_through():
    from schemas.events import EventType
    from schemas.review import (
        ALLOWED_DECISIONS,
        DecisionPayload,
        ReviewAnswer,
        ReviewDecision,
        ReviewNeed,
        ReviewRecord,
        ReviewRequest,
        pending_requests,
        read_decision,
    )
    from schemas.spec import PhaseSpec


class ReviewDesk:
    def __init__(
        self,
        run_id: str,
        phase: PhaseSpec,
        journal: Journal,
        on_change: Callable[[], None],
        *,
        nobody: bool = False,
    ) -> None:
        self.run_id = run_id
        self.phase = phase
        self.journal = journal
        self.on_change = on_change  # the phase shows "awaiting_review" while any is pending
        self.records: list[ReviewRecord] = []
        # RunOptions.no_review: nobody answers, so every review is rejected when asked. (Runs
        # started before the option existed never have it set: no workflow.patched needed.)
        self.nobody = nobody

    def pending(self) -> list[ReviewRequest]:
        return pending_requests(self.records)

    def check(self, payload: DecisionPayload) -> ReviewDecision:
        """The decision a payload carries, or a ValueError saying in one line why it cannot
        be taken."""
        decision = read_decision(payload)
        problem = decision if isinstance(decision, str) else self.problem(decision)
        if problem:
            raise ValueError(problem)
        assert isinstance(decision, ReviewDecision)
        return decision

    def problem(self, decision: ReviewDecision) -> str | None:
        """Why this decision cannot be taken, or None."""
        record = self._find(decision.review_id)
        if record is None:
            pending = ", ".join(f"{r.workstream_id}: {r.review_id}" for r in self.pending())
            return f"no review {decision.review_id!r} in this run" + (
                f" (pending: {pending})" if pending else " (none is pending)"
            )
        if record.decision is not None or record.abandoned:
            done = record.decision.decision if record.decision else "abandoned"
            return f"review {decision.review_id} is already decided ({done})"
        if decision.decision not in record.request.allowed:
            return (
                f"{decision.decision!r} is not a decision for a {record.request.reason} review; "
                f"choose one of: {', '.join(record.request.allowed)}"
            )
        allowed = self.phase.allowed_reviewers
        if allowed and decision.reviewer not in allowed:
            return f"{decision.reviewer!r} may not decide reviews here (allowed_reviewers)"
        if decision.decision == "adjust" and not decision.instructions.strip():
            return "adjust needs instructions for the tool"
        budget = record.request.reason == "budget_exceeded"
        if budget and decision.decision == "approve" and not decision.budget_increase_usd:
            return "approving a budget review needs the amount to raise it by (budget_increase_usd)"
        return None

    def decide(self, decision: ReviewDecision) -> ReviewAnswer:
        record = self._find(decision.review_id)
        assert record is not None
        record.decision = decision
        record.decided_at = workflow.now()
        self.on_change()
        return ReviewAnswer(
            review_id=decision.review_id,
            workstream_id=record.request.workstream_id,
            decision=decision.decision,
        )

    async def ask(
        self, workstream_id: str, need: ReviewNeed, give_up: Callable[[], bool]
    ) -> ReviewRecord:
        """Raise a review and wait for it (days if need be): a decision, the phase's review
        timeout, or ``give_up()`` (a rollback was requested meanwhile)."""
        timeout = self.phase.review_timeout_s
        now = workflow.now()
        request = ReviewRequest(
            **need.model_dump(),
            review_id=self.journal.ids.new(),
            run_id=self.run_id,
            workstream_id=workstream_id,
            allowed=list(ALLOWED_DECISIONS[need.reason]),
            requested_at=now,
            timeout_at=now + timedelta(seconds=timeout) if timeout else None,
        )
        record = ReviewRecord(request=request)
        self.records.append(record)
        self.journal.event(
            EventType.REVIEW_REQUESTED,
            f"{workstream_id}: review {request.review_id} ({need.reason}): "
            f"{need.summary.splitlines()[0] if need.summary else ''}",
            workstream_id=workstream_id,
            patch_id=need.patch_id,
            review_id=request.review_id,
            reason=need.reason,
        )
        self.on_change()
        if self.nobody:
            record.decision = ReviewDecision(
                review_id=request.review_id,
                decision="reject",
                reviewer="uet",
                comment="nobody reviews this run (--no-review)",
            )
            record.decided_at = now
            self.on_change()
        else:
            await self._wait(record, give_up)
        if record.decision is None:
            record.abandoned = True
            self.on_change()
            return record
        decision = record.decision
        self.journal.event(
            EventType.REVIEW_DECIDED,
            f"{workstream_id}: {decision.decision} by {decision.reviewer}"
            + (f": {decision.comment}" if decision.comment else ""),
            workstream_id=workstream_id,
            review_id=request.review_id,
            decision=decision.decision,
            reviewer=decision.reviewer,
        )
        return record

    async def _wait(self, record: ReviewRecord, give_up: Callable[[], bool]) -> None:
        """Until a decision, ``give_up()`` or the review timeout (which decides by the phase's
        on_review_timeout)."""
        request = record.request
        timeout = self.phase.review_timeout_s
        try:
            await workflow.wait_condition(
                lambda: record.decision is not None or give_up(),
                timeout=timedelta(seconds=timeout) if timeout else None,
                timeout_summary=f"review of {request.workstream_id}",
            )
        except TimeoutError:
            record.timed_out = True
            # "approve" is no answer to a merge conflict: then a timeout rejects.
            fallback = self.phase.on_review_timeout
            record.decision = ReviewDecision(
                review_id=request.review_id,
                decision=fallback if fallback in request.allowed else "reject",
                reviewer="uet",
                comment=f"no decision within review_timeout_s={timeout:g}",
            )
            record.decided_at = workflow.now()
            self.on_change()
            self.journal.event(
                EventType.REVIEW_TIMED_OUT,
                f"{request.workstream_id}: review {request.review_id} timed out: "
                f"{self.phase.on_review_timeout}",
                workstream_id=request.workstream_id,
                review_id=request.review_id,
            )

    def _find(self, review_id: str) -> ReviewRecord | None:
        return next((r for r in self.records if r.request.review_id == review_id), None)
