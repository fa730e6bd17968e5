"""A phase run: plan → waves of workstream children → integrate in a fixed order → checkpoint.

The integration branch only ever moves between steps, so every workstream of wave N+1 starts
from a head that contains all of wave N's merged work. When a workstream needs a person the
phase asks and waits durably; when the phase must be abandoned its saga undoes every wave in
reverse, merges of finished workstreams included.

This module is the process; its parts own their slices of the one state model
(schemas/phase_state.py): the workstream board, the budget, integration, the journal's parts,
the review desk, the router and the saga.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import SANDBOXED
from workflows.board import LIVE, Board, new_record
from workflows.caches import prepare_caches
from workflows.failures import cause_message
from workflows.ids import IdFactory
from workflows.integration import Integration
from workflows.journal import Journal, JournalParts, carried_record
from workflows.notifier import Notifier
from workflows.publish import PUBLISH_AT_END, publish_at_end
from workflows.readiness import Readiness
from workflows.review import ReviewDesk
from workflows.runner import WorkstreamRunner
from workflows.saga import Saga
from workflows.slots import Slots
from workflows.steps import QUICK, Steps
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.lib.parts import DocumentReader, split
    from activities.planning import PlanningActivities
    from activities.workspace import WorkspaceActivities
    from schemas.base import ArtifactRef
    from schemas.events import NOTEWORTHY, EventType, RunEvent
    from schemas.ledger import LedgerEntry
    from schemas.phase_state import PhaseWorkflowState
    from schemas.plan import Plan, PlanInput
    from schemas.publish import PublishInput
    from schemas.review import DecisionPayload, ReviewAnswer, ReviewRequest
    from schemas.run import (
        TOOL_SLOT_UPDATE,
        PhaseState,
        RunDocument,
        RunInput,
        RunRecord,
        SlotGrant,
        SlotRequest,
        WaitingNote,
        WorkstreamResult,
        WorkstreamState,
    )
    from schemas.saga import RollbackRequest
    from schemas.spec import PhaseSpec
    from schemas.workspace import CloseRunInput

#: workflow.patched id: continue-as-new between waves when the history grows long (issue 7).
CONTINUE_AS_NEW = "continue-as-new-between-waves"
#: workflow.patched id: one undo step for a wave's workstream branches (issue 7).
WAVE_BRANCHES = "one-branch-undo-per-wave"
#: workflow.patched id: a large phase is read and validated a window of parts at a time
#: (issue 20): at 10,000 workstreams it takes longer than one workflow task may run.
PHASE_IN_SLICES = "phase-read-in-slices"
#: workflow.patched id: a record too large for a payload reaches close_run, publish and the
#: run's result as parts (issue 20): 10,000 workstreams make a 2 MB record.
RECORD_BY_REFERENCE = "record-by-reference"
#: workflow.patched id: in eager mode the workstream a finished one's slot goes to starts
#: before that one is merged (issue 20): the merge is a local activity, and the workflow task
#: that runs one sends no command (the start) until it is done.
START_BEFORE_INTEGRATING = "start-before-integrating"
#: workflow.patched id: the run is opened (base resolved, integration branch made) while it is
#: planned, not after (issue 20).
OPEN_WHILE_PLANNING = "open-while-planning"
#: workflow.patched id: a run of at most CLOSE_LOCALLY_UP_TO workstreams is closed (its
#: report written) by a local activity (issue 20).
CLOSE_LOCALLY = "close-run-locally"
CLOSE_LOCALLY_UP_TO = 100
#: workflow.patched id: in eager mode a finished workstream whose merge readies another keeps
#: its slot through the merge, for that one or a waiter, by priority (issue 20).
KEEP_SLOTS_FOR_DEPENDENTS = "keep-slots-for-dependents"
#: workflow.patched id: in eager mode the workstreams that have finished by the time a merge
#: runs are integrated together, in workstream-id order, as one step (issue 20): each merge
#: was a local activity of its own, and the workflow task ran them one after another.
INTEGRATE_TOGETHER = "integrate-finished-together"


@workflow.defn(sandboxed=SANDBOXED)
class PhaseWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        # A large phase, or a continued run's state, arrives by reference and is read first
        # thing in run(); until then queries see a run with no workstreams.
        placeholder = PhaseSpec.model_construct(phase_id="", workstreams=[])
        self._setup(input.phase or placeholder, input.patch_files)

    def _setup(
        self,
        phase: PhaseSpec,
        patch_files: dict[str, ArtifactRef],
        state: PhaseWorkflowState | None = None,
    ) -> None:
        input = self._input
        self._phase = phase
        self._state = state or PhaseWorkflowState(record=new_record(input, phase))
        self._rollback: RollbackRequest | None = None
        self._finishing = False  # past the point where a rollback request is acted on
        self._tasks: list[asyncio.Task[WorkstreamResult]] = []  # every workstream task started
        record = self._state.record
        steps = Steps(timedelta(seconds=input.options.heartbeat_timeout_s))
        self._steps = steps
        self._journal = journal = Journal(input.run_id, IdFactory())
        self._board = board = Board(self._state, phase, journal, input.options)
        self._desk = ReviewDesk(
            input.run_id, phase, journal, board.show, nobody=input.options.no_review
        )
        self._desk.records = record.reviews
        self._notifier = Notifier(phase, record)
        if self._notifier.wanted:
            journal.listeners.append(self._notifier.saw)
        self._slots = Slots(phase.max_parallel, phase.ahead_places)
        self._saga = Saga(record, journal, steps)
        self._integration = Integration(
            self._state, phase, input, board, journal, self._saga, steps
        )
        self._parts = JournalParts(
            journal,
            self._state,
            steps,
            input.options.journal_batch,
            live=lambda ws_id: board.ws(ws_id).status in LIVE,
        )
        self._runner = WorkstreamRunner(
            self._state,
            phase,
            input,
            patch_files,
            board=board,
            integration=self._integration,
            desk=self._desk,
            saga=self._saga,
            journal=journal,
            slots=self._slots,
            rolling_back=lambda: self._rollback is not None,
            roll_back=self._request_rollback,
        )

    def _request_rollback(self, request: RollbackRequest) -> None:
        self._rollback = request

    # -- messages ------------------------------------------------------------------------------

    @workflow.query
    def status(self) -> RunRecord:
        return self._state.record

    @workflow.query
    def ledger(self) -> list[LedgerEntry]:
        """The patches of finished workstreams not yet written out (``status().journal`` has
        the rest; running workstreams answer their own)."""
        return list(self._state.ledger.values())

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
        return self._desk.decide(self._desk.check(payload))

    @submit_review.validator
    def _check_review(self, payload: DecisionPayload) -> None:
        self._desk.check(payload)  # a ValueError goes to the caller; nothing reaches history

    @workflow.signal
    def review_decision(self, payload: DecisionPayload) -> None:
        """The same decision as a signal (``temporal workflow signal``, the Web UI). A bad one
        is logged in one line and ignored: a signal cannot be refused, and must never crash
        the run."""
        try:
            decision = self._desk.check(payload)
        except ValueError as problem:
            workflow.logger.warning(f"review_decision signal ignored: {problem}")
            return
        self._desk.decide(decision)

    @workflow.signal
    def workstream_waiting(self, note: WaitingNote) -> None:
        """A workstream's tool run waits (no worker offers the tool, say): shown in its
        status until it goes on. Sent by the workstream itself, only while it waits."""
        self._board.waiting(note.workstream_id, note.note)

    @workflow.update(name=TOOL_SLOT_UPDATE)
    async def tool_slot(self, request: SlotRequest) -> SlotGrant:
        """A workstream started ahead of its slot has its checkout ready: the answer comes
        when a slot is its (its tool starts then), or when its claim is given up."""
        granted = await self._slots.granted(request.child_workflow_id)
        return SlotGrant(granted=granted and self._rollback is None)

    @workflow.update
    def rollback(self, request: RollbackRequest) -> RunRecord:
        self._rollback = request
        return self._state.record

    @rollback.validator
    def _check_rollback(self, request: RollbackRequest) -> None:
        if self._rollback is not None:
            raise ValueError("a rollback is already under way")
        if self._finishing:
            raise ValueError("the run is finishing; roll it back once it has ended")
        record = self._state.record
        if request.to_wave and request.to_wave >= record.current_wave:
            raise ValueError(
                f"--to-wave {request.to_wave}: the run is in wave {record.current_wave} "
                f"of {len(record.waves)}; only finished waves can be kept"
            )

    # -- the run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RunInput) -> RunRecord:
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
            if patched(PHASE_IN_SLICES):
                reader = DocumentReader()
                await self._parts.read_each(input.document, reader.add)
                document = reader.document()
            else:
                document = RunDocument.model_validate_json(await self._parts.read(input.document))
            phase, patch_files = document.phase, document.patch_files
        assert phase is not None, "the starter gives a phase inline or as a document"
        state = None
        if input.resume:
            state = PhaseWorkflowState.model_validate_json(await self._parts.read(input.resume))
        self._setup(phase, patch_files, state)

    async def _run_phase(self, input: RunInput) -> RunRecord:
        eager = self._phase.scheduling == "eager"
        if resume_at := self._state.next_wave:
            # Continued between steps: planned, opened and integrated up to here already.
            stop = await (
                self._run_eager(first=resume_at)
                if eager
                else self._run_waves(self._state.record.waves, first=resume_at)
            )
            return await self._conclude(stop)
        try:
            given = {"document": input.document} if input.document else {"phase": self._phase}
            # The run id only changes the activity's input, not the commands: replay is the same.
            planning = PlanInput.model_validate({**given, "run_id": input.run_id})
            planned = self._steps.run(
                PlanningActivities.plan, planning, QUICK, summary="plan the DAG into waves"
            )
            if patched(OPEN_WHILE_PLANNING):
                # Neither needs the other: one round trip through the server, not two. Both
                # end before a failure of either is raised (no step is left running).
                plan, opened = await asyncio.gather(
                    planned, self._integration.open_run(), return_exceptions=True
                )
                for failed in (plan, opened):
                    if isinstance(failed, BaseException):
                        raise failed
                assert isinstance(plan, Plan)
                self._board.apply_plan(plan)
            else:
                plan = await planned
                self._board.apply_plan(plan)
                await self._integration.open_run()
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return await self._finish(reason=f"could not start: {cause_message(err)}")
        # Before any tool: each workspace's setup once, its caches ready for every workstream.
        self._state.unprepared = await prepare_caches(
            self._phase,
            self._steps,
            self._journal,
            repo_path=input.repo_path,
            run_id=input.run_id,
            base=self._integration.head,
        )
        stop = await (self._run_eager() if eager else self._run_waves(plan.waves))
        return await self._conclude(stop)

    async def _conclude(self, stop: str | None) -> RunRecord:
        if self._rollback is not None:
            await self._roll_back(self._rollback)
            return await self._finish(state=PhaseState.ROLLED_BACK, reason=self._rollback.reason)
        if stop is not None:  # a phase gate failed before the end
            self._board.block_all_pending(stop)
            return await self._finish(reason=stop)
        return await self._finish()

    async def _run_waves(self, waves: list[list[str]], first: int = 1) -> str | None:
        """Each wave runs whole, then is integrated in workstream-id order."""
        board, runner, integration = self._board, self._runner, self._integration
        for number, wave in enumerate(waves, start=1):
            if number < first:
                continue
            self._state.record.current_wave = number
            ready = [w for w in wave if board.ws(w).status == WorkstreamState.PENDING]
            self._journal.event(
                EventType.WAVE_STARTED,
                f"wave {number}: {', '.join(ready) or 'nothing to run'}",
                wave=number,
            )
            integration.push_checkpoint(number)
            if ready and patched(WAVE_BRANCHES):
                # One undo step for all the wave's branches rather than one each: the saga
                # stack, and with it the run record, stays small in very large phases.
                self._saga.push(
                    "delete_branches",
                    number,
                    f"delete the branches of wave {number}",
                    workstream_ids=ready,
                )
                runner.branch_undo.update(ready)
            tasks = [
                asyncio.create_task(runner.run(ws_id, integration.head, number, self._slots))
                for ws_id in ready
            ]
            self._tasks += tasks
            results = [await task for task in tasks]
            if self._rollback is None:
                for result, outcome in await integration.integrate(number, results):
                    await runner.settle_conflict(number, result, outcome)
            stop = await self._after_step(number, last=number == len(waves))
            if self._rollback is not None or stop is not None:
                return stop
            await self._parts.write_out()
            if number < len(waves) and self._history_is_long():
                await self._continue_as_new(next_wave=number + 1)
        return None

    async def _run_eager(self, first: int = 1) -> str | None:
        """A workstream starts as soon as its dependencies are integrated, from the head at
        that moment; each one is integrated the moment it finishes, together with the others
        that have finished by then (in workstream-id order, so the history is deterministic
        given the completion order). Each integration is a step: a checkpoint, a point to
        roll back to, and a run of the phase gates.

        When the history grows long, no new workstream starts; once the running ones are
        integrated the run continues as new from the next step."""
        board, runner, integration = self._board, self._runner, self._integration
        statuses = self._state.record.workstreams
        # Completed means integrated here (or nothing to integrate): a conflict re-runs it.
        readiness = Readiness(
            self._phase, {w for w, s in statuses.items() if s.status == WorkstreamState.COMPLETED}
        )
        running: dict[str, asyncio.Task[WorkstreamResult]] = {}
        step = first - 1
        draining = False
        kept: set[str] = set()  # finished ones whose slots wait for what their merge readies
        while True:
            if self._rollback is None and not draining:
                ready = [
                    w
                    for w in readiness.frontier
                    if statuses[w].status == WorkstreamState.PENDING and w not in running
                ]
                for ws_id in sorted(ready, key=lambda w: (board.priority(w), w)):
                    running[ws_id] = asyncio.create_task(
                        runner.run(ws_id, integration.head, step + 1, self._slots)
                    )
                    self._tasks.append(running[ws_id])
            # Given back once what they readied is asking for one too (its first step runs
            # before any slot is handed out): the waiters and it, by priority.
            self._slots.give_back(len(kept))
            kept.clear()
            if not running:
                if draining and board.pending():
                    await self._continue_as_new(next_wave=step + 1)
                return None
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            finished = sorted(w for w, task in running.items() if task.done())
            if self._rollback is None and patched(KEEP_SLOTS_FOR_DEPENDENTS):
                # A workstream its merge readies (the next of a chain) would find its slot
                # taken by one that waited meanwhile: the slot is kept for the merge. Here,
                # before any slot is handed out in this workflow task.
                kept = {w for w in finished if self._readies(running[w].result(), readiness)}
                self._slots.hold(len(kept))
            if patched(INTEGRATE_TOGETHER):
                merging = self._to_merge(finished, running, readiness)
                if not merging:
                    continue
                if patched(START_BEFORE_INTEGRATING) and any(
                    r.workstream_id not in kept for r in merging
                ):
                    # The slots they freed first: their next holders are started in this
                    # workflow task, the merge in the next (the starts' own).
                    await workflow.wait_condition(
                        lambda: not self._slots.handing() and not runner.starting
                    )
                # Those that finished meanwhile go in the same step: one local activity, one
                # checkpoint and one run of the phase gates for all of them.
                late = sorted(w for w, task in running.items() if task.done())
                if self._rollback is None and patched(KEEP_SLOTS_FOR_DEPENDENTS):
                    also = {w for w in late if self._readies(running[w].result(), readiness)}
                    self._slots.hold(len(also))
                    kept |= also
                merging += self._to_merge(late, running, readiness)
                step += 1
                stop = await self._integrate_step(step, merging, readiness, running)
                ended, draining = await self._step_done(stop, draining)
                if ended:
                    return await self._abandon(running, len(kept), stop)
                continue
            for ws_id in finished:
                result = running.pop(ws_id).result()
                if self._rollback is not None or result.status != WorkstreamState.COMPLETED:
                    continue
                if result.commit is None:  # nothing to integrate: done as it is
                    readiness.merged(ws_id)
                    continue
                if ws_id not in kept and patched(START_BEFORE_INTEGRATING):
                    # The slot it freed first: its next holder is started in this workflow
                    # task, the merge in the next (the start's own), while that child runs.
                    await workflow.wait_condition(
                        lambda: not self._slots.handing() and not runner.starting
                    )
                step += 1
                stop = await self._integrate_step(step, [result], readiness, running)
                ended, draining = await self._step_done(stop, draining)
                if ended:
                    return await self._abandon(running, len(kept), stop)

    def _to_merge(
        self,
        finished: list[str],
        running: dict[str, asyncio.Task[WorkstreamResult]],
        readiness: Readiness,
    ) -> list[WorkstreamResult]:
        """The finished ones (taken from ``running``) that have a commit to integrate; one
        with nothing to integrate is done as it is."""
        merging = []
        for ws_id in finished:
            result = running.pop(ws_id).result()
            if self._rollback is not None or result.status != WorkstreamState.COMPLETED:
                continue
            if result.commit is None:
                readiness.merged(ws_id)
                continue
            merging.append(result)
        return merging

    async def _integrate_step(
        self,
        step: int,
        merging: list[WorkstreamResult],
        readiness: Readiness,
        running: dict[str, asyncio.Task[WorkstreamResult]],
    ) -> str | None:
        """One eager step: ``merging`` integrated (in workstream-id order) and the phase gates
        run on the new head. The reason the phase stops, if it does."""
        self._state.record.current_wave = step
        self._integration.push_checkpoint(step)
        for conflicted, outcome in await self._integration.integrate(step, merging):
            await self._runner.settle_conflict(step, conflicted, outcome)
        for result in merging:
            if self._board.ws(result.workstream_id).status == WorkstreamState.COMPLETED:
                readiness.merged(result.workstream_id)
        return await self._after_step(step, last=not running and not self._board.pending())

    async def _step_done(self, stop: str | None, draining: bool) -> tuple[bool, bool]:
        """After a step: unless the phase stops there, its parts written out and whether the
        history is long enough to drain. Whether the phase ends here, and whether it drains."""
        if stop is None and self._rollback is None:
            await self._parts.write_out()
            draining = draining or self._history_is_long()
        return self._rollback is not None or stop is not None, draining

    async def _abandon(
        self, running: dict[str, asyncio.Task[WorkstreamResult]], kept: int, stop: str | None
    ) -> str | None:
        """The phase stops (or rolls back) here: the workstreams still running are cancelled
        and the slots kept for dependents given back."""
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        self._slots.give_back(kept)
        return stop

    @staticmethod
    def _readies(result: WorkstreamResult, readiness: Readiness) -> bool:
        """Its merge, if it goes in, makes another workstream ready."""
        return (
            result.status == WorkstreamState.COMPLETED
            and result.commit is not None
            and readiness.readies(result.workstream_id)
        )

    async def _after_step(self, number: int, last: bool) -> str | None:
        """Phase gates, and on_failure: rollback. The reason the phase stops, if it does."""
        if self._rollback is not None:
            return None
        stop, roll_back = await self._integration.phase_gates(number, last=last)
        if stop is not None and roll_back:
            self._rollback = RollbackRequest(to_wave=0, reason=stop)
            stop = None
        if self._rollback is None and self._phase.on_failure == "rollback":
            failed = self._board.ended()
            if failed:
                self._rollback = RollbackRequest(
                    to_wave=0, reason=f"on_failure: rollback ({', '.join(failed)} failed)"
                )
        return stop

    async def _roll_back(self, request: RollbackRequest) -> None:
        state = self._state
        request.reason = await self._saga.roll_back(
            state.record,
            list(state.ledger.values()),
            request.to_wave or 0,
            request.reason,
            state.written,
        )
        self._board.show()

    # -- continue-as-new -----------------------------------------------------------------------

    def _history_is_long(self) -> bool:
        info = workflow.info()
        limit = self._input.options.continue_as_new_events
        long = info.is_continue_as_new_suggested() or (
            limit is not None and info.get_current_history_length() >= limit
        )
        return long and patched(CONTINUE_AS_NEW)

    async def _continue_as_new(self, next_wave: int) -> NoReturn:
        """Go on from ``next_wave`` in a fresh execution (same workflow id, so the Web UI, the
        CLI and result() follow it), its state passed whole, by reference."""
        await self._parts.write_out(everything=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notifier.drain()  # a notification in flight would die with this execution
        self._state.next_wave = next_wave
        resume = await self._parts.write(split(self._state.model_dump_json()), "state")
        workflow.logger.info(
            f"continuing as new before wave {next_wave} "
            f"({workflow.info().get_current_history_length()} events)"
        )
        workflow.continue_as_new(self._input.model_copy(update={"resume": resume}))

    # -- the end -------------------------------------------------------------------------------

    async def _finish(
        self, *, reason: str | None = None, state: PhaseState | None = None
    ) -> RunRecord:
        self._finishing = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        record = self._state.record
        failed = reason is not None or bool(self._board.ended())
        if state is None:
            state = PhaseState.FAILED if failed else PhaseState.COMPLETED
        record.status = state
        record.reason = reason or (self._board.summary_of_failures() if failed else None)
        kind = {
            PhaseState.COMPLETED: EventType.RUN_COMPLETED,
            PhaseState.ROLLED_BACK: EventType.RUN_ROLLED_BACK,
            PhaseState.CANCELED: EventType.RUN_CANCELED,
        }.get(state, EventType.RUN_FAILED)
        self._journal.event(kind, f"run {state}" + (f": {record.reason}" if record.reason else ""))
        self._board.show()
        forge = self._phase.forge
        tells_issues = (
            forge is not None
            and forge.comment_issues
            and any(ws.issue for ws in self._phase.workstreams)
        )
        if (
            forge is not None
            and forge.publish
            and (state == PhaseState.COMPLETED or (state == PhaseState.FAILED and tells_issues))
            and patched(PUBLISH_AT_END)
        ):
            # Before the report is written, so that it and the record name the pull request.
            # A failed run opens none; its issues, if it has any, still hear how it went.
            publishing = PublishInput.of(
                self._phase,
                await self._carried(record),
                list(self._state.ledger.values()),
                open_pull_requests=state == PhaseState.COMPLETED,
            )
            await publish_at_end(self._steps, self._journal, publishing)
        carried = await self._carried(record)
        closed = await self._steps.run(
            WorkspaceActivities.close_run,
            CloseRunInput(
                record=carried,
                ledger=list(self._state.ledger.values()),
                events=sorted(self._journal.events, key=lambda e: e.event_id),
                moves=self._journal.moves,
            ),
            QUICK,
            summary="write the run report, clean up checkouts",
            # A small run's report is written inside this workflow task: no round trip
            # through the server before the run ends. A large one's takes a while, and
            # queries wait while a local activity runs.
            local=len(self._phase.workstreams) <= CLOSE_LOCALLY_UP_TO and patched(CLOSE_LOCALLY),
        )
        record.report_dir = carried.report_dir = closed.report_dir
        await self._notifier.drain()
        if state in (PhaseState.FAILED, PhaseState.ROLLED_BACK):
            # A failed phase is a failed execution in the Web UI; the record rides along.
            raise ApplicationError(
                f"phase {self._phase.phase_id} {state}: {record.reason}",
                carried.model_dump(mode="json"),
                type="PhaseFailed",
                non_retryable=True,
            )
        return carried

    async def _carried(self, record: RunRecord) -> RunRecord:
        """``record`` as a payload may carry it: by reference when it is too large."""
        return await carried_record(self._steps, record, RECORD_BY_REFERENCE)
