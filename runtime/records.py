"""A run's record as it stands now: asked of the running phase, or read from the end of its
workflow — and, after ``uet rollback`` of a finished run, from the rollback that followed it.
Temporal is the source of truth for the record: the report folder (``$UET_HOME/runs/<run>``)
lives on a worker's disk, which the CLI may not share.

Its ledger and events: from the report folder of a finished run, else asked of the running
phase and its workstreams, with the journal parts it has written out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.lib.journal_store import compose
from activities.lib.parts import whole_record
from runtime.artifact_store import artifact_store
from runtime.connect import connect_existing, phase_handle, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.settings import Settings
from schemas.events import RunEvent
from schemas.ledger import LedgerEntry
from schemas.publish import PublishResult
from schemas.refs import (
    child_workflow_id,
    publish_workflow_id,
    rollback_workflow_id,
    workflow_id,
)
from schemas.run import RunRecord, WorkstreamState
from workflows.phase import PhaseWorkflow
from workflows.publish import PublishWorkflow
from workflows.rollback import RollbackWorkflow
from workflows.workstream import WorkstreamWorkflow

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class CurrentRecord:
    record: RunRecord
    running: bool  # the phase workflow is still open
    note: str | None = None  # e.g. a rollback under way


async def final_record(handle: WorkflowHandle[Any, RunRecord]) -> RunRecord:
    """The record a closed phase workflow ended with."""
    try:
        return whole(await handle.result())
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == "PhaseFailed" and cause.details:
            return whole(RunRecord.model_validate(cause.details[0]))
        # A cancelled run carries no record in its failure; it wrote its report before ending.
        report = read_report(handle.id.removeprefix("uet-"))
        if report is not None:
            return report.record
        raise UserError(
            f"run {handle.id} ended abnormally: {cause or failure}", exit_code=ExitCode.FAILED
        ) from None


def whole(record: RunRecord) -> RunRecord:
    """A large run's record, which its workflow returns by reference, read whole."""
    if not record.parts:
        return record
    try:
        return whole_record(record, artifact_store(Settings.from_env().home))
    except ApplicationError as exc:  # the store out of reach, a part gone
        raise UserError(f"run {record.run_id}: {exc.message}", exit_code=ExitCode.FAILED) from None


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
    record = rolled or record
    published = await publish_result(client, run_id)
    if published is not None:  # a later `uet pr`: its pull requests are the run's now
        update = {"pull_requests": published.pull_requests, "publish_error": None}
        record = record.model_copy(update=update)
    return CurrentRecord(record, running=False, note=note)


async def publish_result(client: Client, run_id: str) -> PublishResult | None:
    """What the latest `uet pr` of the run published, if it completed."""
    handle = client.get_workflow_handle_for(PublishWorkflow.run, publish_workflow_id(run_id))
    if await _status_of(handle) != WorkflowExecutionStatus.COMPLETED:
        return None
    return await handle.result()


async def _status_of(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    """How a run's follow-up workflow (a rollback, a `uet pr`) stands; None: there is none."""
    try:
        return (await handle.describe()).status
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def rollback_record(client: Client, run_id: str) -> tuple[RunRecord | None, str | None]:
    """The record left by the latest rollback of the finished run, if one completed (and a
    note when one is under way or failed)."""
    handle = client.get_workflow_handle_for(RollbackWorkflow.run, rollback_workflow_id(run_id))
    status = await _status_of(handle)
    if status is None:
        return None, None
    if status == WorkflowExecutionStatus.COMPLETED:
        return whole(await handle.result()), None
    if status == WorkflowExecutionStatus.RUNNING:
        return None, f"a rollback of this run is under way ({handle.id})"
    ended = status.name.lower()
    return None, f"the last rollback of this run ended {ended} ({handle.id})"


# -- ledger and events ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    record: RunRecord
    ledger: list[LedgerEntry]
    live: bool
    events: list[RunEvent] = field(default_factory=list)


def read_report(run_id: str, settings: Settings | None = None) -> RunView | None:
    """A finished run as its report folder keeps it (record, ledger, events), or None."""
    folder = (settings or Settings.from_env()).report_dir(run_id)
    if not (folder / "run.json").is_file():
        return None
    record = RunRecord.model_validate_json((folder / "run.json").read_text("utf-8"))
    ledger = _json_lines(folder / "ledger.jsonl", LedgerEntry)
    events = _json_lines(folder / "events.jsonl", RunEvent)
    return RunView(record, ledger, live=False, events=events)


def _json_lines(path: Path, model: type[M]) -> list[M]:
    if not path.is_file():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [model.model_validate_json(line) for line in lines if line.strip()]


async def load(run_id: str) -> RunView:
    settings = Settings.from_env()
    return read_report(run_id, settings) or await _load_live(run_id, settings)


async def _load_live(run_id: str, settings: Settings) -> RunView:
    target = target_from_env()
    client = await connect_existing(target)
    handle = client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))
    try:
        description = await handle.describe()
        record = await asyncio.wait_for(handle.query(PhaseWorkflow.status), 10)
        ledger = await asyncio.wait_for(handle.query(PhaseWorkflow.ledger), 10)
    except RPCError as exc:
        raise UserError(f"run {run_id!r}: {exc.message}") from None
    except TimeoutError:
        raise UserError(
            f"run {run_id} has no report in {settings.home} and no worker answers on task "
            f"queue {settings.task_queue!r}; start one with `uet worker`",
            exit_code=ExitCode.FAILED,
        ) from None
    if record.journal:  # what the phase already wrote out, in the workers' state dir
        try:
            ledger, _ = compose(artifact_store(settings.home), record.journal, ledger)
        except ApplicationError as exc:
            raise UserError(f"run {run_id}: {exc.message}", exit_code=ExitCode.FAILED) from None
    if description.status == WorkflowExecutionStatus.RUNNING:
        # Workstreams still running keep their entries until they finish: ask them too.
        known = {entry.patch_id for entry in ledger}
        for ws_id, state in record.workstreams.items():
            if state.status != WorkstreamState.RUNNING:
                continue
            child = client.get_workflow_handle_for(
                WorkstreamWorkflow.run, child_workflow_id(handle.id, ws_id)
            )
            try:
                entries = await asyncio.wait_for(child.query(WorkstreamWorkflow.ledger), 10)
            except (RPCError, TimeoutError):
                continue
            ledger += [e for e in entries if e.patch_id not in known]
    return RunView(record, ledger, live=True)
