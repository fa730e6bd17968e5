"""Rolling back a run that has already ended, from the saga stack in its record."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.ids import IdFactory
from workflows.journal import Journal
from workflows.saga import Saga, mark_rolled_back

with workflow.unsafe.imports_passed_through():
    from activities.workspace import WorkspaceActivities
    from schemas.events import EventType
    from schemas.refs import branch_ref
    from schemas.run import PhaseState, RollbackRunInput, RunStatus
    from schemas.workspace import CloseRunInput


@workflow.defn
class RollbackWorkflow:
    @workflow.run
    async def run(self, input: RollbackRunInput) -> RunStatus:
        record = input.record
        journal = Journal(record.run_id, IdFactory())
        journal.events = list(input.events)
        saga = Saga(
            record.repo_path,
            record.run_id,
            branch_ref(record.integration_branch),
            journal,
            record.compensations,
            timedelta(seconds=input.heartbeat_timeout_s),
        )
        reason = input.reason or "rollback requested"
        target = "the base" if not input.to_wave else f"wave {input.to_wave}"
        journal.event(
            EventType.COMPENSATION_STARTED, f"rolling back to {target}: {reason}",
            wave=input.to_wave,
        )  # fmt: skip
        head = saga.checkpoint(input.to_wave)
        failures = await saga.unwind(input.to_wave)
        if head is not None:
            record.head_sha = head
        written = dict(input.written)
        mark_rolled_back(record, input.ledger, journal, input.to_wave, reason, written)
        record.status = PhaseState.ROLLED_BACK
        record.reason = reason + (
            f"; compensation failed: {'; '.join(failures)}" if failures else ""
        )
        journal.event(
            EventType.COMPENSATION_COMPLETED,
            "rollback complete" + (f" with {len(failures)} failed steps" if failures else ""),
            failures=failures,
        )
        journal.event(EventType.RUN_ROLLED_BACK, f"run rolled_back: {record.reason}")
        await workflow.execute_activity_method(
            WorkspaceActivities.close_run,
            CloseRunInput(
                record=record,
                ledger=input.ledger,
                events=sorted(journal.events, key=lambda e: e.event_id),
                moves=journal.moves,
            ),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=input.heartbeat_timeout_s),
            retry_policy=RetryPolicy(maximum_attempts=10),
            summary="rewrite the run report",
        )
        return record
