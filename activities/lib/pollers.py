"""Who polls a task queue: the live workers Temporal knows of (the only registry there is)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

#: A live worker polls again at least once a minute (the server ends each long poll after 60 s);
#: a dead one stays in the server's list with the time of its last poll for minutes.
FRESH_S = 70.0
BOTH = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
ACTIVITIES = (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,)


async def live_pollers(
    client: Client, task_queue: str, kinds: Iterable[TaskQueueType.ValueType] = BOTH
) -> list[str] | None:
    """Identities of the workers that polled ``task_queue`` within the last FRESH_S; None
    when the server cannot tell."""
    now = time.time()
    seen: set[str] = set()
    for kind in kinds:
        try:
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
        except RPCError:
            return None
        for poller in answer.pollers:
            if now - poller.last_access_time.ToSeconds() <= FRESH_S:
                seen.add(poller.identity)
    return sorted(seen)
