"""`uet reviews`, `uet approve|reject|retry|adjust`, `uet cancel`, `uet rollback`."""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from activities.lib.artifacts import ArtifactStore
from activities.lib.journal_store import write_journal
from runtime.connect import connect_existing, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.progress import answer_commands, is_eager
from runtime.records import current_record
from runtime.reports import load
from runtime.settings import Settings
from runtime.workers import served
from schemas.refs import rollback_workflow_id, workflow_id
from schemas.review import Decision, ReviewDecision, ReviewRequest
from schemas.run import RollbackRunInput, RunRecord
from schemas.saga import RollbackRequest
from workflows import search
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow


async def _client() -> Client:
    return await connect_existing(target_from_env())


def _phase(client: Client, run_id: str) -> WorkflowHandle[Any, RunRecord]:
    return client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))


async def _pending(
    handle: WorkflowHandle[Any, RunRecord], timeout_s: float = 10
) -> list[ReviewRequest]:
    try:
        return await asyncio.wait_for(handle.query(PhaseWorkflow.pending_reviews), timeout_s)
    except RPCError as exc:
        raise UserError(f"run {handle.id.removeprefix('uet-')}: {exc.message}") from None
    except TimeoutError:
        raise NoAnswer(handle.id.removeprefix("uet-")) from None


class NoAnswer(UserError):
    """A running phase whose queries nobody answers: no worker serves its task queue."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id}: no worker answers its queries; start one with `uet worker`",
            exit_code=ExitCode.FAILED,
        )
        self.run_id = run_id


# -- uet reviews --------------------------------------------------------------------------------


async def reviews(run_id: str | None, as_json: bool) -> int:
    """Pending reviews. A run that cannot be asked (no worker answers its queries) is never
    reported as having none: it is named, and the command exits 1."""
    client = await _client()
    runs = [run_id] if run_id else []
    if not run_id:
        # This deployment's runs: a namespace may hold other task queues, with workers of
        # their own.
        queue = Settings.from_env().task_queue
        query = (
            f'{search.STATUS.name} = "awaiting_review" AND ExecutionStatus = "Running" '
            f'AND TaskQueue = "{queue}"'
        )
        try:
            async for execution in client.list_workflows(query):
                runs.append(execution.id.removeprefix("uet-"))
        except RPCError as exc:
            raise UserError(f"cannot search runs: {exc.message}") from None
    elif (ended := await _ended(_phase(client, run_id))) is not None:
        out.print(f"run {run_id} has ended ({ended}): no pending reviews")
        return ExitCode.COMPLETED
    found: list[ReviewRequest] = []
    unknown: list[str] = []
    for run in sorted(runs):
        try:
            found += await _pending(_phase(client, run), timeout_s=5 if run_id else 3)
        except NoAnswer:
            # One run without a worker must not hide the others' reviews.
            unknown.append(run)
    if as_json:
        emit_json([r.model_dump(mode="json") for r in found])
    else:
        if not found and not unknown:
            out.print("no pending reviews")
        for request in found:
            out.print(
                f"[bold]{request.run_id}[/] {request.workstream_id} — {request.reason} "
                f"(review {request.review_id}, asked {request.requested_at:%Y-%m-%d %H:%M})"
            )
            out.print(f"  {request.summary.splitlines()[0] if request.summary else ''}")
            for line in answer_commands(request):
                out.print(f"  {line}", markup=False)
    if unknown:
        runs_ = ", ".join(unknown)
        err.print(
            f"uet: could not ask {runs_} for pending reviews (they wait for one, but no worker "
            "answers their queries); start a worker with `uet worker` and try again"
        )
        return ExitCode.FAILED
    return ExitCode.COMPLETED


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRequest:
    run_id: str
    workstream_id: str
    decision: Decision
    reviewer: str | None = None
    comment: str = ""
    instructions: str = ""
    rollback: bool = False
    budget_increase_usd: float | None = None


async def decide(request: DecisionRequest) -> int:
    client = await _client()
    handle = _phase(client, request.run_id)
    if (ended := await _ended(handle)) is not None:
        raise UserError(f"run {request.run_id} has ended ({ended}); there is nothing to decide")
    pending = [r for r in await _pending(handle) if r.workstream_id == request.workstream_id]
    if not pending:
        raise UserError(
            f"run {request.run_id} has no pending review for {request.workstream_id!r}; "
            f"`uet reviews {request.run_id}` lists them"
        )
    decision = ReviewDecision(
        review_id=pending[0].review_id,
        decision=request.decision,
        reviewer=request.reviewer or getpass.getuser(),
        comment=request.comment,
        instructions=request.instructions,
        rollback=request.rollback,
        budget_increase_usd=request.budget_increase_usd,
    )
    try:
        answer = await handle.execute_update(PhaseWorkflow.submit_review, decision)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise UserError(f"refused: {getattr(cause, 'message', None) or cause}") from None
    except RPCError as exc:
        raise UserError(f"refused: {exc.message}") from None
    out.print(f"{answer.decision} recorded for {answer.workstream_id} "
              f"(review {answer.review_id}) by {decision.reviewer}")  # fmt: skip
    return ExitCode.COMPLETED


# -- cancel and rollback ------------------------------------------------------------------------


async def cancel(run_id: str, wait: bool = True, own_worker: bool = True) -> int:
    client = await _client()
    handle = _phase(client, run_id)
    ended = await _ended(handle)
    if ended is not None:
        raise UserError(f"run {run_id} has already ended ({ended})")
    await handle.cancel()
    err.print(f"cancel requested for {run_id}: running tools are stopped, then its work is "
              "undone")  # fmt: skip
    if not wait:
        return ExitCode.COMPLETED
    settings = Settings.from_env()
    what = f"the cancellation of {run_id}"
    async with served(client, settings, what, err, [handle.id], own_worker=own_worker):
        await _until_closed(handle)
    current = await current_record(client, run_id, settings)
    out.print(f"{run_id} {current.record.status}: {current.record.reason or ''}")
    return ExitCode.COMPLETED


async def rollback(run_id: str, to_wave: int | None, reason: str, own_worker: bool = True) -> int:
    client = await _client()
    settings = Settings.from_env()
    handle = _phase(client, run_id)
    who = getpass.getuser()
    what = f"the rollback of {run_id}"
    if await _ended(handle) is None:
        # The update itself needs a worker to accept it.
        async with served(client, settings, what, err, [handle.id], own_worker=own_worker):
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
            await _until_closed(handle)
    else:
        # The run has ended: unwind the saga stack its record kept (after any earlier rollback).
        current = await current_record(client, run_id, settings)
        if current.note:
            raise UserError(f"run {run_id}: {current.note}; wait for it to end first")
        record = current.record
        _check_to_wave(record, to_wave)
        view = await load(run_id)
        # By reference: a large run's ledger and events are far beyond a payload.
        store = ArtifactStore(settings.home / "artifacts")
        journal = write_journal(store, view.ledger, view.events)
        rollback_id = rollback_workflow_id(run_id)
        async with served(client, settings, what, err, [rollback_id], own_worker=own_worker):
            await client.execute_workflow(
                RollbackWorkflow.run,
                RollbackRunInput(
                    record=record.model_copy(update={"journal": journal}),
                    written={e.patch_id: (e.workstream_id, e.state) for e in view.ledger},
                    to_wave=to_wave or 0,
                    reason=reason or f"rollback by {who}",
                ),
                id=rollback_id,
                task_queue=settings.task_queue,
            )
    after = (await current_record(client, run_id, settings)).record
    head = after.head_sha[:12] if after.head_sha else "-"
    out.print(f"{run_id} {after.status}: {after.integration_branch} at {head}")
    return ExitCode.COMPLETED


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


async def _ended(handle: WorkflowHandle[Any, RunRecord]) -> str | None:
    """How the phase workflow ended, or None while it runs."""
    try:
        description = await handle.describe()
    except RPCError as exc:
        raise UserError(
            f"run {handle.id.removeprefix('uet-')}: {exc.message}; `uet runs` lists the runs"
        ) from None
    if description.status == WorkflowExecutionStatus.RUNNING:
        return None
    return description.status.name.lower() if description.status else "closed"


async def _until_closed(handle: WorkflowHandle[Any, RunRecord]) -> None:
    while await _ended(handle) is None:
        await asyncio.sleep(0.5)
