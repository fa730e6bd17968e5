"""Running a tool in an isolated worktree and capturing its change as a patch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.spec import ExecutionRequest, WorkspaceSpec

ToolOutcome = Literal["changed", "no_change", "failed", "timeout"]
#: Why a tool run did not produce a change (stable: matched on by people and scripts).
ToolReason = Literal[
    "", "api_error", "max_turns", "permission_denied", "no_change", "tool_failed", "timeout",
    "limit_memory", "limit_pids", "limit_cpu", "limit_file_size",
]  # fmt: skip


class ToolUsage(Model):
    """What one tool run consumed, in one shape for every tool."""

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = Field(default=None, description="None: unknown")
    cost_source: Literal["reported", "price_table", "unknown"] = "unknown"


class Feedback(Model):
    """Why the previous attempt was not good enough, and what a reviewer asked for; the tool
    sees it as UET_FEEDBACK_FILE."""

    attempt: int = Field(description="the attempt this feedback is for")
    max_attempts: int
    gate_id: str | None = Field(default=None, description="the gate that failed, if one did")
    command: str = ""
    exit_code: int | None = None
    output_tail: str = ""
    instructions: str = Field(default="", description="adjust: what the reviewer asked for")
    reviewer: str = ""
    signature: str | None = Field(default=None, description="the failure's error signature")
    category: str | None = Field(default=None, description="the failure's error category")
    guidance: str = Field(
        default="", description="what fixed this error before (a learned recovery pattern)"
    )
    pattern_id: str | None = Field(default=None, description="the pattern the guidance is from")


class ToolAttempt(Model):
    """One tool tried for a workstream (the router's circuit breaker counts these)."""

    tool_id: str
    ok: bool
    reason_code: ToolReason = ""
    reason: str = ""


class ToolRunInput(Model):
    run_id: str
    workstream_id: str
    repo_path: str
    base_sha: GitSha
    attempt: int = Field(ge=1)
    request: ExecutionRequest
    patch_file: ArtifactRef | None = Field(default=None, description="patch tool: the diff")
    timeout_s: float = Field(gt=0)
    feedback: Feedback | None = None
    allowed_paths: list[str] = Field(
        default_factory=list, description="the workstream's file scope (aider edits these files)"
    )
    max_budget_usd: float | None = Field(
        default=None, description="what this workstream may still spend (claude enforces it)"
    )
    max_attempts: int = Field(
        default=3, ge=1, description="attempts for the tool's own transient errors"
    )
    task_kind: str | None = Field(default=None, description="the workstream's task_kind")
    workspace: WorkspaceSpec = Field(
        default_factory=WorkspaceSpec, description="what the checkout needs (setup, caches…)"
    )
    slot_from: str | None = Field(
        default=None,
        description="the phase workflow whose slot the tool waits for, its checkout ready "
        "(the workstream was started ahead: PhaseSpec.prepare_ahead)",
    )


class ToolRunResult(Model):
    outcome: ToolOutcome
    reason: str = ""
    reason_code: ToolReason = ""
    usage: ToolUsage | None = None
    exit_code: int | None = None
    patch: ArtifactRef | None = Field(default=None, description="the change as a unified diff")
    tree_sha: GitSha | None = Field(
        default=None,
        description="the base's tree with the change, as uet's own index held it when the patch "
        "was taken from it (commit_patch commits it rather than applying the patch again)",
    )
    files_changed: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    output_tail: str = ""
    log: ArtifactRef | None = None
    signature: str | None = Field(default=None, description="a failure's error signature")
    category: str | None = Field(default=None, description="a failure's error category")
