"""The phase workflow's state: one model, held by the workflow and carried whole through
continue-as-new (by reference: RunInput.resume). Each part of the workflow owns its slice;
everything else is rebuilt from the spec.

Runs continued before this model existed carried a flat ``PhaseCarry``; it still reads (their
recorded histories replay with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from schemas.base import ArtifactRef, Model
from schemas.ledger import LedgerEntry, PatchState
from schemas.run import PhaseState, RunRecord


class BudgetState(Model):
    """What reviewers allowed beyond the phase's budget (workflows/budget.py)."""

    raised: dict[str, float] = Field(
        default_factory=dict, description="workstream → dollars added to its own limit"
    )
    warned: bool = Field(default=False, description="warn_at was reached: parallelism halved")
    closed: bool = Field(default=False, description="a budget review was rejected: no more runs")


class RouterState(Model):
    """The per-tool circuit breaker (workflows/router.py)."""

    failures: dict[str, int] = Field(default_factory=dict, description="failures in a row")
    open_until: dict[str, datetime] = Field(default_factory=dict, description="skipped until")
    learned_order: dict[str, list[str]] = Field(
        default_factory=dict,
        description="router learned: workstream → its auto chain in learned order (the plan's)",
    )
    learned_reason: dict[str, str] = Field(
        default_factory=dict, description="workstream → why its chain is in that order"
    )


class PhaseWorkflowState(Model):
    record: RunRecord = Field(description="the run record (statuses, reviews, saga stack, …)")
    next_wave: int = Field(default=0, ge=0, description="continued: the wave (step) to go on at")
    ledger: dict[str, LedgerEntry] = Field(
        default_factory=dict,
        description="patch_id → entry of finished workstreams, not yet written out",
    )
    written: dict[str, tuple[str, PatchState]] = Field(
        default_factory=dict, description="patch_id → (workstream, state) of the entries written"
    )
    checkpoints: dict[int, str] = Field(
        default_factory=dict, description="wave (step) → integration head after it; 0: the base"
    )
    history: ArtifactRef | None = Field(
        default=None, description="what has been integrated (for the oscillation check)"
    )
    remaining: dict[str, float] = Field(
        default_factory=dict, description="eager priorities: each one's remaining critical path"
    )
    rank: dict[str, int] = Field(
        default_factory=dict,
        description="eager: each one's place in the plan's order (lower starts sooner); "
        "empty: by remaining",
    )
    indexed_status: str = Field(
        default=str(PhaseState.RUNNING), description="the UetStatus search attribute as set"
    )
    budget: BudgetState = Field(default_factory=BudgetState)
    router: RouterState = Field(default_factory=RouterState)
    unprepared: dict[str, str] = Field(
        default_factory=dict,
        description="workstream → why its workspace's caches could not be prepared (it fails)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_carry(cls, data: Any) -> Any:
        """The flat PhaseCarry of runs continued before this model existed."""
        if not isinstance(data, dict) or "status" not in data:
            return data
        old = dict(data)
        record = dict(old.pop("status"))
        workstreams = {k: dict(v) for k, v in record.get("workstreams", {}).items()}
        for ws_id, executions in old.pop("executions", {}).items():
            workstreams[ws_id]["executions"] = executions
        record["workstreams"] = workstreams
        old.pop("completed_order", None)  # kept, never read
        return {
            "record": record,
            "next_wave": old.pop("next_wave"),
            "ledger": {e["patch_id"]: e for e in old.pop("ledger", [])},
            "budget": {
                "raised": old.pop("raised", {}),
                "warned": old.pop("budget_warned", False),
                "closed": old.pop("budget_closed", False),
            },
            "router": {
                "failures": old.pop("tool_failures", {}),
                "open_until": old.pop("circuits_open_until", {}),
            },
            **old,
        }
