"""The floor for bench/floor.py: the least a design with one child workflow and one activity
per workstream can cost — a parent that starts its children one after another, each running
one activity that does nothing."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def nothing(n: int) -> int:
    return n


@workflow.defn
class FloorChild:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            nothing, n, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class FloorParent:
    @workflow.run
    async def run(self, n: int) -> int:
        done = 0
        for i in range(n):
            done += (
                await workflow.execute_child_workflow(
                    FloorChild.run, i, id=f"{workflow.info().workflow_id}/{i}"
                )
                >= 0
            )
        return done
