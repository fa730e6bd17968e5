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

from rich.console import Console
from temporalio.api.enums.v1 import PendingActivityState, PendingWorkflowTaskState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from runtime.plugin import build_worker
from runtime.settings import Settings

#: A live worker polls again at least once a minute (the server ends each long poll after 60 s);
#: a dead one stays in the server's list with the time of its last poll for minutes.
FRESH_S = 70.0
#: How often a waiting command looks again.
CHECK_EVERY_S = 1.0
#: A task nobody picks up for this long has no live worker to go to.
STALL_S = 3.0


async def live_workers(client: Client, task_queue: str) -> list[str]:
    """Identities of the workers that polled ``task_queue`` within the last FRESH_S."""
    now = time.time()
    seen: set[str] = set()
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        try:
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
        except RPCError:
            return ["(unknown)"]  # cannot tell: assume someone serves it rather than compete
        for poller in answer.pollers:
            if now - poller.last_access_time.ToSeconds() <= FRESH_S:
                seen.add(poller.identity)
    return sorted(seen)


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
