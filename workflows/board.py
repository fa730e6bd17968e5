"""The workstream board: each workstream's state in the run record, what a failure blocks
downstream, eager priorities, and what the Web UI shows of it all (current details and the
UetStatus search attribute)."""

from __future__ import annotations

from collections.abc import Iterable

from temporalio import workflow

from workflows.details import Tally, render
from workflows.journal import Journal
from workflows.search import STATUS
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from schemas.events import EventType
    from schemas.phase_state import PhaseWorkflowState
    from schemas.plan import Plan
    from schemas.refs import integration_branch, workstream_branch
    from schemas.review import pending_requests
    from schemas.run import (
        PhaseState,
        RunInput,
        RunOptions,
        RunRecord,
        WorkstreamState,
        WorkstreamStatus,
    )
    from schemas.spec import PhaseSpec, WorkstreamSpec

#: How a workstream ends when it does not complete.
ENDED = (WorkstreamState.FAILED, WorkstreamState.DROPPED, WorkstreamState.BLOCKED)
#: workflow.patched id: eager mode starts ready workstreams in the plan's searched order
#: (issue 20) rather than by remaining path alone.
PLANNED_ORDER = "eager-order-from-plan"
#: Workstreams whose ledger entries may still change in place (and so stay in memory).
LIVE = (WorkstreamState.PENDING, WorkstreamState.RUNNING, WorkstreamState.AWAITING_REVIEW)


class Board:
    def __init__(
        self, state: PhaseWorkflowState, phase: PhaseSpec, journal: Journal, options: RunOptions
    ) -> None:
        self.state = state
        self.phase = phase
        self.journal = journal
        self.options = options
        # By id: a phase of 10,000 looks one up for every child and every merge.
        self.specs: dict[str, WorkstreamSpec] = {ws.workstream_id: ws for ws in phase.workstreams}
        self.dependents: dict[str, list[str]] = {ws.workstream_id: [] for ws in phase.workstreams}
        for ws in phase.workstreams:
            for dep in ws.dependencies:
                self.dependents[dep].append(ws.workstream_id)
        self.tally = Tally(state.record)

    @property
    def record(self) -> RunRecord:
        return self.state.record

    def ws(self, ws_id: str) -> WorkstreamStatus:
        return self.record.workstreams[ws_id]

    def apply_plan(self, plan: Plan) -> None:
        self.record.waves = plan.waves
        self.state.remaining = plan.remaining
        if plan.order and patched(PLANNED_ORDER):
            self.state.rank = {ws_id: n for n, ws_id in enumerate(plan.order)}
        # Plans recorded before learned routing have neither: the router's own chains.
        self.state.router.learned_order = plan.tool_order
        self.state.router.learned_reason = plan.tool_order_reason
        for number, wave in enumerate(plan.waves, start=1):
            for ws_id in wave:
                self.ws(ws_id).wave = number
        self.show()

    def priority(self, ws_id: str, missing: float = 1.0) -> float:
        """Eager: lower is sooner. The plan's order, else the longest remaining path first."""
        rank = self.state.rank
        if rank:
            return float(rank.get(ws_id, len(rank)))
        return -self.state.remaining.get(ws_id, missing)

    def pending(self) -> bool:
        return any(s.status == WorkstreamState.PENDING for s in self.record.workstreams.values())

    def ended(self) -> list[str]:
        return [w for w, s in self.record.workstreams.items() if s.status in ENDED]

    def set(self, ws_id: str, state: WorkstreamState, commit: str | None = None) -> None:
        entry = self.ws(ws_id)
        entry.status = state
        entry.waiting = None
        if commit is not None:
            entry.commit = commit
        self.show([ws_id])

    def waiting(self, ws_id: str, note: str | None) -> None:
        """What a running workstream waits for; a late word after it moved on is dropped."""
        entry = self.record.workstreams.get(ws_id)
        if entry is None or (note is not None and entry.status != WorkstreamState.RUNNING):
            return
        if entry.waiting != note:
            entry.waiting = note
            self.show([ws_id])

    def fail(
        self, ws_id: str, reason: str, state: WorkstreamState = WorkstreamState.FAILED
    ) -> None:
        """End a workstream and block everything downstream of it (never run)."""
        entry = self.ws(ws_id)
        entry.status = state
        entry.waiting = None
        entry.reason = reason
        word = "was dropped" if state == WorkstreamState.DROPPED else "failed"
        changed = [ws_id]
        stack = [(dependent, ws_id) for dependent in self.dependents[ws_id]]
        while stack:
            dependent, via = stack.pop()
            blocked = self.ws(dependent)
            if blocked.status == WorkstreamState.PENDING:
                changed.append(dependent)
                blocked.status = WorkstreamState.BLOCKED
                blocked.reason = (
                    f"dependency {via} {word}"
                    if via == ws_id
                    else f"dependency {via} is blocked by {ws_id}, which {word}"
                )
                self.journal.event(
                    EventType.WORKSTREAM_BLOCKED,
                    f"{dependent} blocked: {blocked.reason}",
                    workstream_id=dependent,
                )
                stack.extend((after, dependent) for after in self.dependents[dependent])
        self.show(changed)

    def block_all_pending(self, reason: str) -> None:
        for ws_id, entry in self.record.workstreams.items():
            if entry.status == WorkstreamState.PENDING:
                entry.status = WorkstreamState.BLOCKED
                entry.reason = reason
                self.journal.event(
                    EventType.WORKSTREAM_BLOCKED, f"{ws_id} blocked: {reason}", workstream_id=ws_id
                )

    def summary_of_failures(self) -> str:
        parts = []
        for state in ENDED:
            names = [w for w, s in self.record.workstreams.items() if s.status == state]
            if names:
                parts.append(f"{state}: {', '.join(names)}")
        return "; ".join(parts)

    def show(self, changed: Iterable[str] | None = None) -> None:
        """Live status for the Web UI (current details) and for search. ``changed``: the only
        workstreams whose state may have changed since the last time (else any may have)."""
        record = self.record
        if changed is None:
            self.tally.recount(record)
        else:
            for ws_id in changed:
                self.tally.saw(ws_id)
        waiting = pending_requests(record.reviews)
        if record.status in (PhaseState.RUNNING, PhaseState.AWAITING_REVIEW):
            record.status = PhaseState.AWAITING_REVIEW if waiting else PhaseState.RUNNING
        text = render(self.phase.phase_id, record, waiting, self.tally)
        workflow.set_current_details(text)
        status = str(record.status)
        if self.options.search_attributes and status != self.state.indexed_status:
            # One history event per phase state change, not per workstream change.
            workflow.upsert_search_attributes([STATUS.value_set(status)])
            self.state.indexed_status = status


def new_record(input: RunInput, phase: PhaseSpec) -> RunRecord:
    """A run's record as it starts: every workstream pending, in no wave yet."""
    return RunRecord(
        run_id=input.run_id,
        workflow_id=workflow.info().workflow_id,
        phase_id=phase.phase_id,
        scheduling=phase.scheduling,
        repo_path=input.repo_path,
        integration_branch=integration_branch(input.run_id),
        budget_usd_total=phase.budget.max_cost_usd_total,
        workstreams={
            ws.workstream_id: WorkstreamStatus(
                wave=0, branch=workstream_branch(input.run_id, ws.workstream_id)
            )
            for ws in phase.workstreams
        },
    )
