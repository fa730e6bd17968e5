"""The phase's saga: a stack of compensations, unwound in reverse to undo waves.

Each compensation is pushed *before* its forward step, because a step can take effect and
still report failure; every compensation therefore copes with "it never happened". The stack
lives in the run record, so a finished run can still be rolled back from it.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.failures import cause_message
from workflows.journal import Journal
from workflows.steps import COMPENSATION, Steps

with workflow.unsafe.imports_passed_through():
    from activities.saga import SagaActivities
    from schemas.events import EventType
    from schemas.ledger import TRANSITIONS, LedgerEntry, PatchState
    from schemas.refs import branch_ref
    from schemas.run import RunRecord, WorkstreamState
    from schemas.saga import CompensateInput, CompensationStep


class Saga:
    def __init__(self, record: RunRecord, journal: Journal, steps: Steps) -> None:
        """The stack is the record's own (``compensations``): a finished run can still be
        rolled back from it."""
        self.repo_path = record.repo_path
        self.run_id = record.run_id
        self.integration_ref = branch_ref(record.integration_branch)
        self.journal = journal
        self.stack: list[CompensationStep] = record.compensations
        self.steps = steps

    def push(self, kind: str, wave: int, description: str, **fields: Any) -> None:
        self.stack.append(
            CompensationStep(
                step_id=self.journal.ids.new(),
                kind=kind,  # type: ignore[arg-type]
                wave=wave,
                description=description,
                **fields,
            )
        )

    def checkpoint(self, to_wave: int) -> str | None:
        """Where the integration branch goes back to when the waves after ``to_wave`` are
        undone: the oldest reset among them."""
        resets = [s for s in self.stack if s.kind == "reset_ref" and s.wave > to_wave]
        return resets[0].to_sha if resets else None

    async def roll_back(
        self,
        record: RunRecord,
        ledger: list[LedgerEntry],
        to_wave: int,
        reason: str,
        written: dict[str, tuple[str, PatchState]],
    ) -> str:
        """Undo the waves after ``to_wave`` and say so in the record and the ledger (of a
        running phase or of a finished run alike). Returns ``reason``, with the steps that
        failed."""
        target = "the base" if not to_wave else f"wave {to_wave}"
        self.journal.event(
            EventType.COMPENSATION_STARTED, f"rolling back to {target}: {reason}", wave=to_wave
        )
        head = self.checkpoint(to_wave)
        failures = await self.unwind(to_wave)
        if head is not None:
            record.head_sha = head
        mark_rolled_back(record, ledger, self.journal, to_wave, reason, written)
        self.journal.event(
            EventType.COMPENSATION_COMPLETED,
            "rollback complete" + (f" with {len(failures)} failed steps" if failures else ""),
            failures=failures,
        )
        return reason + (f"; compensation failed: {'; '.join(failures)}" if failures else "")

    async def unwind(self, to_wave: int) -> list[str]:
        """Run every compensation of the waves after ``to_wave``, newest first. A step that
        still fails after its retries is reported and the rest still run: stopping half way
        would leave the repository in neither state."""
        failures: list[str] = []
        while self.stack and self.stack[-1].wave > to_wave:
            step = self.stack[-1]
            try:
                done = await self.steps.run(
                    SagaActivities.compensate,
                    CompensateInput(
                        repo_path=self.repo_path,
                        run_id=self.run_id,
                        step=step,
                        integration_ref=self.integration_ref,
                    ),
                    COMPENSATION,
                    summary=f"undo: {step.description}",
                )
                detail = done.detail
            except ActivityError as err:
                detail = f"FAILED: {cause_message(err)}"
                failures.append(f"{step.description}: {cause_message(err)}")
            self.stack.pop()
            self.journal.event(
                EventType.COMPENSATION_STEP,
                f"undo {step.description}" + (f": {detail}" if detail else ""),
                workstream_id=step.workstream_id,
                wave=step.wave,
                kind=step.kind,
            )
        return failures


def mark_rolled_back(
    record: RunRecord,
    ledger: list[LedgerEntry],
    journal: Journal,
    to_wave: int,
    reason: str,
    written: dict[str, tuple[str, PatchState]],
) -> None:
    """After an unwind: the work of the waves after ``to_wave`` is undone or was never done."""
    for state in record.workstreams.values():
        if state.wave <= to_wave:
            continue
        if state.status == WorkstreamState.COMPLETED:
            state.status = WorkstreamState.ROLLED_BACK
            state.reason = f"rolled back: {reason}"
        elif state.status in (
            WorkstreamState.PENDING,
            WorkstreamState.RUNNING,
            WorkstreamState.AWAITING_REVIEW,
        ):
            state.status = WorkstreamState.DROPPED
            state.reason = f"not run: {reason}"
    undone = {w for w, s in record.workstreams.items() if s.wave > to_wave}
    for entry in ledger:
        if entry.workstream_id not in undone:
            continue
        if entry.state == PatchState.COMMITTED:
            journal.move(entry, PatchState.ROLLED_BACK, reason)
        elif PatchState.DROPPED in TRANSITIONS[entry.state]:
            journal.move(entry, PatchState.DROPPED, f"rolled back: {reason}")
    # Entries already written out (``written``: patch_id → (workstream, state)) move the same
    # way, as LedgerMoves.
    for patch_id, (ws_id, patch_state) in list(written.items()):
        if ws_id not in undone:
            continue
        if patch_state == PatchState.COMMITTED:
            journal.move_written(ws_id, patch_id, patch_state, PatchState.ROLLED_BACK, reason)
            written[patch_id] = (ws_id, PatchState.ROLLED_BACK)
        elif PatchState.DROPPED in TRANSITIONS[patch_state]:
            journal.move_written(
                ws_id, patch_id, patch_state, PatchState.DROPPED, f"rolled back: {reason}"
            )
            written[patch_id] = (ws_id, PatchState.DROPPED)
