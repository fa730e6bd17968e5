"""Recovery patterns: what the learner proposes, what a workstream asks for when a gate
fails, and the file format patterns are exported in (schemas/recovery_pattern.v1.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from schemas.base import GitSha, Model
from schemas.spec import Command, Learning, RecoveryRule, WorkspaceSpec

PatternState = Literal["draft", "active", "quarantined", "retired"]


class RecoveryLookup(Model):
    """A gate failed with this error: is there something that healed it before?"""

    run_id: str
    workstream_id: str
    signature: str
    category: str | None = None
    rules: list[RecoveryRule] = Field(
        default_factory=list, description="the workstream's recoveries, then the phase's"
    )
    learning: Learning = Field(default_factory=Learning)


class RecoveryPlan(Model):
    """What to do about it: a fixer to run before the next AI attempt, guidance for it, or
    both (``found`` false: nothing known)."""

    found: bool = False
    pattern_id: str | None = Field(default=None, description="a learned pattern, or rule:<n>")
    version: str | None = None
    confidence: float | None = None
    guidance: str = ""
    command: Command | None = None
    timeout_s: float = 120
    source: Literal["pattern", "rule", ""] = ""

    @property
    def label(self) -> str:
        return f"{self.pattern_id} v{self.version}" if self.version else str(self.pattern_id)


class RecoveryRunInput(Model):
    """Run a recovery command on the failing tree; the change is captured against the base."""

    run_id: str
    workstream_id: str
    repo_path: str
    base_sha: GitSha
    start_sha: GitSha = Field(description="the failing commit the fixer starts from")
    attempt: int = Field(ge=1)
    command: Command
    timeout_s: float = Field(gt=0)
    pattern_id: str
    version: str | None = None
    private_paths: list[str] = Field(default_factory=list)
    workspace: WorkspaceSpec = Field(
        default_factory=WorkspaceSpec, description="the workstream's: the fixer sees its setup"
    )


class Resolving(Model):
    """Gates run on a fix attempt: what it fixes, for the resolution the learner records."""

    failed_commit: GitSha = Field(
        description="the commit whose gates failed before (or the base, when not known)"
    )
    signature: str | None = None
    category: str | None = None
    gate_id: str | None = None
    tool_id: str | None = None
    feedback: str = Field(default="", description="the feedback the fixing attempt was given")
    adjust: str = Field(default="", description="a reviewer's adjust instructions")
    candidates: list[RecoveryRule] = Field(
        default_factory=list, description="the phase's fixers, tried to reproduce the fix"
    )
    learning: Learning = Field(default_factory=Learning)


class PatternApplied(Model):
    """These gates check a pattern's work: their verdict is a use of it."""

    pattern_id: str
    version: str
    kind: Literal["recovery", "guidance"]


class PatternFileVersion(Model):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=r"^[0-9]+\.[0-9]+$")
    guidance: str = ""
    recovery_command: str | None = None
    confidence: float = Field(default=0.0, ge=0, le=1)
    origin: str = "learned"


class PatternFile(Model):
    """A recovery pattern as ``uet patterns export`` writes it and ``import`` reads it."""

    model_config = ConfigDict(title="RecoveryPattern", extra="forbid")

    schema_version: Literal[1] = 1
    pattern_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")
    signature: str = Field(min_length=1, max_length=64)
    category: str = Field(default="unknown", max_length=32)
    state: PatternState = "draft"
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+$", description="the current version")
    guidance: str = ""
    recovery_command: str | None = None
    recovery_timeout_s: float = Field(default=120, gt=0)
    confidence: float = Field(default=0.0, ge=0, le=1)
    inputs: dict[str, float | int | str | None] = Field(
        default_factory=dict, description="what the confidence was computed from"
    )
    uses: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    history: list[PatternFileVersion] = Field(
        default_factory=list, description="earlier versions, oldest first"
    )
