"""Is any worker serving the task queue? And a worker of this process while one is needed.

Commands that wait for a run to move (``uet cancel``, ``uet rollback``) would otherwise wait
forever when nobody executes it — after a foreground ``uet run`` was interrupted, say. They
look for live workers first: one that is running on another host must keep the work (a
worker of ours would take some and drop it again when the command ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rich.console import Console
from temporalio.api.enums.v1 import PendingActivityState, PendingWorkflowTaskState
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.lib.adapters import ADAPTERS
from activities.lib.pollers import ACTIVITIES, live_pollers
from runtime.capabilities import parse_identity
from runtime.plugin import build_worker
from runtime.settings import Settings
from schemas.refs import tool_queue

#: How often a waiting command looks again.
CHECK_EVERY_S = 1.0
#: A task nobody picks up for this long has no live worker to go to.
STALL_S = 3.0


async def live_workers(client: Client, task_queue: str) -> list[str]:
    """Identities of the workers that polled ``task_queue`` within the last FRESH_S."""
    found = await live_pollers(client, task_queue)
    return ["(unknown)"] if found is None else found  # cannot tell: assume someone serves it


async def stalled(client: Client, workflow_ids: list[str]) -> bool:
    """Whether any of these workflows has a task that nobody has picked up for STALL_S: the
    workers a queue lists may have died without a word (they look alive for a minute)."""
    now = time.time()
    for workflow_id in workflow_ids:
        try:
            raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
        except RPCError:
            continue  # not started yet, or gone
        task = raw.pending_workflow_task
        waiting = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        if (
            raw.HasField("pending_workflow_task")
            and task.state == waiting
            and now - task.scheduled_time.ToSeconds() > STALL_S
        ):
            return True
        for pending in raw.pending_activities:
            if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
                continue
            due = (
                pending.next_attempt_schedule_time
                if pending.HasField("next_attempt_schedule_time")
                else pending.scheduled_time
            )
            if now - due.ToSeconds() > STALL_S:
                return True
    return False


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


def quiet_expected_activity_failures() -> None:
    logger = logging.getLogger("temporalio.activity")
    if not any(isinstance(f, _ExpectedActivityFailures) for f in logger.filters):
        logger.addFilter(_ExpectedActivityFailures())


@contextlib.asynccontextmanager
async def served(
    client: Client,
    settings: Settings,
    what: str,
    console: Console,
    workflow_ids: list[str],
    *,
    own_worker: bool = True,
) -> AsyncIterator[None]:
    """While the body waits for ``what`` to happen to ``workflow_ids``: if no worker serves the
    task queue — none polls it, or their tasks wait unpicked — start one in this process
    (``own_worker``) or say what the wait is for."""
    stack = contextlib.AsyncExitStack()
    told = False

    async def nobody_serves() -> bool:
        if not await live_workers(client, settings.task_queue):
            return True
        return await stalled(client, workflow_ids)

    async def watch() -> None:
        nonlocal told
        while True:
            if await nobody_serves():
                if own_worker:
                    quiet_expected_activity_failures()
                    console.print(
                        f"no worker serves task queue {settings.task_queue!r}; this process "
                        f"runs {what}"
                    )
                    await stack.enter_async_context(build_worker(client, settings))
                    return
                if not told:
                    told = True
                    console.print(
                        f"[yellow]waiting for a worker on task queue {settings.task_queue!r} "
                        f"to run {what}[/]; none is running — start one with `uet worker`"
                    )
            await asyncio.sleep(CHECK_EVERY_S)

    watcher = asyncio.create_task(watch())
    try:
        async with stack:
            try:
                yield
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
    finally:
        watcher.cancel()


# -- uet workers -------------------------------------------------------------------------------


@dataclass
class WorkerRow:
    identity: str
    tools: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    code: str = ""
    #: What it runs now: "run_tool for uet-01J…/ws/api", one per started activity.
    running: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "identity": self.identity,
            "tools": self.tools,
            "labels": self.labels,
            "code": self.code,
            "running": self.running,
            "load": len(self.running),
        }


#: Open workflows looked at for what each worker runs (a CLI command, not a census).
LOAD_SCAN_LIMIT = 200


async def worker_table(client: Client, task_queue: str) -> list[WorkerRow]:
    """Live workers of ``task_queue``: the tools they offer (the tool queues they poll), their
    labels (from their identity) and the activities they run now (open workflows' pending
    activities, by the identity of the worker that started them)."""
    rows: dict[str, WorkerRow] = {}

    def row(identity: str) -> WorkerRow:
        if identity not in rows:
            _, labels, code = parse_identity(identity)
            rows[identity] = WorkerRow(identity=identity, labels=list(labels), code=code)
        return rows[identity]

    for identity in await live_pollers(client, task_queue) or []:
        row(identity)
    for tool_id in ADAPTERS:
        for identity in (
            await live_pollers(client, tool_queue(task_queue, tool_id), ACTIVITIES) or []
        ):
            row(identity).tools.append(tool_id)
    for identity, what in await _running(client, task_queue):
        if identity in rows:
            rows[identity].running.append(what)
    return sorted(rows.values(), key=lambda r: r.identity)


async def _running(client: Client, task_queue: str) -> list[tuple[str, str]]:
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    ids: list[str] = []
    try:
        async for execution in client.list_workflows(query, limit=LOAD_SCAN_LIMIT):
            ids.append(execution.id)
    except RPCError:
        return []
    gate = asyncio.Semaphore(8)

    async def started(workflow_id: str) -> list[tuple[str, str]]:
        async with gate:
            try:
                raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
            except RPCError:
                return []
        return [
            (p.last_worker_identity, f"{p.activity_type.name} for {workflow_id}")
            for p in raw.pending_activities
            if p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ]

    found = await asyncio.gather(*(started(i) for i in ids))
    return [item for items in found for item in items]
