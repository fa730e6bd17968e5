"""Small helpers shared by the workflow and CLI tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from ulid import ULID

from runtime.settings import Settings
from schemas.plan import Plan
from schemas.refs import workflow_id
from schemas.run import RunInput, RunOptions, RunRecord
from schemas.spec import PhaseSpec
from workflows.phase import PhaseWorkflow


def phase(**fields: Any) -> PhaseSpec:
    return PhaseSpec.model_validate({"phase_id": "PH-TEST", **fields})


def run_input(spec: PhaseSpec, repo: Path | str, **options: Any) -> RunInput:
    """``repo``: a path, or a git URL (a str: ``Path`` would fold its ``//``)."""
    return RunInput(
        run_id=str(ULID()),
        phase=spec,
        repo_path=repo if isinstance(repo, str) else str(repo),
        options=RunOptions(**{"heartbeat_timeout_s": 5, **options}),
    )


async def run_phase(client: Client, settings: Settings, input: RunInput) -> RunRecord:
    """Run to the end and return the record, whether the phase completed or failed."""
    handle = await client.start_workflow(
        PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
    )
    return await record_of(handle)


async def record_of(handle: WorkflowHandle[Any, RunRecord]) -> RunRecord:
    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        assert isinstance(cause, ApplicationError) and cause.type == "PhaseFailed", failure
        return RunRecord.model_validate(cause.details[0])


async def plan_of(client: Client, workflow_id: str) -> Plan:
    """The plan activity's result, as the run's history holds it (the run is opened at the
    same time: whichever ends first)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    planned = {
        event.event_id
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "plan_phase"
    }
    for event in history.events:
        done = event.activity_task_completed_event_attributes
        if event.HasField("activity_task_completed_event_attributes") and (
            done.scheduled_event_id in planned
        ):
            (plan,) = await client.data_converter.decode(done.result.payloads, [Plan])
            return plan  # type: ignore[no-any-return]
    raise AssertionError("the plan activity did not complete")


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def show(repo: Path, rev: str, path: str) -> str:
    return git_out(repo, "show", f"{rev}:{path}")


def snapshot(repo: Path) -> tuple[str, str, str]:
    """What uet must never change: checked-out branch, index, working tree status."""
    return (
        git_out(repo, "symbolic-ref", "HEAD") + " " + git_out(repo, "rev-parse", "HEAD"),
        git_out(repo, "ls-files", "-s"),
        git_out(repo, "status", "--porcelain", "--untracked-files=all"),
    )


async def wait_for_status(
    handle: WorkflowHandle[Any, RunRecord], predicate: Any, timeout_s: float = 60
) -> RunRecord:
    """Poll the ``status`` query until ``predicate(status)`` holds."""
    import asyncio

    from temporalio.service import RPCError

    deadline = asyncio.get_running_loop().time() + timeout_s
    status: RunRecord | None = None
    while True:
        try:
            status = await handle.query(PhaseWorkflow.status)
            if predicate(status):
                return status
        except RPCError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            # Say where the run was, so a failure on CI explains itself.
            seen = "no status" if status is None else _describe(status)
            raise AssertionError(f"the run never reached the expected state; last seen: {seen}")
        await asyncio.sleep(0.1)


def _describe(status: RunRecord) -> str:
    streams = ", ".join(
        f"{ws_id}={ws.status}" + (f" ({ws.reason})" if ws.reason else "")
        for ws_id, ws in status.workstreams.items()
    )
    return f"{status.status} ({status.reason or 'no reason'}); {streams}"


async def start_phase(
    client: Client, settings: Settings, input: RunInput
) -> WorkflowHandle[Any, RunRecord]:
    return await client.start_workflow(
        PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
    )


def cli_env(client: Client, settings: Settings) -> dict[str, str]:
    """The environment of a CLI process that uses the test's server, state dir and queue."""
    return {
        **os.environ,
        "UET_HOME": str(settings.home),
        "UET_TASK_QUEUE": settings.task_queue,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
    }


def cli(client: Client, settings: Settings):  # type: ignore[no-untyped-def]
    """``await uet(*args)``: the real CLI as a subprocess against the test's server and queue.

    It runs in a thread because the worker answering the CLI's queries runs on the test's
    event loop, which a blocking call would stall."""
    import asyncio
    import sys

    root = Path(__file__).resolve().parent.parent
    env = cli_env(client, settings)

    async def uet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # Standard input is never a terminal here: what a run does unattended.
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "starter", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return uet


def uet_process(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI as a subprocess with the environment given (blocking: for tests whose
    workers are other processes)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_demo_repo(where: Path) -> Path:
    """The demo's sample repository (examples/demo/make_repo.py) at ``where``."""
    import sys

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    subprocess.run(
        [sys.executable, str(demo / "make_repo.py"), str(where)], check=True, capture_output=True
    )
    return where
