"""A uet worker: runs phase and workstream workflows and every activity.

    python worker.py        (or: uet worker)

Connection settings come from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / profiles; the state dir
(artifacts, checkouts) from UET_HOME, which every worker of a deployment must share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.gates import GateActivities
from activities.parts import PartActivities
from activities.patches import PatchActivities
from activities.planning import PlanningActivities
from activities.saga import SagaActivities
from activities.state_dir import StateDir
from activities.tools import ToolActivities
from activities.workspace import WorkspaceActivities
from runtime.settings import Settings
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow
from workflows.workstream import WorkstreamWorkflow

WORKFLOWS = [PhaseWorkflow, WorkstreamWorkflow, RollbackWorkflow]
#: The log pipeline (structlog, rich tracebacks and the pygments they highlight with) runs
#: inside the sandbox when a workflow logs: re-imported there, rich touches os.path and a
#: failed activation could not even be logged, and every lazily imported pygments module
#: warned "imported after initial workflow load".
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "rich", "structlog", "pygments"
    )
)


def build_worker(client: Client, settings: Settings, **options: Any) -> Worker:
    state = StateDir(settings.home)
    git = WorkspaceActivities(state)
    tools = ToolActivities(state)
    gates = GateActivities(state)
    patches = PatchActivities(state)
    saga = SagaActivities(state)
    parts = PartActivities(state)
    planning = PlanningActivities(state)
    options.setdefault("workflow_runner", SANDBOX)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            planning.plan,
            git.open_run,
            git.commit_patch,
            git.integrate,
            git.close_run,
            tools.run_tool,
            patches.validate_patch,
            patches.quarantine_patch,
            gates.run_gates,
            saga.compensate,
            parts.store_part,
            parts.load_part,
        ],
        **options,
    )


async def serve(settings: Settings) -> None:
    from runtime.connect import connect, target_from_env

    target = target_from_env()
    client = await connect(target, timeout_s=30)
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log = logging.getLogger("uet.worker")
        log.setLevel(logging.INFO)  # this one line even where uet logs warnings only
        log.info(
            f"worker started: task queue {settings.task_queue!r} on {target.address} "
            f"(namespace {target.namespace}), state dir {settings.home}, pid {os.getpid()}"
        )
        await stop.wait()


def main() -> None:
    from runtime import logs

    logs.configure()
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
