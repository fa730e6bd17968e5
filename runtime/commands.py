"""What each ``uet`` command does. starter.py only parses arguments and calls these."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from ulid import ULID

from activities.artifacts import ArtifactStore
from activities.git import open_repository
from activities.parts import by_reference
from activities.planning import plan_phase
from activities.workspace import resolve_commit
from runtime import devserver
from runtime.connect import Target, check_namespace, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.progress import ProgressPrinter
from runtime.reports import read_report
from runtime.settings import Settings
from runtime.specfile import LoadedSpec, load_spec
from schemas.base import ArtifactRef
from schemas.refs import workflow_id
from schemas.run import PhaseState, RunInput, RunOptions, RunStatus
from workflows import search
from workflows.phase import PhaseWorkflow

err = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


# -- validate / plan ---------------------------------------------------------------------------


def validate(spec_path: str) -> int:
    loaded = load_spec(spec_path)
    the_plan = plan_phase(loaded.spec)
    spec = loaded.spec
    print(
        f"{spec_path}: ok — phase {spec.phase_id}, {len(spec.workstreams)} workstreams in "
        f"{len(the_plan.waves)} waves, max_parallel {spec.max_parallel}"
    )
    return ExitCode.COMPLETED


def plan(spec_path: str, as_json: bool) -> int:
    spec = load_spec(spec_path).spec
    the_plan = plan_phase(spec)
    if as_json:
        emit_json(the_plan.model_dump(mode="json"))
        return ExitCode.COMPLETED
    weighted = any(ws.estimated_duration_s for ws in spec.workstreams)
    unit = "s" if weighted else " workstreams"
    print(f"{spec.phase_id}: {len(spec.workstreams)} workstreams, {len(the_plan.waves)} waves, "
          f"max_parallel {spec.max_parallel}")  # fmt: skip
    for number, wave in enumerate(the_plan.waves, start=1):
        print(f"  wave {number}: {', '.join(wave)}")
    print(f"critical path: {' -> '.join(the_plan.critical_path)} "
          f"({the_plan.critical_path_s:g}{unit})")  # fmt: skip
    print(f"speedup bound: {the_plan.speedup_bound:g}x over running them one by one "
          f"(total {the_plan.total_work_s:g}{unit})")  # fmt: skip
    return ExitCode.COMPLETED


# -- run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    spec_path: str
    repo: str
    as_json: bool = False
    detach: bool = False
    no_worker: bool = False
    heartbeat_timeout_s: float = 30.0


async def run(request: RunRequest) -> int:
    settings = Settings.from_env()
    loaded = load_spec(request.spec_path)
    repo_path = await _check_repo(request.repo, loaded.spec.base_ref)
    devserver.ensure_writable(settings.home)
    store = ArtifactStore(settings.home / "artifacts")
    patch_files = _import_patch_files(loaded, store)
    target = target_from_env()
    client, embedded = await devserver.connect_or_start(settings, target)
    await check_namespace(client)
    attributes_ok = await _ensure_search_attributes(client, embedded)

    run_id = str(ULID())
    spec = loaded.spec
    run_input = RunInput(
        run_id=run_id,
        phase=spec,
        repo_path=str(repo_path),
        patch_files=patch_files,
        options=RunOptions(
            heartbeat_timeout_s=request.heartbeat_timeout_s, search_attributes=attributes_ok
        ),
    )
    run_input = by_reference(run_input, store)  # a large phase travels as artifact parts
    start = functools.partial(
        client.start_workflow,
        PhaseWorkflow.run,
        run_input,
        id=workflow_id(run_id),
        task_queue=settings.task_queue,
        search_attributes=_run_search_attributes(run_id, spec.phase_id) if attributes_ok else None,
        static_summary=f"{spec.phase_id}: {spec.title}" if spec.title else spec.phase_id,
    )
    if request.detach:
        if not request.no_worker:
            devserver.start_background_worker(settings)  # else nobody would execute the run
        handle = await start()
        err.print(f"started run [bold]{run_id}[/] — {ui_link(settings, target, handle.id)}")
        if request.as_json:
            emit_json(_initial_record(run_id, handle.id, spec.phase_id))
        else:
            print(run_id)
        return ExitCode.COMPLETED

    from worker import build_worker

    in_process = None if request.no_worker else build_worker(client, settings)
    if in_process is not None:
        _quiet_expected_activity_failures()
    async with in_process or contextlib.nullcontext():
        handle = await start()
        link = ui_link(settings, target, handle.id)
        err.print(f"run [bold]{run_id}[/] of phase {spec.phase_id} — {link}")
        return await _follow(handle, link, request.as_json)


class _ExpectedActivityFailures(logging.Filter):
    """The SDK logs every failed activity with its traceback. A workstream failure the user
    caused (a missing program, a patch that does not apply, a full disk) is an
    ``ApplicationError`` whose message reaches the run record and the progress table: on the
    terminal of ``uet run`` it is one line, never a traceback. Unexpected errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ApplicationError):
            if error.non_retryable:
                return False  # final: reported as the workstream's reason
            record.msg = f"{record.msg} (will retry): {error.message.splitlines()[0][:300]}"
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_expected_activity_failures() -> None:
    logger = logging.getLogger("temporalio.activity")
    if not any(isinstance(f, _ExpectedActivityFailures) for f in logger.filters):
        logger.addFilter(_ExpectedActivityFailures())


async def _check_repo(repo: str, base_ref: str | None) -> Path:
    """The user's repository: a work tree, a linked worktree or a bare repository (uet only
    needs its git dir), with at least one commit or a base_ref that names one."""
    path = Path(repo).expanduser().resolve()
    if not path.exists():
        raise UserError(f"--repo {repo}: no such directory; pass the path of a git repository")
    if not path.is_dir():
        raise UserError(f"--repo {repo}: is a file, not a directory; pass a git repository")
    try:
        git = await open_repository(path)
    except ApplicationError as exc:
        raise UserError(f"--repo {repo}: {exc.message}; pass a git repository") from None
    if await resolve_commit(git, "HEAD") is None and base_ref is None:
        raise UserError(f"--repo {repo}: the repository has no commits yet; commit something first")
    if base_ref is not None and await resolve_commit(git, base_ref) is None:
        raise UserError(
            f"base_ref {base_ref!r} does not name a commit in {path}; "
            "fix base_ref in the phase file or create the branch"
        )
    return path


def _import_patch_files(loaded: LoadedSpec, store: ArtifactStore) -> dict[str, ArtifactRef]:
    """Ready patches travel as artifact references, so workers never read the spec's folder."""
    refs = {}
    for ws in loaded.spec.workstreams:
        if ws.execution_request.tool_id == "patch" and ws.execution_request.patch_file:
            source = loaded.directory / ws.execution_request.patch_file
            try:
                refs[ws.workstream_id] = store.put_file(source, "text/x-diff")
            except ApplicationError as exc:  # DiskFull
                raise UserError(f"{ws.workstream_id}: patch_file {source}: {exc.message}") from None
            except OSError as exc:
                raise UserError(
                    f"{ws.workstream_id}: cannot store patch_file {source} in {store.root} "
                    f"({exc.strerror or exc}); check UET_HOME and the file's permissions"
                ) from None
    return refs


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

    record = RunStatus(
        run_id=run_id, workflow_id=wf_id, phase_id=phase_id,
        integration_branch=integration_branch(run_id),
    )  # fmt: skip
    return record.model_dump(mode="json")


def ui_link(settings: Settings, target: Target, wf_id: str) -> str:
    base = os.environ.get("UET_UI_URL") or f"http://localhost:{settings.ui_port}"
    return f"{base.rstrip('/')}/namespaces/{target.namespace}/workflows/{wf_id}"


async def _follow(handle: WorkflowHandle[Any, RunStatus], link: str, as_json: bool) -> int:
    """Print progress until the run ends; the final record decides the exit code."""
    started = time.monotonic()
    printer = ProgressPrinter(err)
    result_task = asyncio.ensure_future(_final_record(handle))
    while not result_task.done():
        with contextlib.suppress(RPCError, asyncio.TimeoutError):
            printer.update(await asyncio.wait_for(handle.query(PhaseWorkflow.status), 5))
        await asyncio.wait([result_task], timeout=0.5)
    record = result_task.result()
    printer.update(record)
    _print_summary(record, link, time.monotonic() - started)
    if as_json:
        emit_json(record.model_dump(mode="json"))
    return ExitCode.COMPLETED if record.status == PhaseState.COMPLETED else ExitCode.FAILED


async def _final_record(handle: WorkflowHandle[Any, RunStatus]) -> RunStatus:
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == "PhaseFailed" and cause.details:
            return RunStatus.model_validate(cause.details[0])
        # A cancelled run carries no record in its failure; it wrote its report before ending.
        report = read_report(handle.id.removeprefix("uet-"))
        if report is not None:
            return report.record
        raise UserError(
            f"run {handle.id} ended abnormally: {cause or failure}", exit_code=ExitCode.FAILED
        ) from None


def _print_summary(record: RunStatus, link: str, elapsed_s: float) -> None:
    counts: dict[str, int] = {}
    for entry in record.workstreams.values():
        counts[entry.status] = counts.get(entry.status, 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    colour = "green" if record.status == PhaseState.COMPLETED else "bold red"
    err.print(f"run [bold]{record.run_id}[/] [{colour}]{record.status}[/] in {elapsed_s:.1f}s "
              f"({tally})")  # fmt: skip
    if record.reason:
        err.print(f"  reason: {record.reason}")
    if record.cost_usd_total:
        costly = ", ".join(f"{w} ${s.cost_usd:.4f}" for w, s in record.workstreams.items()
                           if s.cost_usd)  # fmt: skip
        err.print(f"  cost: ${record.cost_usd_total:.4f} ({costly})")
    head = record.head_sha[:12] if record.head_sha else "-"
    err.print(f"  integration branch: {record.integration_branch} @ {head}")
    err.print(f"  web ui: {link}")


# -- status ------------------------------------------------------------------------------------


async def status(run_id: str, as_json: bool) -> int:
    settings = Settings.from_env()
    target = target_from_env()
    client = await connect_existing(target)
    handle = client.get_workflow_handle_for(PhaseWorkflow.run, workflow_id(run_id))
    try:
        description = await handle.describe()
    except RPCError:
        raise UserError(f"no run {run_id!r} in namespace {target.namespace}") from None
    if description.status == WorkflowExecutionStatus.RUNNING:
        try:
            record = await asyncio.wait_for(handle.query(PhaseWorkflow.status), 10)
        except (TimeoutError, RPCError):
            raise UserError(
                f"run {run_id} is running but no worker answers on task queue "
                f"{settings.task_queue!r}; start one with `uet worker`",
                exit_code=ExitCode.FAILED,
            ) from None
    else:
        record = await _final_record(handle)
    if as_json:
        emit_json(record.model_dump(mode="json"))
    else:
        ProgressPrinter(err).update(record)
        _print_summary_line(record, ui_link(settings, target, handle.id))
    return ExitCode.COMPLETED if record.status != PhaseState.FAILED else ExitCode.FAILED


def _print_summary_line(record: RunStatus, link: str) -> None:
    cost = f" cost=${record.cost_usd_total:.4f}" if record.cost_usd_total else ""
    print(f"{record.run_id} {record.status} head={record.head_sha or '-'} "
          f"branch={record.integration_branch}{cost}")  # fmt: skip
    err.print(f"  web ui: {link}")


async def connect_existing(target: Target) -> Client:
    from runtime.connect import connect

    try:
        client = await connect(target)
    except Exception:
        raise UserError(
            f"Temporal at {target.address} is unreachable; start it with `uet server` "
            "or check TEMPORAL_ADDRESS",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    await check_namespace(client)
    return client


# -- server / worker ---------------------------------------------------------------------------


def server(action: str | None) -> int:
    settings = Settings.from_env()
    if action == "stop":
        stopped = [n for n in ("worker", "server") if devserver.stop_background(settings, n)]
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return ExitCode.COMPLETED
    target = target_from_env()
    args = devserver.server_args(settings, target.address, target.namespace)
    devserver.ensure_writable(settings.home)
    devserver.check_ports_free(settings, target.address)
    err.print(
        f"Temporal dev server on {target.address}, Web UI http://localhost:{settings.ui_port}"
    )
    os.execv(args[0], args)


def worker() -> int:
    from worker import serve

    asyncio.run(serve(Settings.from_env()))
    return ExitCode.COMPLETED
