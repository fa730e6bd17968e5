"""Patches: the artifact a tool's change becomes, and the verdict of validating it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.spec import FileScope, PatchPolicy

ChangeKind = Literal["added", "modified", "deleted", "renamed", "mode_change"]


class FileChange(Model):
    path: str = Field(description="the path after the change (before, for deletions)")
    old_path: str | None = Field(default=None, description="renames: the path before")
    kind: ChangeKind
    binary: bool = False
    symlink: bool = False
    gitlink: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    old_blob: str | None = Field(default=None, description="blob id before (from the index line)")
    new_blob: str | None = Field(default=None, description="blob id after")
    insertions: int = 0
    deletions: int = 0
    hunks: int = 0


class PatchStats(Model):
    files: list[FileChange] = Field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    hunks: int = 0

    @property
    def files_changed(self) -> int:
        return len(self.files)


class PatchArtifact(Model):
    """A tool's change as a unified diff. The raw bytes in the artifact store are the truth;
    the stats are read from them (unidiff and git's extended headers) for policy checks."""

    patch_id: str = Field(description="ULID")
    sha256: str
    size: int
    uri: str
    format: Literal["unified_diff"] = "unified_diff"
    base_sha: GitSha
    tool_id: str
    workstream_id: str
    attempt: int = Field(ge=1)
    stats: PatchStats = Field(default_factory=PatchStats)
    fingerprint: str = Field(default="", description="sha256 of the (path, before, after) set")
    reverse_fingerprint: str = Field(default="", description="the fingerprint of its reverse")

    @property
    def ref(self) -> ArtifactRef:
        return ArtifactRef(
            sha256=self.sha256, size=self.size, uri=self.uri, media_type="text/x-diff"
        )


#: Stable codes: scripts and reviewers match on these, so they never change meaning.
ProblemCode = Literal[
    "unparseable",  # not a unified diff unidiff and git agree on
    "garbage_between_files",  # text between file sections that is not a git header
    "empty_path",
    "absolute_path",
    "parent_traversal",  # a '..' component
    "git_dir",  # a '.git' component, in any case
    "not_normalized",  # '.', '//' or a trailing '/'
    "out_of_scope",  # outside allowed_paths
    "forbidden_path",  # inside forbidden_paths
    "protected_path",  # inside patch_policy.protected_paths (.gitmodules, CI workflows, …)
    "symlink_escape",  # a symlink whose target leaves the repository
    "gitlink",  # a submodule entry
    "binary_not_allowed",
    "deletion_not_allowed",
    "too_many_files",
    "too_many_lines",
    "too_many_hunks",
    "too_large",
    "oscillation",
    "secret_in_patch",  # an added line carries a worker secret's value or a credential format
]


class PatchProblem(Model):
    code: ProblemCode
    path: str | None = None
    message: str


class ValidationReport(Model):
    format_ok: bool
    scope_ok: bool
    constraints_ok: bool
    errors: list[PatchProblem] = Field(default_factory=list)
    warnings: list[PatchProblem] = Field(
        default_factory=list,
        description="problems the policy allows (patch_policy.oscillation: allow)",
    )

    @property
    def ok(self) -> bool:
        return self.format_ok and self.scope_ok and self.constraints_ok


class ValidatePatchInput(Model):
    run_id: str
    workstream_id: str
    tool_id: str
    attempt: int
    patch_id: str
    base_sha: GitSha
    patch: ArtifactRef
    repo_path: str
    scope: FileScope
    policy: PatchPolicy
    earlier_attempts: list[PatchArtifact] = Field(
        default_factory=list, description="this workstream's earlier patches (oscillation)"
    )
    run_history: ArtifactRef | None = Field(
        default=None, description="reverse fingerprints of the patches integrated so far"
    )


class ValidatePatchResult(Model):
    artifact: PatchArtifact
    report: ValidationReport


class QuarantineInput(Model):
    run_id: str
    workstream_id: str
    patch: PatchArtifact
    reason: str
    report: ValidationReport | None = None
    gate_output: str = ""


class QuarantineResult(Model):
    folder: str
