"""A tool run started ahead of its slot (``PhaseSpec.prepare_ahead``) waits here, its checkout
ready, until its phase hands it the slot: an update of the phase's, answered when a slot is
this workstream's.

The update's id is the workstream's child workflow id, so a retry of the activity (its
worker died meanwhile, say) attaches to the same update rather than ask twice, and hears the
same answer."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from schemas.run import TOOL_SLOT_UPDATE, SlotGrant, SlotRequest

#: The phase is gone or never knew this workstream: asking again cannot help.
FINAL = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION)
#: Between asks when the server could not take the update (restarting, too many in flight).
PAUSE = timedelta(seconds=0.5)


class SlotGate:
    """Where a tool run waits for its slot, if it was started ahead of it; the time it waited
    is not the tool's (its telemetry, the durations eager scheduling learns, leave it out)."""

    def __init__(self, phase_workflow_id: str | None) -> None:
        self.phase_workflow_id = phase_workflow_id
        self.waited_s = 0.0

    async def passed(self) -> None:
        """Once the slot is this run's (at once when it was started with one)."""
        if self.phase_workflow_id is None:
            return
        started = time.monotonic()
        try:
            await wait_for_slot(self.phase_workflow_id)
        finally:
            self.waited_s += time.monotonic() - started


async def wait_for_slot(phase_workflow_id: str) -> None:
    """Until the phase ``phase_workflow_id`` hands this workstream its slot; a non-retryable
    ``SlotWithdrawn`` when it gives the claim up instead (a rollback, the execution over)."""
    child = activity.info().workflow_id
    handle = activity.client().get_workflow_handle(phase_workflow_id)
    while True:
        try:
            grant = await handle.execute_update(
                TOOL_SLOT_UPDATE,
                SlotRequest(child_workflow_id=child),
                id=f"slot/{child}",
                result_type=SlotGrant,
            )
            break
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # The SDK turns a cancel of this activity into this error: a cancel ends the wait.
            _raise_if_cancelled()
        except WorkflowUpdateFailedError as failed:
            raise ApplicationError(
                f"{child}: the phase refused its slot: {failed.cause or failed}",
                type="SlotWithdrawn",
                non_retryable=True,
            ) from None
        except RPCError as err:
            if err.status in FINAL:
                raise ApplicationError(
                    f"{child}: the phase {phase_workflow_id} cannot hand out its slot: "
                    f"{err.message}",
                    type="SlotWithdrawn",
                    non_retryable=True,
                ) from None
            _raise_if_cancelled()
            await asyncio.sleep(PAUSE.total_seconds())
    if not grant.granted:
        raise ApplicationError(
            f"{child}: its phase gave up the workstream's claim to a slot (rolled back or "
            "ended): the tool does not run",
            type="SlotWithdrawn",
            non_retryable=True,
        )


def _raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if activity.is_cancelled() or (task is not None and task.cancelling()):
        raise asyncio.CancelledError()
