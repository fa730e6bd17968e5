"""Git-side steps of a run: opening it, committing patches, integrating, cleaning up."""

from __future__ import annotations

from pydantic import Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.events import RunEvent
from schemas.journal import LedgerMove
from schemas.ledger import LedgerEntry
from schemas.run import RunRecord


class OpenRunInput(Model):
    repo_path: str
    run_id: str
    base_ref: str | None = None
    integration_ref: str


class OpenRunResult(Model):
    base_sha: GitSha
    integration_ref: str


class CommitPatchInput(Model):
    repo_path: str
    run_id: str
    workstream_id: str
    title: str
    base_sha: GitSha
    patch: ArtifactRef
    patch_id: str
    branch_ref: str
    timestamp: int = Field(description="commit date, seconds since the epoch, from workflow time")
    tree_sha: GitSha | None = Field(
        default=None,
        description="the tree the patch makes on the base, when the tool's capture computed it "
        "(used where this host has it; else the patch is applied)",
    )


class CommitPatchResult(Model):
    commit_sha: GitSha
    tree_sha: GitSha


class MergeRequest(Model):
    workstream_id: str
    commit_sha: GitSha
    patch_id: str | None = None
    reverse_fingerprint: str | None = None


class MergeOutcome(Model):
    workstream_id: str
    merged: bool
    merge_commit: GitSha | None = None
    conflicts: list[str] = Field(default_factory=list)


class IntegrateInput(Model):
    repo_path: str
    run_id: str
    wave: int
    integration_ref: str
    expected_head: GitSha = Field(description="the integration head the merges start from")
    merges: list[MergeRequest] = Field(description="merged in this order")
    tag_ref: str | None = Field(default=None, description="checkpoint tag to point at the new head")
    timestamp: int
    history: ArtifactRef | None = Field(
        default=None, description="reverse fingerprints of everything integrated before"
    )


class IntegrateResult(Model):
    head_sha: GitSha
    outcomes: list[MergeOutcome]
    history: ArtifactRef | None = Field(
        default=None, description="the history with this wave's merged patches added"
    )


class CloseRunInput(Model):
    """Everything a person reads after the run; written once, as JSON Lines."""

    record: RunRecord = Field(description="its journal lists the parts written so far")
    ledger: list[LedgerEntry] = Field(default_factory=list, description="not yet written out")
    events: list[RunEvent] = Field(default_factory=list, description="not yet written out")
    moves: list[LedgerMove] = Field(default_factory=list, description="not yet written out")


class CloseRunResult(Model):
    report_dir: str


class PartText(Model):
    """A slice of a document (at most ~48 KB): see activities/lib/parts.py."""

    text: str
