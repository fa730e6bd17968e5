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
