"""A phase run: plan → waves of workstream children → integrate in a fixed order → checkpoint.

The integration branch only ever moves here, one wave at a time, so every workstream of wave
N+1 starts from a head that contains all of wave N's merged work.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

from workflows import search
from workflows.failures import cause_message
from workflows.ids import IdFactory
from workflows.journal import Journal
from workflows.workstream import WorkstreamWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.planning import plan
    from activities.workspace import WorkspaceActivities
    from schemas.base import ArtifactRef
    from schemas.events import EventType
    from schemas.gates import GateRunInput
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
    from schemas.run import (
        PhaseState,
        RunInput,
        RunStatus,
        WorkstreamInput,
        WorkstreamResult,
        WorkstreamState,
        WorkstreamStatus,
    )
    from schemas.workspace import CloseRunInput, IntegrateInput, MergeRequest, OpenRunInput

GIT_RETRY = RetryPolicy(maximum_attempts=5)
QUICK = timedelta(minutes=5)


@workflow.defn
class PhaseWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        self._phase = input.phase
        self._status = RunStatus(
            run_id=input.run_id,
            workflow_id=workflow.info().workflow_id,
            phase_id=input.phase.phase_id,
            integration_branch=integration_branch(input.run_id),
            workstreams={
                ws.workstream_id: WorkstreamStatus(
                    wave=0, branch=workstream_branch(input.run_id, ws.workstream_id)
                )
                for ws in input.phase.workstreams
            },
        )
        self._journal = Journal(input.run_id, IdFactory())
        self._ledger: dict[str, LedgerEntry] = {}  # patch_id → entry, from finished children
        self._history: ArtifactRef | None = None  # what has been integrated (oscillation)
        self._indexed_status = str(PhaseState.RUNNING)  # the starter sets it at start
        self._dependents: dict[str, list[str]] = {
            ws.workstream_id: [] for ws in input.phase.workstreams
        }
        for ws in input.phase.workstreams:
            for dep in ws.dependencies:
                self._dependents[dep].append(ws.workstream_id)

    @workflow.query
    def status(self) -> RunStatus:
        return self._status

    @workflow.query
    def ledger(self) -> list[LedgerEntry]:
        """Every patch of the workstreams that have finished (running ones answer their own)."""
        return list(self._ledger.values())

    @workflow.run
    async def run(self, input: RunInput) -> RunStatus:
        self._journal.event(EventType.RUN_STARTED, f"run of phase {self._phase.phase_id}")
        try:
            the_plan = await workflow.execute_activity(
                plan, PlanInput(phase=self._phase), start_to_close_timeout=QUICK,
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
                retry_policy=GIT_RETRY,
                summary="open the run: resolve base, create the integration branch",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            return await self._finish(f"could not start: {cause_message(err)}")
        self._status.base_sha = self._status.head_sha = opened.base_sha

        for number, wave in enumerate(the_plan.waves, start=1):
            self._status.current_wave = number
            ready = [w for w in wave if self._ws(w).status == WorkstreamState.PENDING]
            self._journal.event(
                EventType.WAVE_STARTED, f"wave {number}: {', '.join(ready) or 'nothing to run'}",
                wave=number,
            )  # fmt: skip
            results = await self._run_wave(ready, number)
            await self._integrate(number, results)
            gate_failure = await self._phase_gates(number)
            if gate_failure:
                self._block_all_pending(gate_failure)
                return await self._finish(gate_failure)
        return await self._finish()

    # -- steps ---------------------------------------------------------------------------------

    def _apply_plan(self, the_plan: Plan) -> None:
        self._status.waves = the_plan.waves
        for number, wave in enumerate(the_plan.waves, start=1):
            for ws_id in wave:
                self._ws(ws_id).wave = number
        self._show()

    async def _run_wave(self, ready: list[str], number: int) -> list[WorkstreamResult]:
        head = self._status.head_sha
        assert head is not None
        slots = asyncio.Semaphore(self._phase.max_parallel)

        async def run_one(ws_id: str) -> WorkstreamResult:
            async with slots:
                self._set(ws_id, WorkstreamState.RUNNING)
                result = await self._run_child(ws_id, head, number)
            self._journal.events.extend(result.events)
            self._ledger.update((entry.patch_id, entry) for entry in result.ledger)
            if result.status == WorkstreamState.FAILED:
                self._fail(ws_id, result.reason or "failed")
            else:
                self._set(ws_id, WorkstreamState.COMPLETED, commit=result.commit)
            return result

        return list(await asyncio.gather(*(run_one(ws_id) for ws_id in ready)))

    async def _run_child(self, ws_id: str, head: str, number: int) -> WorkstreamResult:
        ws = self._phase.workstream(ws_id)
        try:
            return await workflow.execute_child_workflow(
                WorkstreamWorkflow.run,
                WorkstreamInput(
                    run_id=self._input.run_id,
                    repo_path=self._input.repo_path,
                    workstream=ws,
                    base_sha=head,
                    wave=number,
                    branch_ref=workstream_branch(self._input.run_id, ws_id),
                    patch_file=self._input.patch_files.get(ws_id),
                    run_history=self._history,
                    options=self._input.options,
                ),
                id=child_workflow_id(workflow.info().workflow_id, ws_id),
                static_summary=f"{ws_id}: {ws.title}" if ws.title else ws_id,
                search_attributes=self._child_search_attributes(),
            )
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                raise
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "WorkstreamFailed":
                return WorkstreamResult.model_validate(cause.details[0])
            return WorkstreamResult(
                workstream_id=ws_id, status=WorkstreamState.FAILED, reason=cause_message(err)
            )

    async def _integrate(self, number: int, results: list[WorkstreamResult]) -> None:
        """Merge the wave's verified workstreams in id order and tag the checkpoint."""
        merges = sorted(
            (
                MergeRequest(
                    workstream_id=r.workstream_id,
                    commit_sha=r.commit,
                    patch_id=r.patch.patch_id if r.patch else None,
                    reverse_fingerprint=r.patch.reverse_fingerprint if r.patch else None,
                )
                for r in results
                if r.status == WorkstreamState.COMPLETED and r.commit
            ),
            key=lambda m: m.workstream_id,
        )
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
            retry_policy=GIT_RETRY,
            summary=f"integrate wave {number} ({len(merges)} branches)",
        )
        self._status.head_sha = integrated.head_sha
        self._history = integrated.history
        patch_of = {m.workstream_id: m.patch_id for m in merges}
        for outcome in integrated.outcomes:
            entry = self._ledger.get(patch_of.get(outcome.workstream_id) or "")
            if outcome.merged:
                if entry is not None:
                    self._journal.move(
                        entry, PatchState.COMMITTED,
                        f"merged into {self._status.integration_branch} as "
                        f"{(outcome.merge_commit or '')[:12]}",
                    )  # fmt: skip
                continue
            reason = f"merge conflict in {', '.join(outcome.conflicts) or 'the integration branch'}"
            self._journal.event(
                EventType.MERGE_CONFLICT, f"{outcome.workstream_id}: {reason}",
                workstream_id=outcome.workstream_id, conflicts=outcome.conflicts,
            )  # fmt: skip
            if entry is not None:
                self._journal.move(entry, PatchState.APPLY_FAILED, reason)
            self._fail(outcome.workstream_id, reason)
        self._journal.event(
            EventType.WAVE_INTEGRATED,
            f"wave {number} integrated: {self._status.integration_branch} at "
            f"{integrated.head_sha[:12]}",
            wave=number,
            head_sha=integrated.head_sha,
        )
        self._show()

    async def _phase_gates(self, number: int) -> str | None:
        """Phase gates on the integration head; the reason the phase fails, if one fails."""
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
            heartbeat_timeout=timedelta(seconds=self._input.options.heartbeat_timeout_s),
            retry_policy=RetryPolicy(maximum_attempts=3),
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
        return f"phase gate {failure.gate_id} {failure.reason} after wave {number}"

    async def _finish(self, reason: str | None = None) -> RunStatus:
        failed = reason is not None or any(
            s.status in (WorkstreamState.FAILED, WorkstreamState.BLOCKED)
            for s in self._status.workstreams.values()
        )
        self._status.status = PhaseState.FAILED if failed else PhaseState.COMPLETED
        self._status.reason = reason or (self._summary_of_failures() if failed else None)
        self._journal.event(
            EventType.RUN_FAILED if failed else EventType.RUN_COMPLETED,
            f"run {self._status.status}" + (f": {self._status.reason}" if failed else ""),
        )
        self._show()
        closed = await workflow.execute_activity_method(
            WorkspaceActivities.close_run,
            CloseRunInput(
                record=self._status,
                ledger=list(self._ledger.values()),
                events=sorted(self._journal.events, key=lambda e: e.event_id),
            ),
            start_to_close_timeout=QUICK,
            retry_policy=GIT_RETRY,
            summary="write the run report, clean up checkouts",
        )
        self._status.report_dir = closed.report_dir
        if failed:
            # A failed phase is a failed execution in the Web UI; the record rides along.
            raise ApplicationError(
                f"phase {self._phase.phase_id} failed: {self._status.reason}",
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

    def _fail(self, ws_id: str, reason: str) -> None:
        """Fail a workstream and block everything downstream of it (never run)."""
        entry = self._ws(ws_id)
        entry.status = WorkstreamState.FAILED
        entry.reason = reason
        stack = [(dependent, ws_id) for dependent in self._dependents[ws_id]]
        while stack:
            dependent, via = stack.pop()
            blocked = self._ws(dependent)
            if blocked.status == WorkstreamState.PENDING:
                blocked.status = WorkstreamState.BLOCKED
                blocked.reason = (
                    f"dependency {via} failed"
                    if via == ws_id
                    else f"dependency {via} is blocked by failed {ws_id}"
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
        def having(state: WorkstreamState) -> list[str]:
            return [w for w, s in self._status.workstreams.items() if s.status == state]

        parts = []
        if failed := having(WorkstreamState.FAILED):
            parts.append(f"failed: {', '.join(failed)}")
        if blocked := having(WorkstreamState.BLOCKED):
            parts.append(f"blocked: {', '.join(blocked)}")
        return "; ".join(parts)

    def _show(self) -> None:
        """Live status for the Web UI (current details) and for search."""
        lines = [
            f"**{self._phase.phase_id}** — {self._status.status}, wave "
            f"{self._status.current_wave}/{len(self._status.waves)}",
            "",
            "| workstream | wave | status | commit |",
            "|---|---|---|---|",
        ]
        for ws_id, entry in self._status.workstreams.items():
            commit = entry.commit[:10] if entry.commit else ""
            lines.append(f"| {ws_id} | {entry.wave} | {entry.status} | {commit} |")
        workflow.set_current_details("\n".join(lines))
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
