"""What the workflows may ask about workers: who offers a tool now (for a run that waits)."""

from __future__ import annotations

from temporalio import activity

from activities.lib.pollers import ACTIVITIES, live_pollers
from activities.lib.state_dir import StateDir
from schemas.run import OffersInput, OffersResult


class WorkerActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    async def tool_offers(self, input: OffersInput) -> OffersResult:
        """The live workers polling a tool's queue (its run waits; the status says why)."""
        found = await live_pollers(activity.client(), input.task_queue, ACTIVITIES)
        return OffersResult(workers=found)
