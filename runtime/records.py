"""A run's record as it stands now: asked of the running phase, or read from the end of its
workflow — and, after ``uet rollback`` of a finished run, from the rollback that followed it.

Temporal is the source of truth: the report folder (``$UET_HOME/runs/<run>``) lives on a
worker's disk, which the CLI may not share.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from runtime.errors import ExitCode, UserError
from runtime.settings import Settings
from schemas.refs import rollback_workflow_id, workflow_id
from schemas.run import RunRecord
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow


@dataclass(frozen=True)
class CurrentRecord:
    record: RunRecord
    running: bool  # the phase workflow is still open
    note: str | None = None  # e.g. a rollback under way


def phase_handle(client: Client, run_id: str) -> WorkflowHandle[Any, RunRecord]:
    return client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))


async def final_record(handle: WorkflowHandle[Any, RunRecord]) -> RunRecord:
    """The record a closed phase workflow ended with."""
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == "PhaseFailed" and cause.details:
            return RunRecord.model_validate(cause.details[0])
        # A cancelled run carries no record in its failure; it wrote its report before ending.
        from runtime.reports import read_report

        report = read_report(handle.id.removeprefix("uet-"))
        if report is not None:
            return report.record
        raise UserError(
            f"run {handle.id} ended abnormally: {cause or failure}", exit_code=ExitCode.FAILED
        ) from None


async def current_record(client: Client, run_id: str, settings: Settings) -> CurrentRecord:
    handle = phase_handle(client, run_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UserError(
                f"no run {run_id!r} in namespace {client.namespace}; `uet runs` lists the runs"
            ) from None
        raise UserError(f"run {run_id}: {exc.message}", exit_code=ExitCode.FAILED) from None
    if description.status == WorkflowExecutionStatus.RUNNING:
        try:
            record = await asyncio.wait_for(handle.query(PhaseWorkflow.status), 10)
        except (TimeoutError, RPCError):
            raise UserError(
                f"run {run_id} is running but no worker answers on task queue "
                f"{settings.task_queue!r}; start one with `uet worker`",
                exit_code=ExitCode.FAILED,
            ) from None
        return CurrentRecord(record, running=True)
    record = await final_record(handle)
    rolled, note = await rollback_record(client, run_id)
    return CurrentRecord(rolled or record, running=False, note=note)


async def rollback_record(client: Client, run_id: str) -> tuple[RunRecord | None, str | None]:
    """The record left by the latest rollback of the finished run, if one completed (and a
    note when one is under way or failed)."""
    handle = client.get_workflow_handle_for(RollbackWorkflow.run, rollback_workflow_id(run_id))
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None, None
        raise
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await handle.result(), None
    if description.status == WorkflowExecutionStatus.RUNNING:
        return None, f"a rollback of this run is under way ({handle.id})"
    ended = description.status.name.lower() if description.status else "closed"
    return None, f"the last rollback of this run ended {ended} ({handle.id})"
