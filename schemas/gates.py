"""Acceptance gates: inputs and results of running them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.learning import PatternApplied, Resolving
from schemas.spec import GateSpec, WorkspaceSpec

GateStatus = Literal["passed", "failed", "timeout", "skipped"]


class GateRunInput(Model):
    repo_path: str
    run_id: str
    label: str = Field(description="who the gates are for: a workstream id or 'phase'")
    commit_sha: GitSha
    gates: list[GateSpec]
    env: dict[str, str] = Field(default_factory=dict)
    attempt: int = Field(
        default=0, ge=0, description="the workstream's attempt (phase gates: the wave or step)"
    )
    resolving: Resolving | None = Field(
        default=None, description="a fix attempt's gates: what failed before, for the learner"
    )
    applied: PatternApplied | None = Field(
        default=None, description="these gates judge a recovery pattern's work"
    )
    workspace: WorkspaceSpec = Field(
        default_factory=WorkspaceSpec, description="the same workspace the tool had"
    )


class GateResult(Model):
    gate_id: str
    status: GateStatus
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    log: ArtifactRef | None = None
    reason: str | None = None
    code: Literal["gate_command_not_found"] | None = Field(
        default=None,
        description="a failure that is not the change's fault: the gate's program is not "
        "installed on the worker (no fix attempt is made)",
    )
    signature: str | None = Field(
        default=None, description="a failure's error signature (the same root cause, the same one)"
    )
    category: str | None = Field(default=None, description="a failure's error category")
    retried: str | None = Field(
        default=None,
        description="a known-flaky gate re-run once (retry_flaky): how its first run ended",
    )


class GateRunResult(Model):
    passed: bool
    results: list[GateResult] = Field(default_factory=list)

    @property
    def first_failure(self) -> GateResult | None:
        return next((r for r in self.results if r.status in ("failed", "timeout")), None)
