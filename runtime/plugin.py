"""A uet worker's wiring, as a temporalio plugin: its workflows (outside the SDK's sandbox:
workflows/__init__.py says why) and its activities (bound to the state dir). ``build_worker``
and ``serve`` are what ``uet worker``, ``uet run``'s in-process worker, the tests and the
benches all use."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker

from activities.lib import gc
from activities.lib.state_dir import StateDir
from activities.lib.step_sandbox import startup_note
from activities.ready_patch import ReadyPatchActivities
from activities.registry import all_activities
from activities.tools import ToolActivities
from runtime.capabilities import Capabilities, detect
from runtime.connect import connect, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.settings import Settings
from schemas.refs import tool_queue
from workflows.phase import PhaseWorkflow
from workflows.publish import PublishWorkflow
from workflows.rollback import RollbackWorkflow
from workflows.workstream import WorkstreamWorkflow

WORKFLOWS = [PhaseWorkflow, WorkstreamWorkflow, RollbackWorkflow, PublishWorkflow]


class UetPlugin(SimplePlugin):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "uet",
            workflows=WORKFLOWS,
            activities=all_activities(StateDir(settings.home)),
            run_context=lambda: _started(settings.home),
        )


@asynccontextmanager
async def _started(home: Path) -> AsyncIterator[None]:
    """Before the worker polls (so none of its own activities is making a scratch dir yet)."""
    await asyncio.to_thread(clean_after_dead_workers, home)
    note = await asyncio.to_thread(startup_note)
    if note is not None:  # phases that do not say get no sandbox here: say so once
        logging.getLogger("uet.worker").warning(note)
    yield


def clean_after_dead_workers(home: Path) -> int:
    """Remove the scratch dirs whose owner was a process of this host that is gone (what a
    killed worker left); bytes freed. Never a live owner's or another host's, never failing
    the worker's start: what goes wrong is one log line."""
    log = logging.getLogger("uet.worker")
    log.setLevel(logging.INFO)
    try:
        done = gc.remove(gc.dead_local_scratch(home), limit=float("-inf"))
    except Exception as exc:
        log.warning(f"cleaning up after dead workers failed ({exc}); starting anyway")
        return 0
    if done.removed:
        log.info(
            f"removed {len(done.removed)} scratch dir(s) left by dead workers in "
            f"{home / 'worktrees'}: {gc.human(done.freed)} freed"
        )
    return done.freed


class UetWorker:
    """One host's worker: the main task queue (workflows, git, gates: everything but tool
    runs), and the queue of each tool this host has (runtime/capabilities.py), so tool runs
    reach only hosts that can run them."""

    def __init__(self, main: Worker, tools: dict[str, Worker], capabilities: Capabilities):
        self.main = main
        self.tools = tools
        self.capabilities = capabilities
        self._stack: AsyncExitStack | None = None

    @property
    def task_queue(self) -> str:
        return self.main.task_queue

    async def __aenter__(self) -> UetWorker:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.main)
            for worker in self.tools.values():
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


def build_worker(
    client: Client, settings: Settings, capabilities: Capabilities | None = None, **options: Any
) -> UetWorker:
    """``capabilities``: what this host offers (default: detected, runtime/capabilities.py)."""
    offered = capabilities or detect()
    identity = options.pop("identity", None) or offered.identity()
    main = Worker(
        client,
        task_queue=settings.task_queue,
        plugins=[UetPlugin(settings)],
        identity=identity,
        **options,
    )
    state = StateDir(settings.home)
    tools = {t: tool_worker(client, settings, t, identity, state) for t in offered.tools}
    return UetWorker(main, tools, offered)


def tool_worker(
    client: Client,
    settings: Settings,
    tool_id: str,
    identity: str | None = None,
    state: StateDir | None = None,
) -> Worker:
    """The worker of one tool's queue: tool runs only, alone or with their patch's validation
    and commit (take_tool_patch). (The main worker keeps run_tool too, for runs whose history
    put tool runs on the main queue, before "tool-queues".)"""
    state = state or StateDir(settings.home)
    return Worker(
        client,
        task_queue=tool_queue(settings.task_queue, tool_id),
        activities=[ToolActivities(state).run_tool, ReadyPatchActivities(state).take_tool_patch],
        identity=identity,
    )


async def serve(settings: Settings) -> None:
    """A worker until SIGINT or SIGTERM."""
    target = target_from_env()
    offered = detect()  # a wrong UET_WORKER_TOOLS is said before anything else
    try:
        client = await connect(target, timeout_s=30)
    except Exception:
        raise UserError(
            f"Temporal at {target.address} is unreachable; check TEMPORAL_ADDRESS and that the "
            "server there is up (`uet server start` for the embedded one)",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    worker = build_worker(client, settings, offered)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log = logging.getLogger("uet.worker")
        log.setLevel(logging.INFO)  # this one line even where uet logs warnings only
        log.info(
            f"worker started: task queue {settings.task_queue!r} on {target.address} "
            f"(namespace {target.namespace}), state dir {settings.home}, pid {os.getpid()}; "
            f"tools: {', '.join(offered.tools)}; labels: {', '.join(offered.labels) or 'none'}"
        )
        await stop.wait()
