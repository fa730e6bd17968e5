"""`uet status RUN` (one run's record) and `uet runs` (finding runs, from Temporal's visibility)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from runtime.connect import connect_existing, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out, ui_link
from runtime.progress import ProgressPrinter, is_eager
from runtime.records import current_record
from runtime.settings import Settings
from schemas.run import PhaseState, RunRecord
from workflows import search

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
        err.print("no runs" + (f" with status {status}" if status else "") +
                  (f" of phase {phase_id}" if phase_id else ""))  # fmt: skip
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
