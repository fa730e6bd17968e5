"""`uet cancel` and `uet rollback`: stopping a run, and undoing what it integrated."""

from __future__ import annotations

import argparse
import getpass

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore
from activities.lib.journal_store import write_journal
from activities.lib.parts import record_by_reference
from runtime import connect
from runtime.artifact_store import artifact_store
from runtime.cli.base import command, run_id
from runtime.connect import ended, phase_handle, until_closed
from runtime.errors import ExitCode, UserError
from runtime.output import err, out
from runtime.progress import is_eager
from runtime.records import RunView, current_record, load
from runtime.settings import Settings
from runtime.workers import served
from schemas.refs import rollback_workflow_id
from schemas.run import RollbackRunInput, RunRecord
from schemas.saga import RollbackRequest
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow

NO_WORKER = "run no worker in this process even when none serves the task queue"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub, "cancel", cancel, "stop a run: kill its tools, undo its work", ["uet cancel 01JABC…"]
    )
    run_id(s)
    s.add_argument("--no-worker", action="store_true", help=NO_WORKER)

    s = command(
        sub,
        "rollback",
        rollback,
        "undo a run's waves (all, or those after --to-wave)",
        ["uet rollback 01JABC…", "uet rollback 01JABC… --to-wave 1 --reason 'bad API'"],
    )
    run_id(s)
    s.add_argument(
        "--to-wave",
        type=int,
        default=None,
        metavar="N",
        help="keep waves (eager: steps) 1..N; default: undo everything",
    )
    s.add_argument("--reason", default="", help="why, for the record")
    s.add_argument("--no-worker", action="store_true", help=NO_WORKER)


async def cancel(run_id: str, no_worker: bool = False, wait: bool = True) -> int:
    client = await connect.client()
    handle = phase_handle(client, run_id)
    how = await ended(handle)
    if how is not None:
        raise UserError(f"run {run_id} has already ended ({how})")
    await handle.cancel()
    err.print(f"cancel requested for {run_id}: running tools are stopped, then its work is undone")
    if not wait:
        return ExitCode.COMPLETED
    settings = Settings.from_env()
    what = f"the cancellation of {run_id}"
    async with served(client, settings, what, err, [handle.id], own_worker=not no_worker):
        await until_closed(handle)
    current = await current_record(client, run_id, settings)
    out.print(f"{run_id} {current.record.status}: {current.record.reason or ''}")
    return ExitCode.COMPLETED


async def rollback(run_id: str, to_wave: int | None, reason: str, no_worker: bool = False) -> int:
    client = await connect.client()
    settings = Settings.from_env()
    handle = phase_handle(client, run_id)
    who = getpass.getuser()
    what = f"the rollback of {run_id}"
    if await ended(handle) is None:
        # The update itself needs a worker to accept it.
        async with served(client, settings, what, err, [handle.id], own_worker=not no_worker):
            try:
                await handle.execute_update(
                    PhaseWorkflow.rollback,
                    RollbackRequest(
                        to_wave=to_wave, reason=reason or f"rollback by {who}", requested_by=who
                    ),
                )
            except WorkflowUpdateFailedError as exc:
                cause = getattr(exc.cause, "message", exc.cause)
                raise UserError(f"refused: {cause}") from None
            err.print(f"rollback requested for {run_id}; waiting for it to finish")
            await until_closed(handle)
    else:
        # The run has ended: unwind the saga stack its record kept (after any earlier rollback).
        current = await current_record(client, run_id, settings)
        if current.note:
            raise UserError(f"run {run_id}: {current.note}; wait for it to end first")
        record = current.record
        _check_to_wave(record, to_wave)
        view = await load(run_id)
        try:
            input = rollback_input(
                record, view, artifact_store(settings.home), to_wave, reason or f"rollback by {who}"
            )
        except ApplicationError as exc:  # the store unreachable, say
            raise UserError(f"run {run_id}: {exc.message}", exit_code=ExitCode.FAILED) from None
        rollback_id = rollback_workflow_id(run_id)
        async with served(client, settings, what, err, [rollback_id], own_worker=not no_worker):
            await client.execute_workflow(
                RollbackWorkflow.run, input, id=rollback_id, task_queue=settings.task_queue
            )
    after = (await current_record(client, run_id, settings)).record
    head = after.head_sha[:12] if after.head_sha else "-"
    out.print(f"{run_id} {after.status}: {after.integration_branch} at {head}")
    return ExitCode.COMPLETED


def rollback_input(
    record: RunRecord, view: RunView, store: ArtifactStore, to_wave: int | None, reason: str
) -> RollbackRunInput:
    """The rollback of a finished run, by reference: its ledger and events as journal parts
    (a large run's are far beyond a payload), and its record as parts too when it is too
    large (10,000 workstreams make 2 MB)."""
    journal = write_journal(store, view.ledger, view.events)
    return RollbackRunInput(
        record=record_by_reference(record.model_copy(update={"journal": journal}), store),
        written={e.patch_id: (e.workstream_id, e.state) for e in view.ledger},
        to_wave=to_wave or 0,
        reason=reason,
    )


def _check_to_wave(record: RunRecord, to_wave: int | None) -> None:
    """A finished run can go back to any wave (step) before the last one still in place."""
    if not record.compensations:
        raise UserError(f"run {record.run_id} has nothing left to roll back")
    last = max(step.wave for step in record.compensations)
    unit = "step" if is_eager(record) else "wave"
    if to_wave is None or to_wave == 0 or to_wave < last:
        return
    if to_wave == last:
        problem = f"{unit} {last} is the last one in place, so nothing comes after it"
    else:
        problem = f"it has only {last} {unit}{'s' if last > 1 else ''} in place"
    keep = f"--to-wave 1 to {last - 1}, or " if last > 1 else ""
    raise UserError(
        f"--to-wave {to_wave}: run {record.run_id} cannot be rolled back to {unit} {to_wave}; "
        f"{problem} — pass {keep}no --to-wave to undo everything"
    )
