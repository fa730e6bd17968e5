"""Running a tool in an isolated worktree and capturing its change as a patch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.spec import ExecutionRequest

ToolOutcome = Literal["changed", "no_change", "failed", "timeout"]


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


class ToolRunResult(Model):
    outcome: ToolOutcome
    reason: str = ""
    exit_code: int | None = None
    patch: ArtifactRef | None = Field(default=None, description="the change as a unified diff")
    files_changed: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    output_tail: str = ""
    log: ArtifactRef | None = None
