"""`uet ledger` and `uet show`: what happened to each patch of a run, for people and scripts.

A finished run is read from its report folder (``$UET_HOME/runs/<run>``); a running one is
asked through the workflow's queries.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.lib.artifacts import ArtifactStore
from activities.lib.journal_store import compose
from runtime.connect import connect_existing, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.progress import answer_commands
from runtime.settings import Settings
from schemas.events import RunEvent
from schemas.ledger import LedgerEntry
from schemas.refs import child_workflow_id, workflow_id
from schemas.run import RunRecord, WorkstreamState
from workflows.phase import PhaseWorkflow
from workflows.workstream import WorkstreamWorkflow

out = Console(soft_wrap=True, highlight=False)
M = TypeVar("M", bound=BaseModel)


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
            ledger, _ = compose(ArtifactStore(settings.home / "artifacts"), record.journal, ledger)
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


# -- uet ledger --------------------------------------------------------------------------------


async def ledger(run_id: str, as_json: bool) -> int:
    view = await load(run_id)
    if as_json:
        print(json.dumps([e.model_dump(mode="json") for e in view.ledger], indent=2))
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
        out.print(f"\n[bold]patch {entry.patch_id}[/] (attempt {entry.attempt}) — {entry.state}"
                  + (f", replaces {entry.replaces}" if entry.replaces else ""))  # fmt: skip
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
            out.print(f"  gate {gate.gate_id}: {gate.status}"
                      + (f" ({gate.reason})" if gate.reason else ""))  # fmt: skip
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
        out.print(f"\n[bold]review {request.review_id}[/] ({request.reason}), asked "
                  f"{request.requested_at:%Y-%m-%d %H:%M:%S}")  # fmt: skip
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
    store = ArtifactStore(Settings.from_env().home / "artifacts")
    path: Path = store.path_for(entry.patch.sha256)
    out.print(f"\n[bold]diff[/] ({entry.patch.size} bytes, sha256 {entry.patch.sha256[:12]})")
    if not path.is_file():
        out.print(f"not in this machine's artifact store ({store.root})")
        return
    out.print(path.read_bytes().decode("utf-8", "replace").rstrip(), markup=False)
