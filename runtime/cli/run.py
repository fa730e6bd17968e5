"""`uet run`: validate locally, connect (or start the embedded server), start the phase and
follow it to its end — each workstream's state, fix attempts and reviews as they happen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from ulid import ULID

from activities.lib.git import redact_url
from activities.lib.parts import by_reference
from activities.lib.remote_repo import is_url
from runtime import devserver
from runtime.artifact_store import artifact_store
from runtime.cli.base import SPEC_HELP, command, duration
from runtime.cli.remotes import fetch_hint
from runtime.connect import check_namespace, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, ui_link
from runtime.plugin import build_worker
from runtime.progress import ProgressPrinter
from runtime.records import final_record
from runtime.repository import check_repo, work_tree_state
from runtime.settings import Settings
from runtime.specfile import import_patch_files, load_spec
from runtime.workers import quiet_expected_activity_failures
from schemas.events import RunEvent
from schemas.refs import child_workflow_id, workflow_id
from schemas.run import PhaseState, RunInput, RunOptions, RunRecord, WorkstreamState
from schemas.spec import PhaseSpec
from workflows import search
from workflows.phase import PhaseWorkflow
from workflows.workstream import WorkstreamWorkflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "run",
        run,
        "run a phase on Temporal and follow it to its end",
        [
            "uet run phase.yaml --repo ./myrepo",
            "uet run phase.yaml --repo ./myrepo --detach",
            "uet run phase.yaml --repo ./myrepo --no-review --json > record.json",
        ],
    )
    s.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    s.add_argument(
        "--repo",
        required=True,
        metavar="DIR|URL",
        help="the git repository to work on (never touched but under uet/ refs): a path, or a "
        "git URL (ssh://, https://, git://, file://) that workers fetch and push uet's refs to",
    )
    s.add_argument(
        "--json", dest="as_json", action="store_true", help="print the run record as JSON on stdout"
    )
    s.add_argument(
        "--detach",
        action="store_true",
        help="start the run (and a background worker if none runs) and return",
    )
    s.add_argument(
        "--no-worker",
        action="store_true",
        help="run no worker in this process: rely on workers running elsewhere",
    )
    s.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how fast a dead worker's activities move elsewhere (default 30)",
    )
    reviews = s.add_mutually_exclusive_group()
    reviews.add_argument(
        "--review-timeout",
        type=duration,
        metavar="DURATION",
        help="how long a review may wait for a person (90s, 30m, 2h, 1d), then the phase's "
        "on_review_timeout decides; overrides review_timeout_s",
    )
    reviews.add_argument(
        "--no-review",
        action="store_true",
        default=None,
        help="nobody answers reviews: a failing workstream fails instead of asking, approval "
        "and budget reviews are rejected (the default when stdin is not a terminal and the "
        "phase sets no review_timeout_s)",
    )


class Interrupted(Exception):
    """Ctrl-C while ``uet run`` followed a run: the run itself stays open in Temporal."""

    def __init__(self, run_id: str, own_worker: bool) -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.own_worker = own_worker

    @property
    def lines(self) -> list[str]:
        if self.own_worker:
            then = (
                "its worker was this process, so it waits until one runs: `uet worker` "
                f"continues it, `uet cancel {self.run_id}` stops it"
            )
        else:
            then = f"the other workers go on with it; `uet cancel {self.run_id}` stops it"
        return [
            f"interrupted; run {self.run_id} stays open in Temporal — {then}",
            f"`uet status {self.run_id}` shows where it is",
        ]


async def run(
    spec: str,
    repo: str,
    as_json: bool,
    detach: bool,
    no_worker: bool,
    heartbeat_timeout: float,
    review_timeout: float | None,
    no_review: bool | None,
) -> int:
    settings = Settings.from_env()
    loaded = load_spec(spec)
    repo_path = await check_repo(repo, loaded.spec.base_ref)
    if is_url(repo_path):
        _check_remote_phase(loaded.spec, repo_path)
    else:
        await _note_uncommitted(Path(repo_path), loaded.spec.base_ref)
    devserver.ensure_writable(settings.home)
    store = artifact_store(settings.home)
    patch_files = import_patch_files(loaded, store)
    phase = loaded.spec
    if review_timeout is not None:
        phase = phase.model_copy(update={"review_timeout_s": review_timeout})
    nobody = _no_review(no_review, detach, phase)
    target = target_from_env()
    client, started_server = await devserver.connect_or_start(settings, target)
    if started_server:
        err.print(devserver.left_running(settings, "server"))
    await check_namespace(client)
    attributes_ok = await _ensure_search_attributes(client, started_server)

    run_id = str(ULID())
    run_input = RunInput(
        run_id=run_id,
        phase=phase,
        repo_path=repo_path,
        patch_files=patch_files,
        options=RunOptions(
            heartbeat_timeout_s=heartbeat_timeout,
            search_attributes=attributes_ok,
            no_review=nobody,
        ),
    )
    run_input = by_reference(run_input, store)  # a large phase travels as artifact parts
    start = functools.partial(
        client.start_workflow,
        PhaseWorkflow.run,
        run_input,
        id=workflow_id(run_id),
        task_queue=settings.task_queue,
        search_attributes=_run_search_attributes(run_id, phase.phase_id) if attributes_ok else None,
        static_summary=f"{phase.phase_id}: {phase.title}" if phase.title else phase.phase_id,
    )
    if detach:
        if not no_worker and devserver.start_background_worker(settings):
            # Else nobody would execute the run.
            err.print(devserver.left_running(settings, "worker"))
        handle = await start()
        err.print(f"started run [bold]{run_id}[/] — {ui_link(settings, target, handle.id)}")
        _say_how_reviews_go(phase, nobody, explicit=no_review is not None, detached=True)
        if as_json:
            emit_json(_initial_record(run_id, handle.id, phase.phase_id))
        else:
            print(run_id)
        return ExitCode.COMPLETED

    in_process = None if no_worker else build_worker(client, settings)
    if in_process is not None:
        quiet_expected_activity_failures()
    async with in_process or contextlib.nullcontext():
        handle = await start()
        link = ui_link(settings, target, handle.id)
        err.print(f"run [bold]{run_id}[/] of phase {phase.phase_id} — {link}")
        _say_how_reviews_go(phase, nobody, explicit=no_review is not None, detached=False)
        if phase.scheduling == "eager":
            err.print(
                "eager scheduling: each workstream starts once its dependencies are "
                "integrated; each integration is a numbered step"
            )
        try:
            return await _follow(client, handle, link, as_json)
        except asyncio.CancelledError:
            raise Interrupted(run_id, own_worker=in_process is not None) from None


def _no_review(given: bool | None, detach: bool, spec: PhaseSpec) -> bool:
    """Whether nobody answers this run's reviews. Unless told, a foreground run whose standard
    input is not a terminal (CI, cron, a pipe) does not wait for a person who will never come,
    unless the phase bounds the wait itself (review_timeout_s)."""
    if given is not None:
        return given
    if detach or spec.review_timeout_s is not None or not _may_ask(spec):
        return False
    return not sys.stdin.isatty()


def _may_ask(spec: PhaseSpec) -> bool:
    """Whether any review can come up in this phase."""
    budget = spec.budget
    limited = budget.max_cost_usd_total is not None or budget.max_cost_usd_per_workstream
    return bool(limited) or any(ws.review != "never" for ws in spec.workstreams)


def _say_how_reviews_go(
    spec: PhaseSpec, no_review: bool, *, explicit: bool, detached: bool
) -> None:
    """Said once at start, so that a run waiting for a person never looks like a hang."""
    if not _may_ask(spec):
        return
    if no_review:
        why = "--no-review" if explicit else "standard input is not a terminal"
        err.print(
            f"reviews: off ({why}): a workstream that cannot go on fails instead of asking a "
            "person; approval and budget reviews are rejected"
            + ("" if explicit else " (--review-timeout 30m waits for a reviewer)")
        )
        return
    timeout = spec.review_timeout_s
    how_long = (
        f"up to {_duration(timeout)}, then {spec.on_review_timeout}"
        if timeout
        else "without a time limit"
    )
    where = "" if detached else " in another terminal"
    err.print(
        f"reviews: a workstream that cannot go on asks a person, and the run waits {how_long} "
        f"for the answer — `uet reviews`{where} lists it; --review-timeout or --no-review "
        "change this"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g}s"


def _check_remote_phase(phase: PhaseSpec, url: str) -> None:
    """What a phase cannot do on a repository given by URL: copy untracked files of a work
    tree (there is none on the workers)."""
    for ws in phase.workstreams:
        if ws.workspace.include:
            raise UserError(
                f"workstream {ws.workstream_id}: workspace.include copies untracked files from "
                f"your work tree, and --repo {redact_url(url)} has none on the workers; commit "
                "those files, create them in workspace.setup, or pass a local path as --repo"
            )


async def _note_uncommitted(repo: Path, base_ref: str | None) -> None:
    """A dirty work tree is left alone: say what the run leaves out, once."""
    state = await work_tree_state(repo)
    if state.dirty:
        start = f"base_ref {base_ref!r}" if base_ref else "HEAD"
        err.print(
            f"[yellow]note:[/] {repo} has uncommitted changes ({state.describe()}); the run "
            f"starts from the commit at {start} and leaves them out (uet never touches them)"
        )


async def _ensure_search_attributes(client: Client, embedded: bool) -> bool:
    """Registered on our own server at start; on another server, try to add them."""
    if embedded:
        return True
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = {k.name for k in search.ALL} - set(listed.custom_attributes)
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace,
                    search_attributes={
                        name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                    },
                )
            )
        return True
    except RPCError as exc:
        err.print(
            f"[yellow]warning:[/] cannot register search attributes ({exc.message}); "
            "runs will not be searchable by UetRunId/UetPhaseId/UetStatus"
        )
        return False


def _run_search_attributes(run_id: str, phase_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.RUN_ID, run_id),
            SearchAttributePair(search.PHASE_ID, phase_id),
            SearchAttributePair(search.STATUS, str(PhaseState.RUNNING)),
        ]
    )


def _initial_record(run_id: str, wf_id: str, phase_id: str) -> dict[str, Any]:
    from schemas.refs import integration_branch

    record = RunRecord(
        run_id=run_id,
        workflow_id=wf_id,
        phase_id=phase_id,
        integration_branch=integration_branch(run_id),
    )
    return record.model_dump(mode="json")


async def _follow(
    client: Client, handle: WorkflowHandle[Any, RunRecord], link: str, as_json: bool
) -> int:
    """Print progress until the run ends; the final record decides the exit code."""
    started = time.monotonic()
    printer = ProgressPrinter(err)
    result_task = asyncio.ensure_future(final_record(handle))
    while not result_task.done():
        with contextlib.suppress(RPCError, asyncio.TimeoutError):
            status = await asyncio.wait_for(handle.query(PhaseWorkflow.status), 5)
            printer.update(status, await run_events(client, handle, status))
        await asyncio.wait([result_task], timeout=0.5)
    record = result_task.result()
    # What happened since the last look (a fast run may end between two): asked once more.
    printer.update(record, await run_events(client, handle, record))
    _print_summary(record, link, time.monotonic() - started)
    if as_json:
        emit_json(record.model_dump(mode="json"))
    return ExitCode.COMPLETED if record.status == PhaseState.COMPLETED else ExitCode.FAILED


async def run_events(
    client: Client, handle: WorkflowHandle[Any, RunRecord], status: RunRecord
) -> list[RunEvent]:
    """What the phase and its running workstreams did lately (fix attempts, gate failures,
    conflicts), asked of their workflows; one that does not answer in time is simply left
    out this round."""
    running = [
        child_workflow_id(handle.id, ws_id, entry.executions)
        for ws_id, entry in status.workstreams.items()
        if entry.status == WorkstreamState.RUNNING and entry.executions
    ]

    async def ask(query: Awaitable[list[RunEvent]]) -> list[RunEvent]:
        try:
            return await asyncio.wait_for(query, 2)
        except (RPCError, TimeoutError):
            return []

    answers = await asyncio.gather(
        ask(handle.query(PhaseWorkflow.noteworthy_events)),
        *(
            ask(
                client.get_workflow_handle_for(WorkstreamWorkflow.run, c).query(
                    WorkstreamWorkflow.events
                )
            )
            for c in running
        ),
    )
    return [event for answer in answers for event in answer]


def _print_summary(record: RunRecord, link: str, elapsed_s: float) -> None:
    counts: dict[str, int] = {}
    for entry in record.workstreams.values():
        counts[entry.status] = counts.get(entry.status, 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    colour = "green" if record.status == PhaseState.COMPLETED else "bold red"
    err.print(
        f"run [bold]{record.run_id}[/] [{colour}]{record.status}[/] in {elapsed_s:.1f}s ({tally})"
    )
    if record.reason:
        err.print(f"  reason: {record.reason}")
    if record.cost_usd_total:
        costly = ", ".join(
            f"{w} ${s.cost_usd:.4f}" for w, s in record.workstreams.items() if s.cost_usd
        )
        err.print(f"  cost: ${record.cost_usd_total:.4f} ({costly})")
    head = record.head_sha[:12] if record.head_sha else "-"
    err.print(f"  integration branch: {record.integration_branch} @ {head}")
    if is_url(record.repo_path):
        err.print(f"  {fetch_hint(record.repo_path, record.run_id)}")
    err.print(f"  web ui: {link}")
