"""A patch taken in its tool's own step: made (a tool run, or a ready patch applied),
validated and committed in one activity (issue 20)."""

from __future__ import annotations

from pydantic import Field

from schemas.base import ArtifactRef, Model
from schemas.patch import ValidatePatchInput, ValidatePatchResult
from schemas.tools import ToolRunInput, ToolRunResult
from schemas.workspace import CommitPatchInput, CommitPatchResult

#: The ``patch`` of a tool step's validation and commit before the tool has made one: the
#: step puts the tool's capture there. (A ready patch's step has the ready patch's file.)
CAPTURE = ArtifactRef(sha256="0" * 64, size=0, uri="uet:capture", media_type="text/x-diff")


class ReadyPatchInput(Model):
    """take_ready_patch's and take_tool_patch's input: the tool run and the two steps after
    it, as the workstream would schedule them. Their ``patch`` stands for the tool's capture
    (:data:`CAPTURE`, or the ready patch's file), which replaces it (and the commit's
    ``tree_sha``): nothing else in them depends on it."""

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
