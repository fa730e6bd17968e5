"""`uet reviews`, `uet approve|reject|retry|adjust`, `uet cancel`, `uet rollback`."""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from activities.artifacts import ArtifactStore
from activities.journal_store import write_journal
from runtime.commands import connect_existing, emit_json
from runtime.connect import target_from_env
from runtime.errors import ExitCode, UserError
from runtime.progress import answer_commands
from runtime.reports import load
from runtime.settings import Settings
from schemas.refs import workflow_id
from schemas.review import Decision, ReviewDecision, ReviewRequest
from schemas.run import RollbackRunInput, RunStatus
from schemas.saga import RollbackRequest
from workflows import search
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


async def _client() -> Client:
    return await connect_existing(target_from_env())


def _phase(client: Client, run_id: str) -> WorkflowHandle[Any, RunStatus]:
    return client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))


async def _pending(
    handle: WorkflowHandle[Any, RunStatus], timeout_s: float = 10
) -> list[ReviewRequest]:
    try:
        return await asyncio.wait_for(handle.query(PhaseWorkflow.pending_reviews), timeout_s)
    except RPCError as exc:
        raise UserError(f"run {handle.id.removeprefix('uet-')}: {exc.message}") from None
    except TimeoutError:
        raise UserError(
            "no worker answers; start one with `uet worker`", exit_code=ExitCode.FAILED
        ) from None


# -- uet reviews --------------------------------------------------------------------------------


async def reviews(run_id: str | None, as_json: bool) -> int:
    client = await _client()
    if run_id:
        runs = [run_id]
    else:
        query = f'{search.STATUS.name} = "awaiting_review" AND ExecutionStatus = "Running"'
        runs = []
        try:
            async for execution in client.list_workflows(query):
                runs.append(execution.id.removeprefix("uet-"))
        except RPCError as exc:
            raise UserError(f"cannot search runs: {exc.message}") from None
    found = []
    for run in sorted(runs):
        try:
            found += await _pending(_phase(client, run), timeout_s=10 if run_id else 3)
        except UserError as problem:
            if run_id:
                raise
            # One run without a worker must not hide the others' reviews.
            err.print(f"[yellow]{run}[/]: {problem.lines[0]}")
    if as_json:
        emit_json([r.model_dump(mode="json") for r in found])
        return ExitCode.COMPLETED
    if not found:
        out.print("no pending reviews")
    for request in found:
        out.print(
            f"[bold]{request.run_id}[/] {request.workstream_id} — {request.reason} "
            f"(review {request.review_id}, asked {request.requested_at:%Y-%m-%d %H:%M})"
        )
        out.print(f"  {request.summary.splitlines()[0] if request.summary else ''}")
        for line in answer_commands(request):
            out.print(f"  {line}", markup=False)
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


async def decide(request: DecisionRequest) -> int:
    client = await _client()
    handle = _phase(client, request.run_id)
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


async def cancel(run_id: str, wait: bool = True) -> int:
    client = await _client()
    handle = _phase(client, run_id)
    description = await _describe(handle, run_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        ended = description.status.name.lower() if description.status else "closed"
        raise UserError(f"run {run_id} has already ended ({ended})")
    await handle.cancel()
    err.print(f"cancel requested for {run_id}: running tools are stopped, then its work is "
              "undone")  # fmt: skip
    if not wait:
        return ExitCode.COMPLETED
    await _until_closed(handle)
    view = await load(run_id)
    out.print(f"{run_id} {view.record.status}: {view.record.reason or ''}")
    return ExitCode.COMPLETED


async def rollback(run_id: str, to_wave: int | None, reason: str) -> int:
    client = await _client()
    handle = _phase(client, run_id)
    description = await _describe(handle, run_id)
    who = getpass.getuser()
    if description.status == WorkflowExecutionStatus.RUNNING:
        try:
            await handle.execute_update(
                PhaseWorkflow.rollback,
                RollbackRequest(
                    to_wave=to_wave, reason=reason or f"rollback by {who}", requested_by=who
                ),
            )
        except WorkflowUpdateFailedError as exc:
            raise UserError(f"refused: {getattr(exc.cause, 'message', exc.cause)}") from None
        err.print(f"rollback requested for {run_id}; waiting for it to finish")
        await _until_closed(handle)
        view = await load(run_id)
    else:
        # The run has ended: unwind the saga stack its record kept.
        view = await load(run_id)
        if not view.record.compensations:
            raise UserError(f"run {run_id} has nothing left to roll back")
        settings = Settings.from_env()
        # By reference: a large run's ledger and events are far beyond a payload.
        store = ArtifactStore(settings.home / "artifacts")
        journal = write_journal(store, view.ledger, view.events)
        await client.execute_workflow(
            RollbackWorkflow.run,
            RollbackRunInput(
                record=view.record.model_copy(update={"journal": journal}),
                written={e.patch_id: (e.workstream_id, e.state) for e in view.ledger},
                to_wave=to_wave or 0,
                reason=reason or f"rollback by {who}",
            ),
            id=f"{workflow_id(run_id)}/rollback",
            task_queue=settings.task_queue,
        )
        view = await load(run_id)
    head = view.record.head_sha[:12] if view.record.head_sha else "-"
    out.print(f"{run_id} {view.record.status}: {view.record.integration_branch} at {head}")
    return ExitCode.COMPLETED


async def _describe(
    handle: WorkflowHandle[Any, RunStatus], run_id: str
) -> WorkflowExecutionDescription:
    try:
        return await handle.describe()
    except RPCError as exc:
        raise UserError(f"run {run_id}: {exc.message}") from None


async def _until_closed(handle: WorkflowHandle[Any, RunStatus]) -> None:
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await asyncio.sleep(0.5)
