"""An incompatible change to the phase workflow (tests/test_replay.py): one more activity
before the real work. A module of its own, importing nothing but workflow code: the sandbox
re-imports it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.phase import PhaseWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.planning import PlanningActivities
    from schemas.plan import PlanInput
    from schemas.run import RunInput, RunRecord


@workflow.defn(name="PhaseWorkflow")
class PlansTwice(PhaseWorkflow):
    @workflow.run
    async def run(self, input: RunInput) -> RunRecord:
        await workflow.execute_activity_method(
            PlanningActivities.plan,
            PlanInput(phase=input.phase),
            start_to_close_timeout=timedelta(minutes=1),
        )
        return await super().run(input)
