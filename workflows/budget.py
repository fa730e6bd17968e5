"""The phase's budget: what each tool run may still spend, a warning that halves parallelism,
and at a limit a review — a person may raise it (approve) or end the spending (reject)."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

from workflows.board import Board
from workflows.journal import Journal
from workflows.review import ReviewDesk
from workflows.slots import Slots

with workflow.unsafe.imports_passed_through():
    from schemas.events import EventType
    from schemas.phase_state import BudgetState
    from schemas.review import ReviewNeed
    from schemas.run import WorkstreamResult, WorkstreamState
    from schemas.saga import RollbackRequest
    from schemas.spec import PhaseSpec


class Budget:
    def __init__(
        self,
        state: BudgetState,
        phase: PhaseSpec,
        board: Board,
        journal: Journal,
        desk: ReviewDesk,
        slots: Slots,
        *,
        rolling_back: Callable[[], bool],
        roll_back: Callable[[RollbackRequest], None],
    ) -> None:
        self.state = state
        self.spec = phase.budget
        self.on_failure = phase.on_failure
        self.board = board
        self.record = board.record
        self.journal = journal
        self.desk = desk
        self.slots = slots
        self.rolling_back = rolling_back
        self.roll_back = roll_back

    def overspent(self, ws_id: str) -> str | None:
        """Why no more tool runs may start for this workstream, or None."""
        limit = self.record.budget_usd_total
        spent = self.record.cost_usd_total
        if limit is not None and spent >= limit:
            return f"the phase has spent ${spent:.2f} of its ${limit:.2f} budget"
        per_ws = self._per_ws_limit(ws_id)
        cost = self.board.ws(ws_id).cost_usd
        if per_ws is not None and cost >= per_ws:
            return f"{ws_id} has spent ${cost:.2f} of its ${per_ws:.2f} budget"
        return None

    def _per_ws_limit(self, ws_id: str) -> float | None:
        base = self.spec.max_cost_usd_per_workstream
        return None if base is None else base + self.state.raised.get(ws_id, 0.0)

    def allowance(self, ws_id: str) -> float | None:
        """What the workstream's next tool runs may spend, for tools that enforce it."""
        left = []
        if self.record.budget_usd_total is not None:
            left.append(self.record.budget_usd_total - self.record.cost_usd_total)
        per_ws = self._per_ws_limit(ws_id)
        if per_ws is not None:
            left.append(per_ws - self.board.ws(ws_id).cost_usd)
        return round(max(min(left), 0.0), 6) if left else None

    async def admit(self, ws_id: str) -> WorkstreamResult | None:
        """None when a tool run may start; at a limit a person may raise it (approve) or not
        (reject, which then follows the phase's on_failure): then the workstream is dropped."""
        while (why := self.overspent(ws_id)) is not None:
            if self.state.closed:
                return WorkstreamResult.dropped(ws_id, f"budget exhausted: {why}")
            self.journal.event(EventType.BUDGET_EXCEEDED, why, workstream_id=ws_id)
            self.board.set(ws_id, WorkstreamState.AWAITING_REVIEW)
            record = await self.desk.ask(
                ws_id,
                ReviewNeed(reason="budget_exceeded", summary=why),
                # Another budget review rejected meanwhile answers this one too.
                lambda: self.rolling_back() or self.state.closed,
            )
            decision = record.decision
            if decision is None:
                if self.state.closed:
                    return WorkstreamResult.dropped(ws_id, f"budget exhausted: {why}")
                return WorkstreamResult.dropped(
                    ws_id, "review abandoned: the phase is being rolled back"
                )
            if decision.decision == "reject":
                self.state.closed = True
                if self.on_failure == "rollback":
                    self.roll_back(
                        RollbackRequest(
                            to_wave=0,
                            reason=f"budget exhausted ({why}); rejected by {decision.reviewer}",
                        )
                    )
                return WorkstreamResult.dropped(
                    ws_id, f"budget exhausted: {why}; rejected by {decision.reviewer}"
                )
            self._raise(ws_id, decision.budget_increase_usd or 0.0, decision.reviewer)
        return None

    def _raise(self, ws_id: str, increase: float, reviewer: str) -> None:
        total = self.record.budget_usd_total
        if total is not None and self.record.cost_usd_total >= total:
            self.record.budget_usd_total = total + increase
        else:
            self.state.raised[ws_id] = self.state.raised.get(ws_id, 0.0) + increase
        self.journal.event(
            EventType.BUDGET_RAISED,
            f"budget raised by ${increase:.2f} by {reviewer}",
            workstream_id=ws_id,
        )

    def spent(self, ws_id: str, cost_usd: float) -> None:
        """A tool run's cost: counted, and at warn_at of the total, parallelism halved."""
        self.board.ws(ws_id).cost_usd += cost_usd
        self.record.cost_usd_total = round(
            sum(s.cost_usd for s in self.record.workstreams.values()), 6
        )
        limit = self.record.budget_usd_total
        if limit is None or self.state.warned:
            return
        if self.record.cost_usd_total >= self.spec.warn_at * limit:
            self.state.warned = True
            self.slots.size = max(1, self.slots.size // 2)
            self.journal.event(
                EventType.BUDGET_WARNING,
                f"${self.record.cost_usd_total:.2f} of the ${limit:.2f} budget spent; "
                f"parallelism halved to {self.slots.size}",
            )
