"""The execution plan derived from a phase's dependency graph."""

from __future__ import annotations

from pydantic import Field

from schemas.base import ArtifactRef, Model
from schemas.spec import PhaseSpec


class PlanInput(Model):
    phase: PhaseSpec | None = None
    document: list[ArtifactRef] = Field(
        default_factory=list, description="a large phase by reference: RunInput.document"
    )
    run_id: str | None = Field(
        default=None,
        description="the run being planned: its workstreams' shapes are recorded, and its "
        "learned figures come from earlier runs only",
    )


class Plan(Model):
    phase_id: str
    waves: list[list[str]] = Field(description="topological generations; ids sorted in a wave")
    critical_path: list[str] = Field(
        description="the longest dependency chain by estimated duration"
    )
    critical_path_s: float = Field(
        description="length of the critical path (equal weights: 1 each)"
    )
    total_work_s: float
    speedup_bound: float = Field(
        description="sequential time / max(critical path, total work / max_parallel)"
    )
    remaining: dict[str, float] = Field(
        default_factory=dict,
        description="per workstream: the longest path from it to the end, itself included",
    )
    order: list[str] = Field(
        default_factory=list,
        description="eager: the order ready workstreams start in, the shortest the plan found "
        "by simulating (activities/lib/eager_order.py); empty: longest remaining path first",
    )
    learned_durations: dict[str, float] = Field(
        default_factory=dict,
        description="workstream → seconds learned from earlier runs, used where the spec has "
        "no estimated_duration_s",
    )
    learned_from: dict[str, str] = Field(
        default_factory=dict,
        description="workstream → what its learned duration is the median of",
    )
    tool_order: dict[str, list[str]] = Field(
        default_factory=dict,
        description="router learned: auto workstream → its chain by learned success rate, cost",
    )
    tool_order_reason: dict[str, str] = Field(
        default_factory=dict, description="workstream → why its chain is in that order"
    )
