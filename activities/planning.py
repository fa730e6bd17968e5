"""Planning a phase as an activity (the phase may come by reference, as parts)."""

from __future__ import annotations

from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.parts import read_document
from activities.lib.planning import plan_phase
from activities.lib.state_dir import StateDir
from schemas.plan import Plan, PlanInput
from schemas.run import RunDocument


class PlanningActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn(name="plan_phase")
    @heartbeating
    async def plan(self, input: PlanInput) -> Plan:
        phase = input.phase
        if phase is None:  # a large phase, given by reference
            text = read_document(self.state.artifacts, input.document)
            phase = RunDocument.model_validate_json(text).phase
        return plan_phase(phase)
