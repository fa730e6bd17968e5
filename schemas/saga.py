"""Saga compensation: the steps that undo a phase, and the inputs of running one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import GitSha, Model
from schemas.spec import Command, WorkspaceSpec

StepKind = Literal["reset_ref", "delete_ref", "delete_branches", "user_command"]


class CompensationStep(Model):
    """One undo, pushed on the stack *before* its forward step (which may take effect and still
    report failure), so every step must cope with "the forward step never happened"."""

    step_id: str
    kind: StepKind
    wave: int
    description: str
    ref: str | None = None
    to_sha: GitSha | None = Field(default=None, description="reset_ref: where the ref goes back to")
    workstream_id: str | None = None
    workstream_ids: list[str] = Field(
        default_factory=list, description="delete_branches: whose workstream branches (a wave's)"
    )
    command: Command | None = None
    workspace: WorkspaceSpec | None = Field(
        default=None, description="user_command: the workstream's workspace it runs in"
    )


class CompensateInput(Model):
    repo_path: str
    run_id: str
    step: CompensationStep
    integration_ref: str
    timeout_s: float = 600


class CompensateResult(Model):
    step_id: str
    done: bool
    detail: str = ""


class RollbackRequest(Model):
    """The ``rollback`` update: undo the waves after ``to_wave`` (0 or None: everything)."""

    to_wave: int | None = Field(default=None, ge=0)
    reason: str = ""
    requested_by: str = ""
