"""Which AI tool a workstream uses, and the per-tool circuit breaker.

Held in the phase workflow: deterministic (workflow time only), so replay routes the same way.
A tool that failed ``failure_threshold`` times in a row in this run is skipped in favour of the
next in its chain until ``cooldown_s`` has passed; one success closes its circuit again.

With ``router: {learned: true}`` the plan carries each auto workstream's chain reordered by the
tools' learned success rate and cost (read once, by the planning activity); the router uses that
order instead of its rule's, the circuit breaker still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow

from workflows.journal import Journal

with workflow.unsafe.imports_passed_through():
    from schemas.events import EventType
    from schemas.phase_state import RouterState
    from schemas.routing import auto_chain
    from schemas.spec import Router, WorkstreamSpec
    from schemas.tools import ToolAttempt


@dataclass(frozen=True)
class Route:
    tools: list[str]
    why: str


class ToolRouter:
    def __init__(self, router: Router, journal: Journal, state: RouterState) -> None:
        self.router = router
        self.journal = journal
        self.state = state
        self.failures: dict[str, int] = state.failures  # the phase state's slice, kept in place
        self.open_until: dict[str, datetime] = state.open_until

    def route(self, ws: WorkstreamSpec) -> Route:
        tool = ws.execution_request.tool_id
        if tool != "auto":
            return Route([tool], f"{tool} (set in the spec)")
        learned = self.state.learned_order.get(ws.workstream_id)
        if learned:  # the plan's learned order (router: {learned: true})
            chain = list(learned)
            why = self.state.learned_reason.get(ws.workstream_id) or "learned order"
        else:
            chain, why = auto_chain(self.router, ws)
        now = workflow.now()
        available = [t for t in chain if self.open_until.get(t, now) <= now]
        skipped = [t for t in chain if t not in available]
        if not available:
            # Every circuit is open: try the one that closes first rather than nothing.
            available = [min(chain, key=lambda t: self.open_until[t])]
        if skipped:
            why += f"; circuit open for {', '.join(skipped)}"
        return Route(available, why)

    def record(self, attempts: list[ToolAttempt]) -> None:
        now = workflow.now()
        for attempt in attempts:
            tool = attempt.tool_id
            if attempt.ok:
                if tool in self.open_until:
                    del self.open_until[tool]
                    self.journal.event(
                        EventType.CIRCUIT_CLOSED, f"{tool} works again", tool_id=tool
                    )
                self.failures[tool] = 0
                continue
            self.failures[tool] = self.failures.get(tool, 0) + 1
            breaker = self.router.circuit_breaker
            if self.failures[tool] >= breaker.failure_threshold and tool not in self.open_until:
                self.open_until[tool] = now + timedelta(seconds=breaker.cooldown_s)
                self.journal.event(
                    EventType.CIRCUIT_OPENED,
                    f"{tool} failed {self.failures[tool]} times in a row; skipped for "
                    f"{breaker.cooldown_s:g}s",
                    tool_id=tool,
                )
