"""A ready patch taken in one local activity: applied, validated and committed (issue 20)."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Model
from schemas.patch import ValidatePatchInput, ValidatePatchResult
from schemas.tools import ToolRunInput, ToolRunResult
from schemas.workspace import CommitPatchInput, CommitPatchResult


class ReadyPatchInput(Model):
    """take_ready_patch's input: the tool run and the two steps after it, as the workstream
    would schedule them. Their ``patch`` stands for the tool's capture of the ready patch,
    which replaces it (and the commit's ``tree_sha``): nothing else in them depends on it."""

    tool: ToolRunInput
    validation: ValidatePatchInput
    commit: CommitPatchInput


class ReadyPatchResult(Model):
    tool: ToolRunResult
    validation: ValidatePatchResult | None = Field(
        default=None, description="None: the tool made no patch (it failed, or changed nothing)"
    )
    commit: CommitPatchResult | None = Field(
        default=None, description="None: not committed (the patch was refused, or commit_error)"
    )
    commit_error: str | None = Field(
        default=None, description="why committing the valid patch failed for good"
    )
