"""Planning a phase as an activity (the phase may come by reference, as parts).

Given the run's id, it also records each workstream's shape (for the template detector, the
suggester and later runs' learned durations) and reads what earlier runs learned: durations for
workstreams without an estimate, and with ``router: {learned: true}`` the order of each auto
workstream's tools (activities/lib/telemetry/history.py). Neither can fail the plan."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.parts import read_run_document
from activities.lib.planning import plan_phase
from activities.lib.state_dir import StateDir
from activities.lib.telemetry.history import Learned, read_learned
from activities.lib.telemetry.shapes import shape_fact
from schemas.plan import Plan, PlanInput
from schemas.spec import PhaseSpec


class PlanningActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn(name="plan_phase")
    @heartbeating
    async def plan(self, input: PlanInput) -> Plan:
        phase = input.phase
        if phase is None:  # a large phase, given by reference
            phase = read_run_document(self.state.artifacts, input.document).phase
        learned = Learned()
        if input.run_id is not None:  # the database is read and written off the event loop
            learned = await asyncio.to_thread(self._learn_and_record, phase, input.run_id)
        plan = plan_phase(phase, learned.durations)
        plan.learned_from = {w: learned.learned_from[w] for w in plan.learned_durations}
        plan.tool_order = learned.tool_order
        plan.tool_order_reason = learned.tool_order_reason
        return plan

    def _learn_and_record(self, phase: PhaseSpec, run_id: str) -> Learned:
        learned = read_learned(self.state.home, phase, run_id)  # before this run's shapes
        self.state.telemetry.record(
            *(shape_fact(run_id, phase.phase_id, ws) for ws in phase.workstreams)
        )
        return learned
