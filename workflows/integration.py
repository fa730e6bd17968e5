"""Integration: merging finished workstreams into the run's integration branch in a fixed
order, the checkpoint (tag, rollback point) of each wave or eager step, and the phase gates
on the new head.

The integration branch only ever moves here, and each undo is pushed on the saga stack
before the move it undoes (a move can take effect and still report failure).
"""

from __future__ import annotations

from temporalio import workflow

from workflows.board import Board
from workflows.journal import Journal
from workflows.saga import Saga
from workflows.steps import QUICK, Steps, gates
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.gates import GateActivities
    from activities.workspace import WorkspaceActivities
    from schemas.events import EventType
    from schemas.gates import GateRunInput
    from schemas.ledger import PatchState
    from schemas.phase_state import PhaseWorkflowState
    from schemas.refs import branch_ref, tag_ref, wave_tag
    from schemas.run import RunInput, WorkstreamResult, WorkstreamState
    from schemas.spec import PhaseSpec
    from schemas.workspace import IntegrateInput, MergeOutcome, MergeRequest, OpenRunInput


#: workflow.patched id: an eager step's integration is a local activity (issue 20).
INTEGRATE_LOCALLY = "integrate-eager-step-locally"


class Integration:
    def __init__(
        self,
        state: PhaseWorkflowState,
        phase: PhaseSpec,
        input: RunInput,
        board: Board,
        journal: Journal,
        saga: Saga,
        steps: Steps,
    ) -> None:
        self.state = state
        self.record = state.record
        self.phase = phase
        self.input = input
        self.board = board
        self.journal = journal
        self.saga = saga
        self.steps = steps

    @property
    def head(self) -> str:
        assert self.record.head_sha is not None
        return self.record.head_sha

    async def open_run(self) -> None:
        """Resolve the base and create the integration branch there: checkpoint 0."""
        opened = await self.steps.run(
            WorkspaceActivities.open_run,
            OpenRunInput(
                repo_path=self.input.repo_path,
                run_id=self.input.run_id,
                base_ref=self.phase.base_ref,
                integration_ref=branch_ref(self.record.integration_branch),
            ),
            QUICK,
            summary="open the run: resolve base, create the integration branch",
        )
        self.record.base_sha = self.record.head_sha = opened.base_sha
        self.state.checkpoints[0] = opened.base_sha

    def push_checkpoint(self, number: int) -> None:
        """Compensations for the merge and the tag of step (wave) ``number``, pushed before
        them: they may happen and still report failure."""
        self.saga.push(
            "reset_ref",
            number,
            f"reset {self.record.integration_branch} to step {number - 1}",
            ref=branch_ref(self.record.integration_branch),
            to_sha=self.head,
        )
        tag = tag_ref(wave_tag(self.input.run_id, number))
        self.saga.push("delete_ref", number, f"delete tag wave-{number}", ref=tag)

    async def integrate(
        self, number: int, results: list[WorkstreamResult]
    ) -> list[tuple[WorkstreamResult, MergeOutcome]]:
        """Merge the completed ones in workstream-id order and tag the checkpoint; the ones
        that conflict (even as a 3-way merge) are returned."""
        merges = sorted(
            (
                self.merge_request(r)
                for r in results
                if r.status == WorkstreamState.COMPLETED and r.commit
            ),
            key=lambda m: m.workstream_id,
        )
        outcomes = await self.merge(number, merges)
        self.journal.event(
            EventType.WAVE_INTEGRATED,
            f"wave {number} integrated: {self.record.integration_branch} at "
            f"{(self.record.head_sha or '')[:12]}",
            wave=number,
            head_sha=self.record.head_sha,
        )
        by_id = {r.workstream_id: r for r in results}
        return [(by_id[o.workstream_id], o) for o in outcomes if not o.merged]

    def merge_request(self, result: WorkstreamResult) -> MergeRequest:
        assert result.commit is not None
        return MergeRequest(
            workstream_id=result.workstream_id,
            commit_sha=result.commit,
            patch_id=result.patch.patch_id if result.patch else None,
            reverse_fingerprint=result.patch.reverse_fingerprint if result.patch else None,
        )

    async def merge(self, number: int, merges: list[MergeRequest]) -> list[MergeOutcome]:
        integrated = await self.steps.run(
            WorkspaceActivities.integrate,
            IntegrateInput(
                repo_path=self.input.repo_path,
                run_id=self.input.run_id,
                wave=number,
                integration_ref=branch_ref(self.record.integration_branch),
                expected_head=self.head,
                merges=merges,
                tag_ref=tag_ref(wave_tag(self.input.run_id, number)),
                timestamp=int(workflow.time_ns() // 1_000_000_000),
                history=self.state.history,
            ),
            QUICK,
            summary=f"integrate wave {number} ({len(merges)} branches)",
            # Eager: one workstream per step, a few git runs; inside this workflow task it
            # saves a round trip through the server and a workflow task per step. A wave of
            # hundreds stays a remote activity: queries wait while a local one runs.
            local=self.phase.scheduling == "eager" and patched(INTEGRATE_LOCALLY),
        )
        self.record.head_sha = self.state.checkpoints[number] = integrated.head_sha
        self.state.history = integrated.history
        patch_of = {m.workstream_id: m.patch_id for m in merges}
        merged = []
        for outcome in integrated.outcomes:
            entry = self.state.ledger.get(patch_of.get(outcome.workstream_id) or "")
            if not outcome.merged:
                continue
            self.board.ws(outcome.workstream_id).step = number
            merged.append(outcome.workstream_id)
            if entry is not None:
                self.journal.move(
                    entry,
                    PatchState.COMMITTED,
                    f"merged into {self.record.integration_branch} as "
                    f"{(outcome.merge_commit or '')[:12]}",
                )
            ws = self.board.specs[outcome.workstream_id]
            if ws.compensation is not None:
                # Pushed after the merge it belongs with, so it runs first on the way back,
                # while the integration head still holds this workstream's work.
                self.saga.push(
                    "user_command",
                    number,
                    f"compensation of {ws.workstream_id}",
                    workstream_id=ws.workstream_id,
                    command=ws.compensation.command,
                    workspace=ws.workspace,
                )
        self.board.show(merged)
        return integrated.outcomes

    def conflicted(self, ws_id: str, result: WorkstreamResult, conflicts: list[str]) -> str:
        reason = f"merge conflict in {', '.join(conflicts) or 'the integration branch'}"
        entry = self.state.ledger.get(result.patch.patch_id if result.patch else "")
        if entry is not None and entry.state == PatchState.VERIFIED:
            self.journal.move(entry, PatchState.APPLY_FAILED, reason)
        self.journal.event(
            EventType.MERGE_CONFLICT,
            f"{ws_id}: {reason}",
            workstream_id=ws_id,
            conflicts=conflicts,
        )
        return reason

    async def phase_gates(self, number: int, last: bool) -> tuple[str | None, bool]:
        """Phase gates on the integration head: (why the phase stops, whether it rolls back).
        Failing after the last wave rolls the phase back (so does failing earlier with
        on_failure: rollback); otherwise a failure stops the phase."""
        if not self.phase.gates:
            return None, False
        result = await self.steps.run(
            GateActivities.run_gates,
            GateRunInput(
                repo_path=self.input.repo_path,
                run_id=self.input.run_id,
                label=f"phase-wave-{number}",
                commit_sha=self.head,
                gates=self.phase.gates,
                attempt=number,
                # The gates need what the workstreams' gates had: setup, caches, includes.
                workspace=self.phase.defaults.phase_workspace(),
            ),
            gates([g.timeout_s for g in self.phase.gates], QUICK),
            summary=f"phase gates after wave {number}",
        )
        self.record.phase_gates = result.results
        for gate in result.results:
            passed = gate.status == "passed"
            self.journal.event(
                EventType.PHASE_GATE_PASSED if passed else EventType.PHASE_GATE_FAILED,
                f"phase gate {gate.gate_id} {gate.status} after wave {number}",
                wave=number,
                gate_id=gate.gate_id,
            )
        failure = result.first_failure
        if failure is None:
            return None, False
        reason = f"phase gate {failure.gate_id} {failure.reason} after wave {number}"
        return reason, last or self.phase.on_failure == "rollback"
