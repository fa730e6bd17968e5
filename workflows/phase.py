"""A phase run: plan → waves of workstream children → integrate in a fixed order → checkpoint.

The integration branch only ever moves here, one wave at a time, so every workstream of wave
N+1 starts from a head that contains all of wave N's merged work. When a workstream needs a
person the phase asks and waits durably; when the phase must be abandoned its saga undoes
every wave in reverse, merges of finished workstreams included.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

from workflows import details, search
from workflows.failures import cause_message
from workflows.ids import IdFactory
from workflows.journal import Journal
from workflows.review import ReviewDesk
from workflows.router import ToolRouter
from workflows.saga import Saga, mark_rolled_back
from workflows.slots import Slots
from workflows.workstream import WorkstreamWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.parts import PartActivities, pack_lines, split
    from activities.planning import PlanningActivities
    from activities.workspace import WorkspaceActivities
    from schemas.base import ArtifactRef
    from schemas.events import NOTEWORTHY, EventType, RunEvent
    from schemas.gates import GateRunInput
    from schemas.journal import JournalRecord
    from schemas.ledger import LedgerEntry, PatchState
    from schemas.plan import Plan, PlanInput
    from schemas.refs import (
        branch_ref,
        child_workflow_id,
        integration_branch,
        tag_ref,
        wave_tag,
        workstream_branch,
    )
    from schemas.review import (
        DecisionPayload,
        ReviewAnswer,
        ReviewDecision,
        ReviewNeed,
        ReviewRecord,
        ReviewRequest,
        read_decision,
    )
    from schemas.run import (
        PhaseCarry,
        PhaseState,
        RunDocument,
        RunInput,
        RunStatus,
        WorkstreamInput,
        WorkstreamResult,
        WorkstreamState,
        WorkstreamStatus,
    )
    from schemas.saga import RollbackRequest
    from schemas.spec import PhaseSpec
    from schemas.tools import Feedback
    from schemas.workspace import (
        CloseRunInput,
        IntegrateInput,
        MergeOutcome,
        MergeRequest,
        OpenRunInput,
        PartText,
    )

#: Quick, idempotent steps: retried through lost workers, a dead one noticed by heartbeat.
GIT_RETRY = RetryPolicy(maximum_attempts=10)
QUICK = timedelta(minutes=5)
ENDED = (WorkstreamState.FAILED, WorkstreamState.DROPPED, WorkstreamState.BLOCKED)
#: Workstreams whose ledger entries may still change in place (and so stay in memory).
LIVE = (WorkstreamState.PENDING, WorkstreamState.RUNNING, WorkstreamState.AWAITING_REVIEW)
#: Failures of a workstream child that carry its result in their details.
CHILD_RESULTS = ("WorkstreamFailed", "WorkstreamNeedsReview")
#: workflow.patched id: the journal is written out step by step (issue 7).
WRITE_JOURNAL = "write-journal-per-step"
#: workflow.patched id: continue-as-new between waves when the history grows long (issue 7).
CONTINUE_AS_NEW = "continue-as-new-between-waves"
#: workflow.patched id: one undo step for a wave's workstream branches (issue 7).
WAVE_BRANCHES = "one-branch-undo-per-wave"


@workflow.defn
class PhaseWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        # A large phase, or a continued run's state, arrives by reference and is read first
        # thing in run(); until then queries see a run with no workstreams.
        placeholder = PhaseSpec.model_construct(phase_id="", workstreams=[])
        self._setup(input.phase or placeholder, input.patch_files)

    def _setup(
        self, phase: PhaseSpec, patch_files: dict[str, ArtifactRef], carry: PhaseCarry | None = None
    ) -> None:
        input = self._input
        self._phase = phase
        self._patch_files = patch_files
        self._resume_at = carry.next_wave if carry else 0
        self._status = carry.status if carry else RunStatus(
            run_id=input.run_id,
            workflow_id=workflow.info().workflow_id,
            phase_id=phase.phase_id,
            scheduling=phase.scheduling,
            repo_path=input.repo_path,
            integration_branch=integration_branch(input.run_id),
            workstreams={
                ws.workstream_id: WorkstreamStatus(
                    wave=0, branch=workstream_branch(input.run_id, ws.workstream_id)
                )
                for ws in phase.workstreams
            },
        )  # fmt: skip
        self._journal = Journal(input.run_id, IdFactory())
        self._heartbeat = timedelta(seconds=input.options.heartbeat_timeout_s)
        self._desk = ReviewDesk(
            input.run_id, phase, self._journal, self._show, nobody=input.options.no_review
        )
        self._router = ToolRouter(phase.router, self._journal)
        self._slots = Slots(phase.max_parallel)
        self._eager = phase.scheduling == "eager"
        self._tasks: list[asyncio.Task[WorkstreamResult]] = []  # every workstream task started
        self._remaining: dict[str, float] = {}  # eager priorities, from the plan
        if carry is None:
            self._status.budget_usd_total = phase.budget.max_cost_usd_total
        self._raised: dict[str, float] = {}  # per-workstream budget raised by reviewers
        self._budget_warned = False
        self._budget_closed = False  # a budget review was rejected: no more tool runs
        self._desk.records = self._status.reviews
        self._saga = Saga(
            input.repo_path,
            input.run_id,
            branch_ref(self._status.integration_branch),
            self._journal,
            self._status.compensations,
            timedelta(seconds=input.options.heartbeat_timeout_s),
        )
        self._ledger: dict[str, LedgerEntry] = {}  # patch_id → entry, from finished children
        self._written: dict[str, tuple[str, PatchState]] = {}  # patch_id → (ws, state), on disk
        self._branch_undo: set[str] = set()  # workstreams whose branch a wave's undo step deletes
        self._history: ArtifactRef | None = None  # what has been integrated (oscillation)
        self._checkpoints: dict[int, str] = {}  # wave → integration head after it (0: base)
        self._executions: dict[str, int] = {}  # workstream → child executions so far
        self._completed_order: list[str] = []
        self._rollback: RollbackRequest | None = None
        self._finishing = False  # past the point where a rollback request is acted on
        self._indexed_status = str(PhaseState.RUNNING)  # the starter sets it at start
        self._dependents: dict[str, list[str]] = {ws.workstream_id: [] for ws in phase.workstreams}
        for ws in phase.workstreams:
            for dep in ws.dependencies:
                self._dependents[dep].append(ws.workstream_id)
        if carry is not None:
            self._ledger = {e.patch_id: e for e in carry.ledger}
            self._written = dict(carry.written)
            self._checkpoints = dict(carry.checkpoints)
            self._executions = dict(carry.executions)
            self._completed_order = list(carry.completed_order)
            self._history = carry.history
            self._raised = dict(carry.raised)
            self._budget_warned = carry.budget_warned
            self._budget_closed = carry.budget_closed
            self._router.failures = dict(carry.tool_failures)
            self._router.open_until = dict(carry.circuits_open_until)
            self._indexed_status = carry.indexed_status
            self._remaining = dict(carry.remaining)

    # -- messages ------------------------------------------------------------------------------

    @workflow.query
    def status(self) -> RunStatus:
        return self._status

    @workflow.query
    def ledger(self) -> list[LedgerEntry]:
        """The patches of finished workstreams not yet written out (``status().journal`` has
        the rest; running workstreams answer their own)."""
        return list(self._ledger.values())

    @workflow.query
    def noteworthy_events(self) -> list[RunEvent]:
        """The fix attempts, gate failures, conflicts… not yet written out: what ``uet run``
        shows as it happens (a fast workstream ends between two looks at its own)."""
        return [e for e in self._journal.events if e.type in NOTEWORTHY]

    @workflow.query
    def pending_reviews(self) -> list[ReviewRequest]:
        return self._desk.pending()

    @workflow.update
    def submit_review(self, payload: DecisionPayload) -> ReviewAnswer:
        decision = read_decision(payload)
        assert isinstance(decision, ReviewDecision), "the validator refused anything else"
        return self._desk.decide(decision)

    @submit_review.validator
    def _check_review(self, payload: DecisionPayload) -> None:
        decision = read_decision(payload)
        problem = decision if isinstance(decision, str) else self._desk.problem(decision)
        if problem:
            raise ValueError(problem)  # the caller gets it; nothing reaches history

    @workflow.signal
    def review_decision(self, payload: DecisionPayload) -> None:
        """The same decision as a signal (``temporal workflow signal``, the Web UI). A bad one
        is logged in one line and ignored: a signal cannot be refused, and must never crash
        the run."""
        decision = read_decision(payload)
        problem = decision if isinstance(decision, str) else self._desk.problem(decision)
        if problem:
            workflow.logger.warning(f"review_decision signal ignored: {problem}")
            return
        assert isinstance(decision, ReviewDecision)
        self._desk.decide(decision)

    @workflow.update
    def rollback(self, request: RollbackRequest) -> RunStatus:
        self._rollback = request
        return self._status

    @rollback.validator
    def _check_rollback(self, request: RollbackRequest) -> None:
        if self._rollback is not None:
            raise ValueError("a rollback is already under way")
        if self._finishing:
            raise ValueError("the run is finishing; roll it back once it has ended")
        last = len(self._status.waves)
        if request.to_wave and request.to_wave >= self._status.current_wave:
            raise ValueError(
                f"--to-wave {request.to_wave}: the run is in wave {self._status.current_wave} "
                f"of {last}; only finished waves can be kept"
            )

    # -- the run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RunInput) -> RunStatus:
        # Shielded: a cancel while a continued run reads its state must still find the saga
        # stack to unwind.
        loading = (
            asyncio.ensure_future(self._load(input)) if input.document or input.resume else None
        )
        try:
            if loading is not None:
                await asyncio.shield(loading)
            if not input.resume:
                self._journal.event(EventType.RUN_STARTED, f"run of phase {self._phase.phase_id}")
            return await self._run_phase(input)
        except BaseException as err:
            # Cancellation arrives as CancelledError or wrapped in a child's or an activity's
            # error; anything else is not ours to handle here.
            if not is_cancelled_exception(err):
                raise
            if loading is not None:
                await loading
            # `uet cancel`: stop every workstream (their tools killed and awaited; in eager
            # mode nothing else cancels them), undo everything, write the report, end cancelled.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._roll_back(RollbackRequest(to_wave=0, reason="the run was cancelled"))
            await self._finish(state=PhaseState.CANCELED, reason="the run was cancelled")
            raise

    async def _load(self, input: RunInput) -> None:
        """The phase given by reference, and a continued run's state."""
        phase, patch_files = input.phase, input.patch_files
        if input.document:
            document = RunDocument.model_validate_json(await self._read_parts(input.document))
            phase, patch_files = document.phase, document.patch_files
        assert phase is not None, "the starter gives a phase inline or as a document"
        carry = None
        if input.resume:
            carry = PhaseCarry.model_validate_json(await self._read_parts(input.resume))
        self._setup(phase, patch_files, carry)

    async def _run_phase(self, input: RunInput) -> RunStatus:
        if self._resume_at:
            # Continued between steps: planned, opened and integrated up to here already.
            stop = await (
                self._run_eager(first=self._resume_at) if self._eager
                else self._run_waves(self._status.waves, first=self._resume_at)
            )  # fmt: skip
            return await self._conclude(stop)
        try:
            the_plan = await workflow.execute_activity_method(
                PlanningActivities.plan,
                PlanInput(document=input.document)
                if input.document else PlanInput(phase=self._phase),
                start_to_close_timeout=QUICK,
                heartbeat_timeout=self._heartbeat, retry_policy=GIT_RETRY,
                summary="plan the DAG into waves",
            )  # fmt: skip
            self._apply_plan(the_plan)
            opened = await workflow.execute_activity_method(
                WorkspaceActivities.open_run,
                OpenRunInput(
                    repo_path=input.repo_path,
                    run_id=input.run_id,
                    base_ref=self._phase.base_ref,
                    integration_ref=branch_ref(self._status.integration_branch),
                ),
                start_to_close_timeout=QUICK,
                heartbeat_timeout=self._heartbeat,
                retry_policy=GIT_RETRY,
                summary="open the run: resolve base, create the integration branch",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return await self._finish(reason=f"could not start: {cause_message(err)}")
        self._status.base_sha = self._status.head_sha = opened.base_sha
        self._checkpoints[0] = opened.base_sha

        stop = await (self._run_eager() if self._eager else self._run_waves(the_plan.waves))
        return await self._conclude(stop)

    async def _conclude(self, stop: str | None) -> RunStatus:
        if self._rollback is not None:
            await self._roll_back(self._rollback)
            return await self._finish(state=PhaseState.ROLLED_BACK, reason=self._rollback.reason)
        if stop is not None:  # a phase gate failed before the end
            self._block_all_pending(stop)
            return await self._finish(reason=stop)
        return await self._finish()

    async def _run_waves(self, waves: list[list[str]], first: int = 1) -> str | None:
        """Each wave runs whole, then is integrated in workstream-id order."""
        for number, wave in enumerate(waves, start=1):
            if number < first:
                continue
            self._status.current_wave = number
            ready = [w for w in wave if self._ws(w).status == WorkstreamState.PENDING]
            self._journal.event(
                EventType.WAVE_STARTED, f"wave {number}: {', '.join(ready) or 'nothing to run'}",
                wave=number,
            )  # fmt: skip
            self._push_checkpoint(number)
            if ready and workflow.patched(WAVE_BRANCHES):
                # One undo step for all the wave's branches rather than one each: the saga
                # stack, and with it the run record, stays small in very large phases.
                self._saga.push(
                    "delete_branches", number, f"delete the branches of wave {number}",
                    workstream_ids=ready,
                )  # fmt: skip
                self._branch_undo.update(ready)
            tasks = [
                asyncio.create_task(self._run_workstream(ws_id, self._head(), number, self._slots))
                for ws_id in ready
            ]
            self._tasks += tasks
            results = [await task for task in tasks]
            if self._rollback is None:
                for result, outcome in await self._integrate(number, results):
                    await self._settle_conflict(number, result, outcome)
            stop = await self._after_step(number, last=number == len(waves))
            if self._rollback is not None or stop is not None:
                return stop
            await self._write_journal()
            if number < len(waves) and self._history_is_long():
                await self._continue_as_new(next_wave=number + 1)
        return None

    async def _run_eager(self, first: int = 1) -> str | None:
        """A workstream starts as soon as its dependencies are integrated, from the head at
        that moment; each one is integrated the moment it finishes (one at a time, so the
        history is deterministic given the completion order). Each integration is a step:
        a checkpoint, a point to roll back to, and a run of the phase gates.

        When the history grows long, no new workstream starts; once the running ones are
        integrated the run continues as new from the next step."""
        deps = {ws.workstream_id: set(ws.dependencies) for ws in self._phase.workstreams}
        # Completed means integrated here (or nothing to integrate): a conflict re-runs it.
        merged = {w for w, s in self._status.workstreams.items()
                  if s.status == WorkstreamState.COMPLETED}  # fmt: skip
        running: dict[str, asyncio.Task[WorkstreamResult]] = {}
        step = first - 1
        draining = False
        while True:
            if self._rollback is None and not draining:
                for ws_id in sorted(
                    (w for w, s in self._status.workstreams.items()
                     if s.status == WorkstreamState.PENDING and w not in running
                     and deps[w] <= merged),
                    key=lambda w: (-self._remaining.get(w, 1.0), w),
                ):  # fmt: skip
                    running[ws_id] = asyncio.create_task(
                        self._run_workstream(ws_id, self._head(), step + 1, self._slots)
                    )
                    self._tasks.append(running[ws_id])
            if not running:
                if draining and self._pending():
                    await self._continue_as_new(next_wave=step + 1)
                return None
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for ws_id in sorted(w for w, task in running.items() if task.done()):
                result = running.pop(ws_id).result()
                if self._rollback is not None or result.status != WorkstreamState.COMPLETED:
                    continue
                if result.commit is None:  # nothing to integrate: done as it is
                    merged.add(ws_id)
                    continue
                step += 1
                self._status.current_wave = step
                self._push_checkpoint(step)
                for conflicted, outcome in await self._integrate(step, [result]):
                    await self._settle_conflict(step, conflicted, outcome)
                if self._ws(ws_id).status == WorkstreamState.COMPLETED:
                    merged.add(ws_id)
                stop = await self._after_step(step, last=not running and not self._pending())
                if stop is None and self._rollback is None:
                    await self._write_journal()
                    draining = draining or self._history_is_long()
                if self._rollback is not None or stop is not None:
                    for task in running.values():  # the rest is abandoned
                        task.cancel()
                    await asyncio.gather(*running.values(), return_exceptions=True)
                    return stop

    def _pending(self) -> bool:
        return any(s.status == WorkstreamState.PENDING for s in self._status.workstreams.values())

    async def _after_step(self, number: int, last: bool) -> str | None:
        """Phase gates, and on_failure: rollback. The reason the phase stops, if it does."""
        if self._rollback is not None:
            return None
        stop = await self._phase_gates(number, last=last)
        if self._rollback is None and self._phase.on_failure == "rollback":
            failed = [w for w, s in self._status.workstreams.items() if s.status in ENDED]
            if failed:
                self._rollback = RollbackRequest(
                    to_wave=0, reason=f"on_failure: rollback ({', '.join(failed)} failed)"
                )
        return stop

    def _head(self) -> str:
        assert self._status.head_sha is not None
        return self._status.head_sha

    # -- waves ---------------------------------------------------------------------------------

    def _apply_plan(self, the_plan: Plan) -> None:
        self._status.waves = the_plan.waves
        self._remaining = the_plan.remaining
        for number, wave in enumerate(the_plan.waves, start=1):
            for ws_id in wave:
                self._ws(ws_id).wave = number
        self._show()

    def _push_checkpoint(self, number: int) -> None:
        """Compensations for the merge and the tag of step (wave) ``number``, pushed before
        them: they may happen and still report failure."""
        self._saga.push(
            "reset_ref", number, f"reset {self._status.integration_branch} to step {number - 1}",
            ref=branch_ref(self._status.integration_branch), to_sha=self._head(),
        )  # fmt: skip
        tag = tag_ref(wave_tag(self._input.run_id, number))
        self._saga.push("delete_ref", number, f"delete tag wave-{number}", ref=tag)

    async def _run_workstream(
        self, ws_id: str, head: str, number: int, slots: Slots
    ) -> WorkstreamResult:
        """One workstream to its end: its child executions and the reviews between them."""
        ws = self._phase.workstream(ws_id)
        if ws_id not in self._branch_undo:
            self._saga.push(
                "delete_ref", number, f"delete branch of {ws_id}",
                ref=branch_ref(workstream_branch(self._input.run_id, ws_id)), workstream_id=ws_id,
            )  # fmt: skip
        request = WorkstreamInput(
            run_id=self._input.run_id,
            repo_path=self._input.repo_path,
            workstream=ws,
            base_sha=head,
            wave=number,
            branch_ref=workstream_branch(self._input.run_id, ws_id),
            patch_file=self._patch_files.get(ws_id),
            run_history=self._history,
            options=self._input.options,
        )
        result = await self._execute(request, slots)
        result = await self._resolve(ws_id, result, request, slots)
        return self._settle(ws_id, result)

    async def _execute(
        self, request: WorkstreamInput, slots: Slots | None = None
    ) -> WorkstreamResult:
        """One child execution, inside a slot (reviews wait outside one), within budget."""
        ws_id = request.workstream.workstream_id
        refused = await self._within_budget(ws_id)
        if refused is not None:
            return refused
        # Eager: the longest remaining critical path goes first when slots are scarce.
        priority = -self._remaining.get(ws_id, 0.0) if self._eager else 0
        async with (slots or Slots(1)).take(priority):
            if self._rollback is not None:
                return self._dropped(ws_id, "the phase is being rolled back")
            self._set(ws_id, WorkstreamState.RUNNING)
            update: dict[str, object] = {"max_budget_usd": self._allowance(ws_id)}
            if self._eager:  # from the integration head at the moment it starts
                update["base_sha"] = self._status.head_sha
                update["run_history"] = self._history
            request = request.model_copy(update=update)
            result = await self._run_child(request)
        self._absorb(result)
        return result

    # -- budget --------------------------------------------------------------------------------

    def _overspent(self, ws_id: str) -> str | None:
        """Why no more tool runs may start for this workstream, or None."""
        limit = self._status.budget_usd_total
        spent = self._status.cost_usd_total
        if limit is not None and spent >= limit:
            return f"the phase has spent ${spent:.2f} of its ${limit:.2f} budget"
        per_ws = self._per_ws_limit(ws_id)
        cost = self._ws(ws_id).cost_usd
        if per_ws is not None and cost >= per_ws:
            return f"{ws_id} has spent ${cost:.2f} of its ${per_ws:.2f} budget"
        return None

    def _per_ws_limit(self, ws_id: str) -> float | None:
        base = self._phase.budget.max_cost_usd_per_workstream
        return None if base is None else base + self._raised.get(ws_id, 0.0)

    def _allowance(self, ws_id: str) -> float | None:
        """What the workstream's next tool runs may spend, for tools that enforce it."""
        left = []
        if self._status.budget_usd_total is not None:
            left.append(self._status.budget_usd_total - self._status.cost_usd_total)
        per_ws = self._per_ws_limit(ws_id)
        if per_ws is not None:
            left.append(per_ws - self._ws(ws_id).cost_usd)
        return round(max(min(left), 0.0), 6) if left else None

    async def _within_budget(self, ws_id: str) -> WorkstreamResult | None:
        """At a limit no tool run starts: a person may raise it (approve) or not (reject, which
        then follows the phase's on_failure)."""
        while (why := self._overspent(ws_id)) is not None:
            if self._budget_closed:
                return self._dropped(ws_id, f"budget exhausted: {why}")
            self._journal.event(EventType.BUDGET_EXCEEDED, why, workstream_id=ws_id)
            self._set(ws_id, WorkstreamState.AWAITING_REVIEW)
            record = await self._desk.ask(
                ws_id, ReviewNeed(reason="budget_exceeded", summary=why),
                # Another budget review rejected meanwhile answers this one too.
                lambda: self._rollback is not None or self._budget_closed,
            )  # fmt: skip
            decision = record.decision
            if decision is None:
                if self._budget_closed:
                    return self._dropped(ws_id, f"budget exhausted: {why}")
                return self._dropped(ws_id, "review abandoned: the phase is being rolled back")
            if decision.decision == "reject":
                self._budget_closed = True
                if self._phase.on_failure == "rollback":
                    self._rollback = RollbackRequest(
                        to_wave=0, reason=f"budget exhausted ({why}); rejected by "
                        f"{decision.reviewer}",
                    )  # fmt: skip
                return self._dropped(ws_id, f"budget exhausted: {why}; rejected by "
                                     f"{decision.reviewer}")  # fmt: skip
            increase = decision.budget_increase_usd or 0.0
            if self._status.budget_usd_total is not None and (
                self._status.cost_usd_total >= self._status.budget_usd_total
            ):
                self._status.budget_usd_total += increase
            else:
                self._raised[ws_id] = self._raised.get(ws_id, 0.0) + increase
            self._journal.event(
                EventType.BUDGET_RAISED,
                f"budget raised by ${increase:.2f} by {decision.reviewer}",
                workstream_id=ws_id,
            )
        return None

    def _budget_warning(self) -> None:
        limit = self._status.budget_usd_total
        if limit is None or self._budget_warned:
            return
        if self._status.cost_usd_total >= self._phase.budget.warn_at * limit:
            self._budget_warned = True
            self._slots.size = max(1, self._slots.size // 2)
            self._journal.event(
                EventType.BUDGET_WARNING,
                f"${self._status.cost_usd_total:.2f} of the ${limit:.2f} budget spent; "
                f"parallelism halved to {self._slots.size}",
            )

    async def _resolve(
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
            self._set(ws_id, WorkstreamState.AWAITING_REVIEW)
            record = await self._desk.ask(ws_id, result.review, lambda: self._rollback is not None)
            outcome = self._apply_decision(ws_id, record, request)
            if isinstance(outcome, WorkstreamResult):
                return outcome
            request = outcome
            result = await self._execute(request, slots)
        return result

    async def _run_child(self, request: WorkstreamInput) -> WorkstreamResult:
        ws_id = request.workstream.workstream_id
        route = self._router.route(request.workstream)  # with the breaker as it is now
        request = request.model_copy(update={"tool_chain": route.tools, "tool_reason": route.why})
        execution = self._executions.get(ws_id, 0) + 1
        self._executions[ws_id] = self._ws(ws_id).executions = execution
        title = request.workstream.title
        try:
            return await workflow.execute_child_workflow(
                WorkstreamWorkflow.run,
                request,
                id=child_workflow_id(workflow.info().workflow_id, ws_id, execution),
                static_summary=f"{ws_id}: {title}" if title else ws_id,
                search_attributes=self._child_search_attributes(),
            )
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                raise
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in CHILD_RESULTS:
                return WorkstreamResult.model_validate(cause.details[0])
            return WorkstreamResult(
                workstream_id=ws_id, status=WorkstreamState.FAILED, reason=cause_message(err)
            )

    def _absorb(self, result: WorkstreamResult) -> None:
        self._router.record(result.tool_attempts)
        if result.cost_usd:
            self._ws(result.workstream_id).cost_usd += result.cost_usd
            self._status.cost_usd_total = round(
                sum(s.cost_usd for s in self._status.workstreams.values()), 6
            )
            self._budget_warning()
        known = {e.event_id for e in self._journal.events}
        self._journal.events.extend(e for e in result.events if e.event_id not in known)
        self._ledger.update((entry.patch_id, entry) for entry in result.ledger)

    def _settle(self, ws_id: str, result: WorkstreamResult) -> WorkstreamResult:
        if result.status == WorkstreamState.COMPLETED:
            self._set(ws_id, WorkstreamState.COMPLETED, commit=result.commit)
            self._completed_order.append(ws_id)
        elif result.status == WorkstreamState.DROPPED:
            self._fail(ws_id, result.reason or "dropped", WorkstreamState.DROPPED)
        else:
            self._fail(ws_id, result.reason or "failed")
        return result

    # -- reviews -------------------------------------------------------------------------------

    def _apply_decision(
        self, ws_id: str, record: ReviewRecord, request: WorkstreamInput
    ) -> WorkstreamResult | WorkstreamInput:
        """What the workstream does next: a final result, or its next execution."""
        need = record.request
        entry = self._ledger.get(need.patch_id or "")
        decision = record.decision
        if decision is None:  # abandoned: the phase is being rolled back
            if entry is not None and entry.state != PatchState.DROPPED:
                self._journal.move(entry, PatchState.DROPPED, "review abandoned: rollback")
            return self._dropped(ws_id, "review abandoned: the phase is being rolled back")
        by = f"{decision.decision} by {decision.reviewer}" + (
            f": {decision.comment}" if decision.comment else ""
        )
        if decision.decision == "reject":
            if entry is not None:
                self._journal.move(entry, PatchState.DROPPED, f"rejected by {decision.reviewer}")
            if decision.rollback:
                self._rollback = RollbackRequest(
                    to_wave=0, reason=f"{ws_id} rejected with rollback by {decision.reviewer}",
                    requested_by=decision.reviewer,
                )  # fmt: skip
            return self._dropped(ws_id, f"rejected ({by})")
        if decision.decision == "approve":
            assert entry is not None, "approve is only offered for a patch"
            if need.reason == "quarantined":
                # A recorded override: the refused patch goes on to be applied and gated.
                self._journal.move(entry, PatchState.VALIDATED, f"override: {by}")
                return request.model_copy(
                    update={"resume": entry, "first_attempt": entry.attempt, "feedback": None}
                )
            if entry.state == PatchState.APPLIED:  # gates failed: approved as it is
                self._journal.move(entry, PatchState.VERIFIED, f"gates overridden: {by}")
            return WorkstreamResult(
                workstream_id=ws_id, status=WorkstreamState.COMPLETED, commit=entry.commit,
                patch=entry.patch, reason=by,
            )  # fmt: skip
        # retry / adjust: a new execution; the last patch is replaced, fix attempts start over.
        if entry is not None and entry.state in (
            PatchState.APPLIED, PatchState.VERIFIED, PatchState.QUARANTINED
        ):  # fmt: skip
            self._journal.move(entry, PatchState.DROPPED, f"replaced: {by}")
        last_attempt = self._last_attempt(ws_id)
        feedback = None
        if decision.decision == "adjust":
            failed_gate = next(
                (g for g in (entry.gates if entry else []) if g.status in ("failed", "timeout")),
                None,
            )
            feedback = Feedback(
                attempt=last_attempt + 1,
                max_attempts=last_attempt
                + 1
                + request.workstream.resilience_policy.max_fix_attempts,
                gate_id=failed_gate.gate_id if failed_gate else None,
                exit_code=failed_gate.exit_code if failed_gate else None,
                output_tail=failed_gate.output_tail if failed_gate else "",
                instructions=decision.instructions,
                reviewer=decision.reviewer,
            )
        return request.model_copy(
            update={
                "first_attempt": last_attempt + 1,
                "replaces": entry.patch_id if entry else request.replaces,
                "feedback": feedback,
                "resume": None,
                # A merge conflict is retried on the integration head as it is now.
                "base_sha": self._status.head_sha
                if need.reason == "merge_conflict"
                else request.base_sha,
                "run_history": self._history,
            }
        )

    def _dropped(self, ws_id: str, reason: str) -> WorkstreamResult:
        return WorkstreamResult(workstream_id=ws_id, status=WorkstreamState.DROPPED, reason=reason)

    # -- integration ---------------------------------------------------------------------------

    async def _integrate(
        self, number: int, results: list[WorkstreamResult]
    ) -> list[tuple[WorkstreamResult, MergeOutcome]]:
        """Merge the wave's verified workstreams in id order and tag the checkpoint; the ones
        that conflict (even as a 3-way merge) are returned."""
        merges = sorted(
            (self._merge_request(r) for r in results
             if r.status == WorkstreamState.COMPLETED and r.commit),
            key=lambda m: m.workstream_id,
        )  # fmt: skip
        outcomes = await self._merge(number, merges)
        self._journal.event(
            EventType.WAVE_INTEGRATED,
            f"wave {number} integrated: {self._status.integration_branch} at "
            f"{(self._status.head_sha or '')[:12]}",
            wave=number,
            head_sha=self._status.head_sha,
        )
        by_id = {r.workstream_id: r for r in results}
        return [(by_id[o.workstream_id], o) for o in outcomes if not o.merged]

    def _merge_request(self, result: WorkstreamResult) -> MergeRequest:
        assert result.commit is not None
        return MergeRequest(
            workstream_id=result.workstream_id,
            commit_sha=result.commit,
            patch_id=result.patch.patch_id if result.patch else None,
            reverse_fingerprint=result.patch.reverse_fingerprint if result.patch else None,
        )

    async def _merge(self, number: int, merges: list[MergeRequest]) -> list[MergeOutcome]:
        head = self._status.head_sha
        assert head is not None
        integrated = await workflow.execute_activity_method(
            WorkspaceActivities.integrate,
            IntegrateInput(
                repo_path=self._input.repo_path,
                run_id=self._input.run_id,
                wave=number,
                integration_ref=branch_ref(self._status.integration_branch),
                expected_head=head,
                merges=merges,
                tag_ref=tag_ref(wave_tag(self._input.run_id, number)),
                timestamp=self._timestamp(),
                history=self._history,
            ),
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat,
            retry_policy=GIT_RETRY,
            summary=f"integrate wave {number} ({len(merges)} branches)",
        )
        self._status.head_sha = self._checkpoints[number] = integrated.head_sha
        self._history = integrated.history
        patch_of = {m.workstream_id: m.patch_id for m in merges}
        for outcome in integrated.outcomes:
            entry = self._ledger.get(patch_of.get(outcome.workstream_id) or "")
            if not outcome.merged:
                continue
            self._ws(outcome.workstream_id).step = number
            if entry is not None:
                self._journal.move(
                    entry, PatchState.COMMITTED,
                    f"merged into {self._status.integration_branch} as "
                    f"{(outcome.merge_commit or '')[:12]}",
                )  # fmt: skip
            ws = self._phase.workstream(outcome.workstream_id)
            if ws.compensation is not None:
                # Pushed after the merge it belongs with, so it runs first on the way back,
                # while the integration head still holds this workstream's work.
                self._saga.push(
                    "user_command", number, f"compensation of {ws.workstream_id}",
                    workstream_id=ws.workstream_id, command=ws.compensation.command,
                )  # fmt: skip
        self._show()
        return integrated.outcomes

    async def _settle_conflict(
        self, number: int, result: WorkstreamResult, outcome: MergeOutcome
    ) -> None:
        """A conflict the 3-way merge could not resolve: re-run the workstream on the new
        head (that counts as a fix attempt); only then ask a person, or fail it."""
        ws_id = result.workstream_id
        ws = self._phase.workstream(ws_id)
        rerun_left = ws.resilience_policy.max_fix_attempts > 0
        conflicts = outcome.conflicts
        while True:
            reason = self._conflicted(ws_id, result, conflicts)
            request = self._next_execution(ws_id, result)
            if rerun_left:
                rerun_left = False
                self._journal.event(
                    EventType.MERGE_RETRIED, f"{ws_id}: re-running on the new integration head",
                    workstream_id=ws_id,
                )  # fmt: skip
                result = await self._execute(request)
            elif not self._input.options.asks_on_failure(ws.review):
                self._settle(ws_id, WorkstreamResult(
                    workstream_id=ws_id, status=WorkstreamState.FAILED, reason=reason))  # fmt: skip
                return
            else:
                patch = result.patch
                result = WorkstreamResult(
                    workstream_id=ws_id,
                    status=WorkstreamState.AWAITING_REVIEW,
                    patch=patch,
                    reason=reason,
                    review=ReviewNeed(
                        reason="merge_conflict", summary=reason, conflicts=conflicts,
                        patch_id=patch.patch_id if patch else None,
                        patch=patch.ref if patch else None,
                    ),
                )  # fmt: skip
            result = await self._resolve(ws_id, result, request)
            if result.status != WorkstreamState.COMPLETED or result.commit is None:
                self._settle(ws_id, result)
                return
            (merged,) = await self._merge(number, [self._merge_request(result)])
            if merged.merged:
                self._settle(ws_id, result)
                return
            conflicts = merged.conflicts

    def _conflicted(self, ws_id: str, result: WorkstreamResult, conflicts: list[str]) -> str:
        reason = f"merge conflict in {', '.join(conflicts) or 'the integration branch'}"
        entry = self._ledger.get(result.patch.patch_id if result.patch else "")
        if entry is not None and entry.state == PatchState.VERIFIED:
            self._journal.move(entry, PatchState.APPLY_FAILED, reason)
        self._journal.event(
            EventType.MERGE_CONFLICT, f"{ws_id}: {reason}", workstream_id=ws_id,
            conflicts=conflicts,
        )  # fmt: skip
        return reason

    def _next_execution(self, ws_id: str, result: WorkstreamResult) -> WorkstreamInput:
        """A new execution of a workstream on the integration head as it is now."""
        ws = self._phase.workstream(ws_id)
        return WorkstreamInput(
            run_id=self._input.run_id,
            repo_path=self._input.repo_path,
            workstream=ws,
            base_sha=self._status.head_sha or "",
            wave=self._ws(ws_id).wave,
            branch_ref=workstream_branch(self._input.run_id, ws_id),
            patch_file=self._patch_files.get(ws_id),
            run_history=self._history,
            options=self._input.options,
            first_attempt=self._last_attempt(ws_id) + 1,
            replaces=result.patch.patch_id if result.patch else None,
        )

    def _last_attempt(self, ws_id: str) -> int:
        return max((e.attempt for e in self._ledger.values() if e.workstream_id == ws_id),
                   default=0)  # fmt: skip

    async def _phase_gates(self, number: int, last: bool) -> str | None:
        """Phase gates on the integration head. Failing after the last wave rolls the phase
        back (so does failing earlier with on_failure: rollback); otherwise a failure stops the
        phase: the reason is returned."""
        if not self._phase.gates:
            return None
        assert self._status.head_sha is not None
        result = await workflow.execute_activity_method(
            GateActivities.run_gates,
            GateRunInput(
                repo_path=self._input.repo_path,
                run_id=self._input.run_id,
                label=f"phase-wave-{number}",
                commit_sha=self._status.head_sha,
                gates=self._phase.gates,
            ),
            start_to_close_timeout=timedelta(
                seconds=sum(g.timeout_s for g in self._phase.gates) + 120
            ),
            heartbeat_timeout=self._heartbeat,
            retry_policy=GIT_RETRY,
            summary=f"phase gates after wave {number}",
        )
        self._status.phase_gates = result.results
        for gate in result.results:
            passed = gate.status == "passed"
            self._journal.event(
                EventType.PHASE_GATE_PASSED if passed else EventType.PHASE_GATE_FAILED,
                f"phase gate {gate.gate_id} {gate.status} after wave {number}",
                wave=number,
                gate_id=gate.gate_id,
            )
        failure = result.first_failure
        if failure is None:
            return None
        reason = f"phase gate {failure.gate_id} {failure.reason} after wave {number}"
        if last or self._phase.on_failure == "rollback":
            self._rollback = RollbackRequest(to_wave=0, reason=reason)
            return None
        return reason

    # -- saga ----------------------------------------------------------------------------------

    async def _roll_back(self, request: RollbackRequest) -> None:
        to_wave = request.to_wave or 0
        self._journal.event(
            EventType.COMPENSATION_STARTED,
            f"rolling back to {'the base' if not to_wave else f'wave {to_wave}'}: {request.reason}",
            wave=to_wave,
        )
        head = self._saga.checkpoint(to_wave)
        failures = await self._saga.unwind(to_wave)
        if head is not None:
            self._status.head_sha = head
        mark_rolled_back(
            self._status, list(self._ledger.values()), self._journal, to_wave, request.reason,
            self._written,
        )  # fmt: skip
        self._journal.event(
            EventType.COMPENSATION_COMPLETED,
            "rollback complete" + (f" with {len(failures)} failed steps" if failures else ""),
            failures=failures,
        )
        if failures:
            request.reason += f"; compensation failed: {'; '.join(failures)}"
        self._show()

    # -- the journal ---------------------------------------------------------------------------

    async def _write_journal(self, *, everything: bool = False) -> None:
        """Write out what can no longer change in place — the ledger entries of finished
        workstreams, the events and moves so far — once there is a batch of it (or
        ``everything``). The phase then holds only references, so its memory, its queries
        and the report's input stay small however long the run."""
        held = len(self._ledger) + len(self._journal.events) + len(self._journal.moves)
        if not everything and held < self._input.options.journal_batch:
            return
        if not workflow.patched(WRITE_JOURNAL):
            return
        final = [e for e in self._ledger.values() if self._ws(e.workstream_id).status not in LIVE]
        events = sorted(self._journal.events, key=lambda e: e.event_id)
        moves = list(self._journal.moves)
        records = [
            *(JournalRecord(entry=e) for e in final),
            *(JournalRecord(move=m) for m in moves),
            *(JournalRecord(event=e) for e in events),
        ]
        if not records:
            return
        lines = [r.model_dump_json(exclude_none=True) for r in records]
        self._status.journal += await self._write_parts(pack_lines(lines), "journal")
        for entry in final:
            del self._ledger[entry.patch_id]
            self._written[entry.patch_id] = (entry.workstream_id, entry.state)
        # Handlers may have added events while the parts were written: keep those.
        done = {e.event_id for e in events}
        self._journal.events[:] = [e for e in self._journal.events if e.event_id not in done]
        del self._journal.moves[: len(moves)]

    async def _write_parts(self, parts: list[str], what: str) -> list[ArtifactRef]:
        return list(await asyncio.gather(*(
            workflow.execute_activity_method(
                PartActivities.store_part, PartText(text=part),
                start_to_close_timeout=QUICK, heartbeat_timeout=self._heartbeat,
                retry_policy=GIT_RETRY, summary=f"write {what} part {n + 1} of {len(parts)}",
            )
            for n, part in enumerate(parts)
        )))  # fmt: skip

    async def _read_parts(self, refs: list[ArtifactRef]) -> str:
        texts = await asyncio.gather(*(
            workflow.execute_activity_method(
                PartActivities.load_part, ref,
                start_to_close_timeout=QUICK, heartbeat_timeout=self._heartbeat,
                retry_policy=GIT_RETRY, summary=f"read part {n + 1} of {len(refs)}",
            )
            for n, ref in enumerate(refs)
        ))  # fmt: skip
        return "".join(t.text for t in texts)

    # -- continue-as-new -----------------------------------------------------------------------

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._input.options.continue_as_new_events
        long = info.is_continue_as_new_suggested() or (
            limit is not None and info.get_current_history_length() >= limit
        )
        return long and workflow.patched(CONTINUE_AS_NEW)

    async def _continue_as_new(self, next_wave: int) -> NoReturn:
        """Go on from ``next_wave`` in a fresh execution (same workflow id, so the Web UI, the
        CLI and result() follow it), its state passed by reference."""
        await self._write_journal(everything=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        carry = PhaseCarry(
            status=self._status,
            next_wave=next_wave,
            ledger=list(self._ledger.values()),
            written=self._written,
            checkpoints=self._checkpoints,
            executions=self._executions,
            completed_order=self._completed_order,
            history=self._history,
            raised=self._raised,
            budget_warned=self._budget_warned,
            budget_closed=self._budget_closed,
            tool_failures=self._router.failures,
            circuits_open_until=self._router.open_until,
            indexed_status=self._indexed_status,
            remaining=self._remaining,
        )
        resume = await self._write_parts(split(carry.model_dump_json()), "state")
        workflow.logger.info(
            f"continuing as new before wave {next_wave} "
            f"({workflow.info().get_current_history_length()} events)"
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # -- the end -------------------------------------------------------------------------------

    async def _finish(
        self, *, reason: str | None = None, state: PhaseState | None = None
    ) -> RunStatus:
        self._finishing = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        failed = reason is not None or any(
            s.status in ENDED for s in self._status.workstreams.values()
        )
        if state is None:
            state = PhaseState.FAILED if failed else PhaseState.COMPLETED
        self._status.status = state
        self._status.reason = reason or (self._summary_of_failures() if failed else None)
        kind = {
            PhaseState.COMPLETED: EventType.RUN_COMPLETED,
            PhaseState.ROLLED_BACK: EventType.RUN_ROLLED_BACK,
            PhaseState.CANCELED: EventType.RUN_CANCELED,
        }.get(state, EventType.RUN_FAILED)
        self._journal.event(
            kind, f"run {state}" + (f": {self._status.reason}" if self._status.reason else "")
        )
        self._show()
        closed = await workflow.execute_activity_method(
            WorkspaceActivities.close_run,
            CloseRunInput(
                record=self._status,
                ledger=list(self._ledger.values()),
                events=sorted(self._journal.events, key=lambda e: e.event_id),
                moves=self._journal.moves,
            ),
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat,
            retry_policy=GIT_RETRY,
            summary="write the run report, clean up checkouts",
        )
        self._status.report_dir = closed.report_dir
        if state in (PhaseState.FAILED, PhaseState.ROLLED_BACK):
            # A failed phase is a failed execution in the Web UI; the record rides along.
            raise ApplicationError(
                f"phase {self._phase.phase_id} {state}: {self._status.reason}",
                self._status.model_dump(mode="json"),
                type="PhaseFailed",
                non_retryable=True,
            )
        return self._status

    # -- state ---------------------------------------------------------------------------------

    def _ws(self, ws_id: str) -> WorkstreamStatus:
        return self._status.workstreams[ws_id]

    def _set(self, ws_id: str, state: WorkstreamState, commit: str | None = None) -> None:
        entry = self._ws(ws_id)
        entry.status = state
        if commit is not None:
            entry.commit = commit
        self._show()

    def _fail(
        self, ws_id: str, reason: str, state: WorkstreamState = WorkstreamState.FAILED
    ) -> None:
        """End a workstream and block everything downstream of it (never run)."""
        entry = self._ws(ws_id)
        entry.status = state
        entry.reason = reason
        word = "was dropped" if state == WorkstreamState.DROPPED else "failed"
        stack = [(dependent, ws_id) for dependent in self._dependents[ws_id]]
        while stack:
            dependent, via = stack.pop()
            blocked = self._ws(dependent)
            if blocked.status == WorkstreamState.PENDING:
                blocked.status = WorkstreamState.BLOCKED
                blocked.reason = (
                    f"dependency {via} {word}"
                    if via == ws_id
                    else f"dependency {via} is blocked by {ws_id}, which {word}"
                )
                self._journal.event(
                    EventType.WORKSTREAM_BLOCKED, f"{dependent} blocked: {blocked.reason}",
                    workstream_id=dependent,
                )  # fmt: skip
                stack.extend((after, dependent) for after in self._dependents[dependent])
        self._show()

    def _block_all_pending(self, reason: str) -> None:
        for ws_id, entry in self._status.workstreams.items():
            if entry.status == WorkstreamState.PENDING:
                entry.status = WorkstreamState.BLOCKED
                entry.reason = reason
                self._journal.event(
                    EventType.WORKSTREAM_BLOCKED, f"{ws_id} blocked: {reason}", workstream_id=ws_id
                )

    def _summary_of_failures(self) -> str:
        parts = []
        for state in ENDED:
            names = [w for w, s in self._status.workstreams.items() if s.status == state]
            if names:
                parts.append(f"{state}: {', '.join(names)}")
        return "; ".join(parts)

    def _show(self) -> None:
        """Live status for the Web UI (current details) and for search."""
        if self._status.status in (PhaseState.RUNNING, PhaseState.AWAITING_REVIEW):
            waiting = bool(self._desk.pending())
            self._status.status = PhaseState.AWAITING_REVIEW if waiting else PhaseState.RUNNING
        workflow.set_current_details(
            details.render(self._phase.phase_id, self._status, self._desk.pending())
        )
        status = str(self._status.status)
        if self._input.options.search_attributes and status != self._indexed_status:
            # One history event per phase state change, not per workstream change.
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])
            self._indexed_status = status

    def _child_search_attributes(self) -> TypedSearchAttributes | None:
        if not self._input.options.search_attributes:
            return None
        return TypedSearchAttributes(
            [
                SearchAttributePair(search.RUN_ID, self._input.run_id),
                SearchAttributePair(search.PHASE_ID, self._phase.phase_id),
            ]
        )

    def _timestamp(self) -> int:
        return int(workflow.time_ns() // 1_000_000_000)
