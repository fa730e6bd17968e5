"""Answering a review: what `uet approve|reject|retry|adjust` and the dashboard's forms both do.

One path for both, so a decision from the browser is checked, recorded and refused exactly as
one from the terminal: the phase's ``submit_review`` update and its validator (unknown or stale
review ids, decisions not allowed, reviewers outside ``allowed_reviewers``, ``adjust`` without
instructions) decide, and nothing reaches the history when it refuses.
"""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from runtime.connect import ended, phase_handle
from runtime.errors import ExitCode, UserError
from schemas.review import Decision, ReviewAnswer, ReviewDecision, ReviewRequest
from schemas.run import RunRecord
from workflows.phase import PhaseWorkflow


class NoAnswer(UserError):
    """A running phase whose queries nobody answers: no worker serves its task queue."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id}: no worker answers its queries; start one with `uet worker`",
            exit_code=ExitCode.FAILED,
        )
        self.run_id = run_id


async def pending(
    handle: WorkflowHandle[Any, RunRecord], timeout_s: float = 10
) -> list[ReviewRequest]:
    """The run's pending reviews, asked of the phase itself (the record's copy can be a second
    old; a decision must name the request that waits now)."""
    try:
        return await asyncio.wait_for(handle.query(PhaseWorkflow.pending_reviews), timeout_s)
    except RPCError as exc:
        raise UserError(f"run {handle.id.removeprefix('uet-')}: {exc.message}") from None
    except TimeoutError:
        raise NoAnswer(handle.id.removeprefix("uet-")) from None


def default_reviewer() -> str:
    """Who decides when nobody says: the OS user (of the terminal, or of the dashboard's
    server)."""
    return getpass.getuser()


@dataclass(frozen=True)
class Submitted:
    answer: ReviewAnswer
    decision: ReviewDecision


async def submit(
    client: Client,
    run_id: str,
    workstream_id: str,
    kind: Decision,
    *,
    reviewer: str | None = None,
    comment: str = "",
    instructions: str = "",
    rollback: bool = False,
    budget_increase: float | None = None,
    review_id: str | None = None,
) -> Submitted:
    """Decide the pending review of ``workstream_id`` (``review_id``: only if it is still that
    one — a form answers the request it showed, never a newer one). Refusals are UserErrors
    whose line starts with ``refused:``."""
    handle = phase_handle(client, run_id)
    if (how := await ended(handle)) is not None:
        raise UserError(f"run {run_id} has ended ({how}); there is nothing to decide")
    waiting = [r for r in await pending(handle) if r.workstream_id == workstream_id]
    if not waiting:
        raise UserError(
            f"run {run_id} has no pending review for {workstream_id!r}; "
            f"`uet reviews {run_id}` lists them"
        )
    if review_id is not None and waiting[0].review_id != review_id:
        raise UserError(
            f"refused: review {review_id} of {workstream_id} is no longer pending "
            f"(it waits for {waiting[0].review_id} now)"
        )
    try:
        decision = ReviewDecision(
            review_id=waiting[0].review_id,
            decision=kind,
            reviewer=reviewer or default_reviewer(),
            comment=comment,
            instructions=instructions,
            rollback=rollback,
            budget_increase_usd=budget_increase,
        )
    except ValidationError as exc:  # a form's value the contract refuses (a bad amount)
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(f"refused: {where}: {first['msg']}") from None
    try:
        answer = await handle.execute_update(PhaseWorkflow.submit_review, decision)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise UserError(f"refused: {getattr(cause, 'message', None) or cause}") from None
    except RPCError as exc:
        raise UserError(f"refused: {exc.message}") from None
    return Submitted(answer, decision)
