"""Rolling back a run that has already ended, from the saga stack in its record."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import SANDBOXED
from workflows.ids import IdFactory
from workflows.journal import Journal, carried_record, read_parts
from workflows.saga import Saga
from workflows.steps import QUICK, Steps

with workflow.unsafe.imports_passed_through():
    from activities.lib.parts import merged_record
    from activities.workspace import WorkspaceActivities
    from schemas.events import EventType
    from schemas.run import PhaseState, RollbackRunInput, RunRecord
    from schemas.workspace import CloseRunInput


#: workflow.patched id: a record too large for a payload goes to close_run and back as parts
#: (issue 20), as the phase's does.
RECORD_BY_REFERENCE = "rollback-record-by-reference"


@workflow.defn(sandboxed=SANDBOXED)
class RollbackWorkflow:
    @workflow.run
    async def run(self, input: RollbackRunInput) -> RunRecord:
        steps = Steps(timedelta(seconds=input.heartbeat_timeout_s))
        record = input.record
        if record.parts:  # a large run's record, by reference (`uet rollback` writes it so)
            record = merged_record(record, await read_parts(steps, record.parts))
        journal = Journal(record.run_id, IdFactory())
        journal.events = list(input.events)
        saga = Saga(record, journal, steps)
        reason = input.reason or "rollback requested"
        written = dict(input.written)
        reason = await saga.roll_back(record, input.ledger, input.to_wave, reason, written)
        record.status = PhaseState.ROLLED_BACK
        record.reason = reason
        journal.event(EventType.RUN_ROLLED_BACK, f"run rolled_back: {record.reason}")
        carried = await carried_record(steps, record, RECORD_BY_REFERENCE)
        await steps.run(
            WorkspaceActivities.close_run,
            CloseRunInput(
                record=carried,
                ledger=input.ledger,
                events=sorted(journal.events, key=lambda e: e.event_id),
                moves=journal.moves,
            ),
            QUICK,
            summary="rewrite the run report",
        )
        return carried
