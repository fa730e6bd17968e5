"""One workstream to its end: its child executions — each inside a slot, within budget, with
the router's choice of tool — and between them the reviews and merge-conflict re-runs that
decide whether it runs again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, ChildWorkflowError, is_cancelled_exception

from workflows.board import Board
from workflows.budget import Budget
from workflows.failures import cause_message
from workflows.integration import Integration
from workflows.journal import Journal
from workflows.review import ReviewDesk
from workflows.router import ToolRouter
from workflows.saga import Saga
from workflows.search import PHASE_ID, RUN_ID
from workflows.slots import Lease, Slots
from workflows.tool_chain import READY_PATCH
from workflows.versions import INHERITED, generation, patched
from workflows.workstream import WorkstreamWorkflow

with workflow.unsafe.imports_passed_through():
    from schemas.base import ArtifactRef
    from schemas.events import EventType
    from schemas.ledger import PatchState
    from schemas.phase_state import PhaseWorkflowState
    from schemas.refs import branch_ref, child_workflow_id, workstream_branch
    from schemas.review import ReviewNeed, ReviewRecord
    from schemas.run import RunInput, WorkstreamInput, WorkstreamResult, WorkstreamState
    from schemas.saga import RollbackRequest
    from schemas.spec import PhaseSpec
    from schemas.tools import Feedback
    from schemas.workspace import MergeOutcome

#: Failures of a workstream child that carry its result in their details.
CHILD_RESULTS = ("WorkstreamFailed", "WorkstreamNeedsReview")
#: workflow.patched id: workstreams started ahead of their slot (PhaseSpec.prepare_ahead).
PREPARE_AHEAD = "prepare-ahead"
#: Starts ahead per execution of the phase (each is an update; the server allows 2,000).
AHEAD_PER_RUN = 1_500
#: What `uet status` and the Web UI say of a workstream started ahead, until its slot is free.
AHEAD_NOTE = "started ahead: readying its checkout, then waiting for a slot"
#: workflow.patched id: a workstream's child inherits the phase's generation (its memo) and
#: asks no change of its own: no marker, upsert or visibility write per workstream (issue 20).
CHILD_INHERITS = "child-inherits-generation"


class WorkstreamRunner:
    def __init__(
        self,
        state: PhaseWorkflowState,
        phase: PhaseSpec,
        input: RunInput,
        patch_files: dict[str, ArtifactRef],
        *,
        board: Board,
        integration: Integration,
        desk: ReviewDesk,
        saga: Saga,
        journal: Journal,
        slots: Slots,
        rolling_back: Callable[[], bool],
        roll_back: Callable[[RollbackRequest], None],
    ) -> None:
        self.state = state
        self.record = state.record
        self.phase = phase
        self.input = input
        self.patch_files = patch_files
        self.board = board
        self.integration = integration
        self.desk = desk
        self.saga = saga
        self.journal = journal
        self.budget = Budget(
            state.budget,
            phase,
            board,
            journal,
            desk,
            slots,
            rolling_back=rolling_back,
            roll_back=roll_back,
        )
        self.router = ToolRouter(phase.router, journal, state.router)
        self.rolling_back = rolling_back
        self.roll_back = roll_back
        self.eager = phase.scheduling == "eager"
        #: Workstreams whose branch a wave's undo step deletes (else each gets its own).
        self.branch_undo: set[str] = set()
        #: Children asked for whose start the server has not confirmed yet.
        self.starting = 0
        #: Workstreams this execution of the phase may still start ahead of their slot: each
        #: one's tool asks for its slot by an update, and the server allows 2,000 a run.
        self.ahead_left = AHEAD_PER_RUN

    async def run(self, ws_id: str, head: str, number: int, slots: Slots) -> WorkstreamResult:
        """One workstream to its end: its child executions and the reviews between them."""
        if ws_id not in self.branch_undo:
            self.saga.push(
                "delete_ref",
                number,
                f"delete branch of {ws_id}",
                ref=branch_ref(workstream_branch(self.input.run_id, ws_id)),
                workstream_id=ws_id,
            )
        request = self._request(ws_id, base_sha=head, wave=number)
        result = await self.execute(request, slots)
        result = await self.resolve(ws_id, result, request, slots)
        return self.settle(ws_id, result)

    def _request(self, ws_id: str, **fields: object) -> WorkstreamInput:
        return WorkstreamInput(
            run_id=self.input.run_id,
            repo_path=self.input.repo_path,
            workstream=self.board.specs[ws_id],
            branch_ref=workstream_branch(self.input.run_id, ws_id),
            patch_file=self.patch_files.get(ws_id),
            run_history=self.state.history,
            options=self.input.options,
            learning=self.phase.learning,
            recoveries=self.phase.recoveries,
            **fields,  # type: ignore[arg-type]
        )

    async def execute(
        self, request: WorkstreamInput, slots: Slots | None = None
    ) -> WorkstreamResult:
        """One child execution, inside a slot (reviews wait outside one), within budget."""
        ws_id = request.workstream.workstream_id
        unprepared = self.state.unprepared.get(ws_id)
        if unprepared is not None:  # its workspace's setup failed already: no tool is run
            self.journal.event(
                EventType.WORKSTREAM_FAILED, f"{ws_id} failed: {unprepared}", workstream_id=ws_id
            )
            return WorkstreamResult(
                workstream_id=ws_id, status=WorkstreamState.FAILED, reason=unprepared
            )
        refused = await self.budget.admit(ws_id)
        if refused is not None:
            return refused
        # Eager: the longest remaining critical path goes first when slots are scarce.
        priority = self.board.priority(ws_id, missing=0.0) if self.eager else 0
        slots = slots or Slots(1)
        async with slots.take(priority, ahead=self._may_go_ahead(request, slots)) as lease:
            if self.rolling_back():
                return WorkstreamResult.dropped(ws_id, "the phase is being rolled back")
            self.board.set(ws_id, WorkstreamState.RUNNING)
            update: dict[str, object] = {"max_budget_usd": self.budget.allowance(ws_id)}
            if self.eager:  # from the integration head at the moment it starts
                update["base_sha"] = self.record.head_sha
                update["run_history"] = self.state.history
            if not lease.granted:  # its tool asks for the slot, once its checkout is ready
                update["slot_from"] = workflow.info().workflow_id
            result = await self._run_child(request.model_copy(update=update), slots, lease)
        self._absorb(result)
        return result

    def _may_go_ahead(self, request: WorkstreamInput, slots: Slots) -> bool:
        """Whether the workstream may start ahead of its slot: its child's first step is a
        tool run (where it waits for the slot), and this run has updates left for it."""
        first_step_is_a_tool = (
            request.patch_file is None
            and request.resume is None
            and request.workstream.execution_request.tool_id != READY_PATCH
        )
        if slots.ahead == 0 or self.ahead_left <= 0 or not first_step_is_a_tool:
            return False
        return patched(PREPARE_AHEAD)

    async def resolve(
        self,
        ws_id: str,
        result: WorkstreamResult,
        request: WorkstreamInput,
        slots: Slots | None = None,
    ) -> WorkstreamResult:
        """Ask people until the workstream has a final result: each decision either ends it or
        starts its next execution."""
        while result.status == WorkstreamState.AWAITING_REVIEW:
            assert result.review is not None
            self.board.set(ws_id, WorkstreamState.AWAITING_REVIEW)
            record = await self.desk.ask(ws_id, result.review, self.rolling_back)
            outcome = self._decided(ws_id, record, request)
            if isinstance(outcome, WorkstreamResult):
                return outcome
            request = outcome
            result = await self.execute(request, slots)
        return result

    async def _run_child(
        self, request: WorkstreamInput, slots: Slots, lease: Lease
    ) -> WorkstreamResult:
        ws_id = request.workstream.workstream_id
        route = self.router.route(request.workstream)  # with the breaker as it is now
        request = request.model_copy(update={"tool_chain": route.tools, "tool_reason": route.why})
        status = self.board.ws(ws_id)
        status.executions += 1
        title = request.workstream.title
        child_id = child_workflow_id(workflow.info().workflow_id, ws_id, status.executions)
        granting: asyncio.Task[None] | None = None
        if not lease.granted:
            # Known before the start: the child's tool may ask before its start is seen here.
            slots.started(lease, child_id)
            self.ahead_left -= 1
            self.board.waiting(ws_id, AHEAD_NOTE)
            granting = asyncio.create_task(self._granted(ws_id, slots, lease))
        try:
            # The commands of execute_child_workflow, with its start seen: the phase holds a
            # merge back while a start it would delay is on its way (workflows/phase.py).
            self.starting += 1
            try:
                child = await workflow.start_child_workflow(
                    WorkstreamWorkflow.run,
                    request,
                    id=child_id,
                    static_summary=f"{ws_id}: {title}" if title else ws_id,
                    search_attributes=self._child_search_attributes(),
                    memo={INHERITED: generation()} if patched(CHILD_INHERITS) else None,
                )
            finally:
                self.starting -= 1
            return await child
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                raise
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in CHILD_RESULTS:
                return WorkstreamResult.model_validate(cause.details[0])
            return WorkstreamResult(
                workstream_id=ws_id, status=WorkstreamState.FAILED, reason=cause_message(err)
            )
        finally:
            if granting is not None:
                granting.cancel()  # its child ended before a slot was free: none is taken

    async def _granted(self, ws_id: str, slots: Slots, lease: Lease) -> None:
        await slots.grant(lease)
        self.board.waiting(ws_id, None)  # its tool starts now

    def _child_search_attributes(self) -> TypedSearchAttributes | None:
        if not self.input.options.search_attributes:
            return None
        return TypedSearchAttributes(
            [
                SearchAttributePair(RUN_ID, self.input.run_id),
                SearchAttributePair(PHASE_ID, self.phase.phase_id),
            ]
        )

    def _absorb(self, result: WorkstreamResult) -> None:
        self.router.record(result.tool_attempts)
        if result.cost_usd:
            self.budget.spent(result.workstream_id, result.cost_usd)
        known = {e.event_id for e in self.journal.events}
        self.journal.events.extend(e for e in result.events if e.event_id not in known)
        self.state.ledger.update((entry.patch_id, entry) for entry in result.ledger)

    def settle(self, ws_id: str, result: WorkstreamResult) -> WorkstreamResult:
        if result.status == WorkstreamState.COMPLETED:
            self.board.set(ws_id, WorkstreamState.COMPLETED, commit=result.commit)
        elif result.status == WorkstreamState.DROPPED:
            self.board.fail(ws_id, result.reason or "dropped", WorkstreamState.DROPPED)
        else:
            self.board.fail(ws_id, result.reason or "failed")
        return result

    # -- after a review ------------------------------------------------------------------------

    def _decided(
        self, ws_id: str, record: ReviewRecord, request: WorkstreamInput
    ) -> WorkstreamResult | WorkstreamInput:
        """What the workstream does next: a final result, or its next execution."""
        need = record.request
        entry = self.state.ledger.get(need.patch_id or "")
        decision = record.decision
        if decision is None:  # abandoned: the phase is being rolled back
            if entry is not None and entry.state != PatchState.DROPPED:
                self.journal.move(entry, PatchState.DROPPED, "review abandoned: rollback")
            return WorkstreamResult.dropped(
                ws_id, "review abandoned: the phase is being rolled back"
            )
        by = f"{decision.decision} by {decision.reviewer}" + (
            f": {decision.comment}" if decision.comment else ""
        )
        if decision.decision == "reject":
            if entry is not None:
                self.journal.move(entry, PatchState.DROPPED, f"rejected by {decision.reviewer}")
            if decision.rollback:
                self.roll_back(
                    RollbackRequest(
                        to_wave=0,
                        reason=f"{ws_id} rejected with rollback by {decision.reviewer}",
                        requested_by=decision.reviewer,
                    )
                )
            return WorkstreamResult.dropped(ws_id, f"rejected ({by})")
        if decision.decision == "approve":
            assert entry is not None, "approve is only offered for a patch"
            if need.reason == "quarantined":
                # A recorded override: the refused patch goes on to be applied and gated.
                self.journal.move(entry, PatchState.VALIDATED, f"override: {by}")
                return request.model_copy(
                    update={"resume": entry, "first_attempt": entry.attempt, "feedback": None}
                )
            if entry.state == PatchState.APPLIED:  # gates failed: approved as it is
                self.journal.move(entry, PatchState.VERIFIED, f"gates overridden: {by}")
            return WorkstreamResult(
                workstream_id=ws_id,
                status=WorkstreamState.COMPLETED,
                commit=entry.commit,
                patch=entry.patch,
                reason=by,
            )
        # retry / adjust: a new execution; the last patch is replaced, fix attempts start over.
        replaceable = (PatchState.APPLIED, PatchState.VERIFIED, PatchState.QUARANTINED)
        if entry is not None and entry.state in replaceable:
            self.journal.move(entry, PatchState.DROPPED, f"replaced: {by}")
        last_attempt = self._last_attempt(ws_id)
        feedback = None
        if decision.decision == "adjust":
            failed_gate = next(
                (g for g in (entry.gates if entry else []) if g.status in ("failed", "timeout")),
                None,
            )
            fixes = request.workstream.resilience_policy.max_fix_attempts
            feedback = Feedback(
                attempt=last_attempt + 1,
                max_attempts=last_attempt + 1 + fixes,
                gate_id=failed_gate.gate_id if failed_gate else None,
                exit_code=failed_gate.exit_code if failed_gate else None,
                output_tail=failed_gate.output_tail if failed_gate else "",
                instructions=decision.instructions,
                reviewer=decision.reviewer,
            )
        # A merge conflict is retried on the integration head as it is now.
        conflict = need.reason == "merge_conflict"
        return request.model_copy(
            update={
                "first_attempt": last_attempt + 1,
                "replaces": entry.patch_id if entry else request.replaces,
                "feedback": feedback,
                "resume": None,
                "base_sha": self.record.head_sha if conflict else request.base_sha,
                "run_history": self.state.history,
            }
        )

    def _last_attempt(self, ws_id: str) -> int:
        attempts = (e.attempt for e in self.state.ledger.values() if e.workstream_id == ws_id)
        return max(attempts, default=0)

    # -- merge conflicts -------------------------------------------------------------------------

    async def settle_conflict(
        self, number: int, result: WorkstreamResult, outcome: MergeOutcome
    ) -> None:
        """A conflict the 3-way merge could not resolve: re-run the workstream on the new
        head (that counts as a fix attempt); only then ask a person, or fail it."""
        ws_id = result.workstream_id
        ws = self.board.specs[ws_id]
        rerun_left = ws.resilience_policy.max_fix_attempts > 0
        conflicts = outcome.conflicts
        while True:
            reason = self.integration.conflicted(ws_id, result, conflicts)
            request = self._request(
                ws_id,
                base_sha=self.record.head_sha or "",
                wave=self.board.ws(ws_id).wave,
                first_attempt=self._last_attempt(ws_id) + 1,
                replaces=result.patch.patch_id if result.patch else None,
            )
            if rerun_left:
                rerun_left = False
                self.journal.event(
                    EventType.MERGE_RETRIED,
                    f"{ws_id}: re-running on the new integration head",
                    workstream_id=ws_id,
                )
                result = await self.execute(request)
            elif not self.input.options.asks_on_failure(ws.review):
                self.settle(
                    ws_id,
                    WorkstreamResult(
                        workstream_id=ws_id, status=WorkstreamState.FAILED, reason=reason
                    ),
                )
                return
            else:
                patch = result.patch
                result = WorkstreamResult(
                    workstream_id=ws_id,
                    status=WorkstreamState.AWAITING_REVIEW,
                    patch=patch,
                    reason=reason,
                    review=ReviewNeed(
                        reason="merge_conflict",
                        summary=reason,
                        conflicts=conflicts,
                        patch_id=patch.patch_id if patch else None,
                        patch=patch.ref if patch else None,
                    ),
                )
            result = await self.resolve(ws_id, result, request)
            if result.status != WorkstreamState.COMPLETED or result.commit is None:
                self.settle(ws_id, result)
                return
            again = self.integration.merge_request(result)
            (merged,) = await self.integration.merge(number, [again])
            if merged.merged:
                self.settle(ws_id, result)
                return
            conflicts = merged.conflicts
