"""`uet reviews` and `uet approve|reject|retry|adjust`: what waits for a person, and answering."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from temporalio.service import RPCError

from runtime import connect
from runtime.cli.base import command, money, run_id
from runtime.connect import ended, phase_handle
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.progress import answer_commands
from runtime.reviewing import NoAnswer, pending, submit
from runtime.settings import Settings
from schemas.review import Decision, ReviewRequest
from workflows import search

DECISIONS: dict[Decision, str] = {
    "approve": "let the workstream proceed (overrides a quarantine; raises a budget)",
    "reject": "drop the workstream; its dependents are blocked",
    "retry": "run the workstream again, unchanged",
    "adjust": "run it again with your instructions for the tool",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "reviews",
        reviews,
        "pending reviews, of one run or of every run",
        ["uet reviews", "uet reviews 01JABC… --json"],
    )
    s.add_argument("run_id", nargs="?", metavar="RUN", help="only this run's (default: every run)")
    s.add_argument("--json", dest="as_json", action="store_true", help="a JSON list on stdout")
    for name, what in DECISIONS.items():
        example = f"uet {name} 01JABC… ws-api --comment 'known flaky test'"
        if name == "adjust":
            example = "uet adjust 01JABC… ws-api --instructions 'keep the public API as it is'"
        s = command(sub, name, _decision(name), what, [example])
        run_id(s)
        s.add_argument(
            "workstream_id", metavar="WORKSTREAM", help="the workstream whose review this answers"
        )
        s.add_argument("--comment", default="", help="why, for the record")
        s.add_argument("--reviewer", help="who decides (default: your user name)")
        if name == "adjust":
            s.add_argument(
                "--instructions",
                required=True,
                help="what the tool should do differently (added to its prompt)",
            )
        if name == "reject":
            s.add_argument("--rollback", action="store_true", help="and roll the phase back")
        if name == "approve":
            s.add_argument(
                "--budget-increase",
                type=money,
                metavar="USD",
                help="a budget review: raise the limit by this many dollars",
            )


async def reviews(run_id: str | None, as_json: bool) -> int:
    """Pending reviews. A run that cannot be asked (no worker answers its queries) is never
    reported as having none: it is named, and the command exits 1."""
    client = await connect.client()
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
    elif (how := await ended(phase_handle(client, run_id))) is not None:
        out.print(f"run {run_id} has ended ({how}): no pending reviews")
        return ExitCode.COMPLETED
    found: list[ReviewRequest] = []
    unknown: list[str] = []
    for run in sorted(runs):
        try:
            found += await pending(phase_handle(client, run), timeout_s=5 if run_id else 3)
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


def _decision(kind: Decision) -> Callable[..., Awaitable[int]]:
    async def decide(
        run_id: str,
        workstream_id: str,
        reviewer: str | None,
        comment: str,
        instructions: str = "",
        rollback: bool = False,
        budget_increase: float | None = None,
    ) -> int:
        return await _decide(
            run_id,
            workstream_id,
            kind,
            reviewer,
            comment,
            instructions,
            rollback,
            budget_increase,
        )

    return decide


async def _decide(
    run_id: str,
    workstream_id: str,
    kind: Decision,
    reviewer: str | None,
    comment: str,
    instructions: str,
    rollback: bool,
    budget_increase: float | None,
) -> int:
    client = await connect.client()
    done = await submit(
        client,
        run_id,
        workstream_id,
        kind,
        reviewer=reviewer,
        comment=comment,
        instructions=instructions,
        rollback=rollback,
        budget_increase=budget_increase,
    )
    answer = done.answer
    out.print(
        f"{answer.decision} recorded for {answer.workstream_id} "
        f"(review {answer.review_id}) by {done.decision.reviewer}"
    )
    return ExitCode.COMPLETED
