"""`uet runs` (finding runs, from Temporal's visibility), `uet status` (one run's record),
`uet ledger` and `uet show` (what happened to each patch of a run)."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from runtime.artifact_store import artifact_store
from runtime.cli.base import command, run_id
from runtime.connect import connect_existing, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out, ui_link
from runtime.progress import ProgressPrinter, answer_commands, is_eager
from runtime.records import current_record, load
from runtime.settings import Settings
from schemas.ledger import LedgerEntry
from schemas.run import PhaseState, RunRecord
from workflows import search


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "runs",
        runs,
        "find runs: the running ones first, then the latest ended",
        ["uet runs", "uet runs --status awaiting_review", "uet runs --phase PH-DEMO --json"],
    )
    s.add_argument("--status", choices=STATUSES, help="only runs in this state")
    s.add_argument("--phase", dest="phase_id", metavar="PHASE_ID", help="only runs of this phase")
    s.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    s.add_argument("--json", dest="as_json", action="store_true", help="a JSON list on stdout")

    s = command(
        sub,
        "status",
        status,
        "the record of a running or finished run",
        ["uet status 01JABC…", "uet status 01JABC… --json | jq .workstreams"],
    )
    run_id(s)
    s.add_argument(
        "--json", dest="as_json", action="store_true", help="the run record as JSON on stdout"
    )

    s = command(
        sub,
        "ledger",
        ledger,
        "every patch of a run and what happened to it",
        ["uet ledger 01JABC…", "uet ledger 01JABC… --json"],
    )
    run_id(s)
    s.add_argument("--json", dest="as_json", action="store_true", help="a list of ledger entries")

    s = command(
        sub,
        "show",
        show,
        "a workstream's reviews, patches, ledger history, gates and diff",
        ["uet show 01JABC… ws-api"],
    )
    run_id(s)
    s.add_argument("workstream_id", metavar="WORKSTREAM", help="the workstream's id")


# -- uet status --------------------------------------------------------------------------------


async def status(run_id: str, as_json: bool) -> int:
    settings = Settings.from_env()
    target = target_from_env()
    client = await connect_existing(target)
    current = await current_record(client, run_id, settings)
    record = current.record
    if as_json:
        emit_json(record.model_dump(mode="json"))
    else:
        ProgressPrinter(err, everything=True).update(record)
        out.print(summary_line(record))
        for pr in record.pull_requests:
            carries = f" ({pr.workstream_id})" if pr.workstream_id else ""
            out.print(f"  pull request #{pr.number}{carries}: {pr.url}", highlight=False)
        if record.publish_error:
            err.print(f"[yellow]not published:[/] {record.publish_error}", highlight=False)
        if current.note:
            err.print(f"[yellow]note:[/] {current.note}")
        err.print(f"  web ui: {ui_link(settings, target, record.workflow_id)}")
    return ExitCode.COMPLETED if record.status != PhaseState.FAILED else ExitCode.FAILED


def summary_line(record: RunRecord) -> str:
    cost = f" cost=${record.cost_usd_total:.4f}" if record.cost_usd_total else ""
    return (
        f"{record.run_id} {record.status} {where(record)} head={record.head_sha or '-'} "
        f"branch={record.integration_branch}{cost}"
    )


def where(record: RunRecord) -> str:
    """How far the run got: ``wave 2/3``, for eager phases ``step 5``; after a rollback, what
    it went back to."""
    eager = is_eager(record)
    if record.status == PhaseState.ROLLED_BACK:
        kept = max((step.wave for step in record.compensations), default=0)
        if not kept:
            return "back to the base"
        return f"back to step {kept}" if eager else f"back to wave {kept}/{len(record.waves)}"
    if eager:
        return f"step {record.current_wave}"
    return f"wave {record.current_wave}/{len(record.waves)}"


# -- uet runs ----------------------------------------------------------------------------------

STATUSES = [str(s) for s in PhaseState]


@dataclass(frozen=True)
class RunRow:
    run_id: str
    phase_id: str
    status: str
    started: datetime | None
    ended: datetime | None

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["started"] = self.started.isoformat() if self.started else None
        row["ended"] = self.ended.isoformat() if self.ended else None
        return row


async def runs(status: str | None, phase_id: str | None, limit: int, as_json: bool) -> int:
    client = await connect_existing(target_from_env())
    rows = await find_runs(client, Settings.from_env().task_queue, status, phase_id, limit)
    if as_json:
        emit_json([row.as_json() for row in rows])
        return ExitCode.COMPLETED
    if not rows:
        err.print(
            "no runs"
            + (f" with status {status}" if status else "")
            + (f" of phase {phase_id}" if phase_id else "")
        )
        return ExitCode.COMPLETED
    table = [("run", "phase", "status", "started", "ended")] + [
        (row.run_id, row.phase_id, row.status, _when(row.started), _when(row.ended)) for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for number, line in enumerate(table):
        text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.print(text.rstrip(), style="bold" if number == 0 else None, markup=False)
    return ExitCode.COMPLETED


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}" if moment else "-"


async def find_runs(
    client: Client, task_queue: str, status: str | None, phase_id: str | None, limit: int
) -> list[RunRow]:
    """This deployment's runs (those on ``task_queue``): running ones first, then the most
    recently ended. A run rolled back after it ended (by `uet rollback`) is shown
    rolled_back: its phase workflow's own search attributes still say how it ended."""
    rolled = await _rolled_back_runs(client, task_queue)
    clauses = ['WorkflowType = "PhaseWorkflow"', f'TaskQueue = "{_quote(task_queue)}"']
    if phase_id:
        clauses.append(f'{search.PHASE_ID.name} = "{_quote(phase_id)}"')
    if status and status != "rolled_back":
        clauses.append(f'{search.STATUS.name} = "{status}"')
    rows: list[RunRow] = []
    try:
        async for execution in client.list_workflows(" AND ".join(clauses)):
            row = _row(execution, rolled)
            if row is None or (status and row.status != status):
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
    except RPCError as exc:
        raise UserError(
            f"cannot list runs ({exc.message}); are uet's search attributes registered on this "
            "server? (uet run registers them)",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    return rows


async def _rolled_back_runs(client: Client, task_queue: str) -> set[str]:
    done: set[str] = set()
    query = (
        'WorkflowType = "RollbackWorkflow" AND ExecutionStatus = "Completed" '
        f'AND TaskQueue = "{_quote(task_queue)}"'
    )
    try:
        async for execution in client.list_workflows(query):
            done.add(execution.id.removeprefix("uet-").removesuffix("/rollback"))
    except RPCError:
        pass  # then they show as they ended
    return done


def _row(execution: WorkflowExecution, rolled: set[str]) -> RunRow | None:
    if not execution.id.startswith("uet-"):
        return None
    run_id = execution.id.removeprefix("uet-")
    attributes = execution.typed_search_attributes
    indexed = attributes.get(search.STATUS)
    closed = execution.status not in (None, WorkflowExecutionStatus.RUNNING)
    state = indexed or _from_execution(execution.status)
    if run_id in rolled:
        state = str(PhaseState.ROLLED_BACK)
    elif closed and state in (PhaseState.RUNNING, PhaseState.AWAITING_REVIEW):
        state = _from_execution(execution.status)  # ended without saying (terminated, …)
    return RunRow(
        run_id=run_id,
        phase_id=attributes.get(search.PHASE_ID) or "",
        status=state,
        started=execution.start_time,
        ended=execution.close_time,
    )


def _from_execution(status: WorkflowExecutionStatus | None) -> str:
    return {
        WorkflowExecutionStatus.RUNNING: "running",
        WorkflowExecutionStatus.COMPLETED: "completed",
        WorkflowExecutionStatus.FAILED: "failed",
        WorkflowExecutionStatus.CANCELED: "canceled",
        WorkflowExecutionStatus.TERMINATED: "terminated",
        WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    }.get(status or WorkflowExecutionStatus.RUNNING, "unknown")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# -- uet ledger --------------------------------------------------------------------------------


async def ledger(run_id: str, as_json: bool) -> int:
    view = await load(run_id)
    if as_json:
        emit_json([e.model_dump(mode="json") for e in view.ledger])
        return ExitCode.COMPLETED
    if not view.ledger:
        out.print(f"run {run_id}: no patches yet")
        return ExitCode.COMPLETED
    width = max(len(e.workstream_id) for e in view.ledger)
    for entry in sorted(view.ledger, key=lambda e: (e.workstream_id, e.attempt)):
        stats = entry.patch.stats if entry.patch else None
        size = f"{stats.files_changed}f +{stats.insertions}/-{stats.deletions}" if stats else ""
        last = entry.state_history[-1].reason if entry.state_history else ""
        replaces = f" replaces {entry.replaces}" if entry.replaces else ""
        out.print(
            f"{entry.workstream_id:<{width}}  #{entry.attempt}  {entry.patch_id}  "
            f"{entry.state:<12} {size:<16} {last}{replaces}"
        )
    return ExitCode.COMPLETED


# -- uet show ----------------------------------------------------------------------------------


async def show(run_id: str, workstream_id: str) -> int:
    view = await load(run_id)
    state = view.record.workstreams.get(workstream_id)
    if state is None:
        known = ", ".join(view.record.workstreams)
        raise UserError(f"run {run_id} has no workstream {workstream_id!r} (it has: {known})")
    entries = sorted(
        (e for e in view.ledger if e.workstream_id == workstream_id), key=lambda e: e.attempt
    )
    out.print(f"[bold]{workstream_id}[/] — {state.status} (wave {state.wave})")
    if state.reason:
        out.print(f"reason: {state.reason}")
    if state.commit:
        out.print(f"commit: {state.commit} on {state.branch}")
    _print_reviews(view.record, workstream_id)
    if not entries:
        out.print("no patch: the tool did not get as far as changing anything")
        return ExitCode.COMPLETED
    for entry in entries:
        out.print(
            f"\n[bold]patch {entry.patch_id}[/] (attempt {entry.attempt}) — {entry.state}"
            + (f", replaces {entry.replaces}" if entry.replaces else "")
        )
        for change in entry.state_history:
            reason = f"  {change.reason}" if change.reason else ""
            out.print(f"  {change.at:%Y-%m-%d %H:%M:%S}  {change.state:<12}{reason}")
        last_reason = entry.state_history[-1].reason if entry.state_history else ""
        for error in entry.validation.errors:
            if error != last_reason:
                out.print(f"  [red]{error}[/]")
        if entry.quarantine and entry.quarantine.folder:
            out.print(f"  quarantined in {entry.quarantine.folder}")
        for gate in entry.gates:
            error = f" — error {gate.category} {gate.signature}" if gate.signature else ""
            out.print(
                f"  gate {gate.gate_id}: {gate.status}"
                + (f" ({gate.reason})" if gate.reason else "")
                + error,
                markup=False,
            )
            if gate.status != "passed" and gate.output_tail.strip():
                for line in gate.output_tail.rstrip().splitlines()[-20:]:
                    out.print(f"    | {line}", markup=False)
    _print_patch(entries[-1])
    return ExitCode.COMPLETED


def _print_reviews(record: RunRecord, workstream_id: str) -> None:
    for review in record.reviews:
        request = review.request
        if request.workstream_id != workstream_id:
            continue
        out.print(
            f"\n[bold]review {request.review_id}[/] ({request.reason}), asked "
            f"{request.requested_at:%Y-%m-%d %H:%M:%S}"
        )
        out.print(f"  {request.summary}", markup=False)
        if request.conflicts:
            out.print(f"  conflicting files: {', '.join(request.conflicts)}", markup=False)
        decision = review.decision
        if decision is not None:
            when = f"{review.decided_at:%Y-%m-%d %H:%M:%S}" if review.decided_at else ""
            timed_out = " (timed out)" if review.timed_out else ""
            comment = f": {decision.comment}" if decision.comment else ""
            out.print(
                f"  decided: {decision.decision}{timed_out} by {decision.reviewer} {when}{comment}",
                markup=False,
            )
        elif review.abandoned:
            out.print("  abandoned: the run was rolled back")
        else:
            for line in answer_commands(request):
                out.print(f"  {line}", markup=False)


def _print_patch(entry: LedgerEntry) -> None:
    if entry.patch is None:
        return
    store = artifact_store(Settings.from_env().home, reachable=False)  # its errors: below
    out.print(f"\n[bold]diff[/] ({entry.patch.size} bytes, sha256 {entry.patch.sha256[:12]})")
    try:
        data = store.read_bytes(entry.patch.ref)
    except ApplicationError as exc:  # missing, corrupt, or the store unreachable
        out.print(f"not shown: {exc.message}", markup=False)
        return
    out.print(data.decode("utf-8", "replace").rstrip(), markup=False)
