"""Run-level models: the phase workflow's input, its live status and its final record."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from schemas.base import ArtifactRef, GitSha, Model
from schemas.events import RunEvent
from schemas.forge import PullRequestRef
from schemas.gates import GateResult
from schemas.ledger import LedgerEntry, PatchState
from schemas.patch import PatchArtifact
from schemas.review import ReviewNeed, ReviewRecord
from schemas.saga import CompensationStep
from schemas.spec import Learning, PhaseSpec, RecoveryRule, WorkstreamSpec
from schemas.tools import Feedback, ToolAttempt


class WorkstreamState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"
    DROPPED = "dropped"
    ROLLED_BACK = "rolled_back"


class PhaseState(StrEnum):
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELED = "canceled"


class RunOptions(Model):
    """Knobs fixed when the run starts (workflow code must not read them from the environment)."""

    heartbeat_timeout_s: float = Field(default=30, gt=0)
    search_attributes: bool = Field(
        default=True, description="upsert uet's search attributes (they must be registered)"
    )
    continue_as_new_events: int | None = Field(
        default=None,
        ge=1,
        description="continue-as-new between waves once the history has this many events "
        "(besides whenever the server suggests it)",
    )
    journal_batch: int = Field(
        default=500,
        ge=1,
        description="write the journal out once this many records (ledger entries, events) "
        "are held, at the end of a step",
    )
    no_review: bool = Field(
        default=False,
        description="nobody answers reviews in this run (uet run --no-review, or a foreground "
        "run without a terminal): a workstream that would ask fails instead, and an approval "
        "gate or a budget review is rejected at once",
    )

    def asks_on_failure(self, review: str) -> bool:
        """Whether a workstream with this ``review`` mode asks a person when it fails."""
        return review != "never" and not self.no_review


class RunInput(Model):
    """PhaseWorkflow's input."""

    run_id: str
    phase: PhaseSpec | None = Field(default=None, description="None when given as `document`")
    repo_path: str = Field(
        description="the user's repository: its absolute path, or a git URL (workers mirror it)"
    )
    patch_files: dict[str, ArtifactRef] = Field(
        default_factory=dict, description="workstream id → its patch_file, imported as an artifact"
    )
    options: RunOptions = Field(default_factory=RunOptions)
    document: list[ArtifactRef] = Field(
        default_factory=list,
        description="a large phase and its patch files: the parts of a RunDocument",
    )
    resume: list[ArtifactRef] = Field(
        default_factory=list,
        description="a continued run (continue-as-new): the parts of its PhaseWorkflowState",
    )


class RunDocument(Model):
    """A phase too large for a payload, as the starter writes it (activities/lib/parts.py)."""

    phase: PhaseSpec
    patch_files: dict[str, ArtifactRef] = Field(default_factory=dict)


class WorkstreamLine(Model):
    """One workstream of a large phase's document after its first line (activities/lib/parts.py):
    the phase is read a slice at a time, never in one workflow task."""

    workstream: WorkstreamSpec
    patch_file: ArtifactRef | None = None


class WorkstreamStatus(Model):
    status: WorkstreamState = WorkstreamState.PENDING
    wave: int = Field(description="1-based wave number from the plan")
    commit: GitSha | None = Field(default=None, description="the workstream's commit")
    branch: str | None = None
    reason: str | None = Field(default=None, description="why it failed or was blocked")
    waiting: str | None = Field(
        default=None,
        description="what a running workstream waits for (e.g. no worker offers `claude`)",
    )
    cost_usd: float = Field(default=0.0, description="what its tool runs cost so far")
    executions: int = Field(
        default=0, description="child workflow executions so far (a review or conflict re-runs it)"
    )
    step: int | None = Field(
        default=None,
        description="the integration step that merged it (waves: its wave; eager: one step "
        "per integrated workstream)",
    )


class RunRecord(Model):
    """The run record: answered by the ``status`` query, returned at the end, printed by --json."""

    # The contract (schemas/run_record.v1.json) keeps the model's first name.
    model_config = ConfigDict(title="RunStatus")

    run_id: str
    workflow_id: str
    phase_id: str
    repo_path: str = ""
    status: PhaseState = PhaseState.RUNNING
    base_sha: GitSha | None = None
    integration_branch: str
    head_sha: GitSha | None = None
    scheduling: Literal["waves", "eager"] = Field(
        default="waves", description="how the phase starts workstreams (see current_wave)"
    )
    current_wave: int = Field(
        default=0, description="the wave running now (eager: the last integration step)"
    )
    cost_usd_total: float = Field(default=0.0, description="what every tool run cost so far")
    budget_usd_total: float | None = Field(default=None, description="the limit in force")
    waves: list[list[str]] = Field(default_factory=list)
    workstreams: dict[str, WorkstreamStatus] = Field(default_factory=dict)
    phase_gates: list[GateResult] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="why the phase failed")
    report_dir: str | None = Field(
        default=None, description="ledger.jsonl, events.jsonl, run.json and quarantine/"
    )
    reviews: list[ReviewRecord] = Field(default_factory=list, description="asked and decided")
    compensations: list[CompensationStep] = Field(
        default_factory=list, description="the saga stack still to undo, oldest first"
    )
    journal: list[ArtifactRef] = Field(
        default_factory=list,
        description="journal parts written so far (JSON Lines of ledger entries, events and "
        "moves, in order); the ledger and events of a finished run are in report_dir",
    )
    pull_requests: list[PullRequestRef] = Field(
        default_factory=list, description="opened or updated for the run on its forge"
    )
    publish_error: str | None = Field(
        default=None, description="why the run could not be published (`uet pr RUN` retries)"
    )
    parts: list[ArtifactRef] = Field(
        default_factory=list,
        description="a record too large for a payload: all of it, as the parts of its JSON; "
        "this copy leaves its lists and maps (workstreams, waves, journal, …) empty",
    )

    def by_reference(self, parts: list[ArtifactRef]) -> RunRecord:
        """This record as a payload carries it when it is too large: its scalars, and the
        parts that hold it whole (activities/lib/parts.whole_record reads it back)."""
        empty = {name: type(value)() for name, value in self if isinstance(value, list | dict)}
        return self.model_copy(update={**empty, "parts": parts})


class WorkstreamInput(Model):
    """WorkstreamWorkflow's input."""

    run_id: str
    repo_path: str
    workstream: WorkstreamSpec
    base_sha: GitSha
    wave: int
    branch_ref: str
    patch_file: ArtifactRef | None = None
    run_history: ArtifactRef | None = Field(
        default=None, description="reverse fingerprints of the patches integrated so far"
    )
    options: RunOptions = Field(default_factory=RunOptions)
    # A later execution of the same workstream (after a review or a merge conflict):
    first_attempt: int = Field(default=1, ge=1, description="number of its first attempt")
    replaces: str | None = Field(default=None, description="patch_id its first patch replaces")
    feedback: Feedback | None = Field(default=None, description="for its first attempt")
    resume: LedgerEntry | None = Field(
        default=None, description="an approved quarantined patch: apply it, skip the tool"
    )
    tool_chain: list[str] = Field(
        default_factory=list, description="tools to try in order (the router's choice)"
    )
    max_budget_usd: float | None = Field(default=None, description="what it may still spend")
    tool_reason: str = ""
    learning: Learning = Field(default_factory=Learning, description="the phase's learning:")
    recoveries: list[RecoveryRule] = Field(
        default_factory=list, description="the phase's recoveries (after the workstream's own)"
    )
    slot_from: str | None = Field(
        default=None,
        description="started ahead of its slot: its first tool run asks this phase workflow "
        "for the slot once its checkout is ready (PhaseSpec.prepare_ahead)",
    )


class WorkstreamResult(Model):
    workstream_id: str
    status: WorkstreamState
    commit: GitSha | None = None
    patch: PatchArtifact | None = Field(default=None, description="the patch it ends with")
    reason: str | None = None
    gates: list[GateResult] = Field(default_factory=list)
    ledger: list[LedgerEntry] = Field(default_factory=list)
    events: list[RunEvent] = Field(default_factory=list)
    review: ReviewNeed | None = Field(default=None, description="status awaiting_review: why")
    cost_usd: float = Field(default=0.0, description="what this execution's tool runs cost")
    tool_attempts: list[ToolAttempt] = Field(default_factory=list)

    @classmethod
    def dropped(cls, workstream_id: str, reason: str) -> WorkstreamResult:
        """A workstream that ends without (another) execution: rejected, over budget, or
        abandoned by a rollback."""
        return cls(workstream_id=workstream_id, status=WorkstreamState.DROPPED, reason=reason)


class RollbackRunInput(Model):
    """RollbackWorkflow's input: a finished run's record, its ledger and events written out as
    journal parts (``record.journal``), and each patch's workstream and state."""

    record: RunRecord
    written: dict[str, tuple[str, PatchState]] = Field(
        default_factory=dict, description="patch_id → (workstream, state) of the journal's entries"
    )
    # Inline instead (rollbacks requested before the journal went by reference):
    ledger: list[LedgerEntry] = Field(default_factory=list)
    events: list[RunEvent] = Field(default_factory=list)
    to_wave: int = Field(default=0, ge=0)
    reason: str = ""
    heartbeat_timeout_s: float = 30


class WaitingNote(Model):
    """A workstream's word to its phase: what it waits for now, or None when it goes on."""

    workstream_id: str
    note: str | None = None


#: The phase's update a tool started ahead of its slot asks with (PhaseWorkflow.tool_slot).
TOOL_SLOT_UPDATE = "tool_slot"


class SlotRequest(Model):
    """A tool run of a workstream started ahead of its slot, its checkout ready, asks its phase
    for the slot (the phase's ``tool_slot`` update)."""

    child_workflow_id: str = Field(description="the workstream's child workflow: its claim")


class SlotGrant(Model):
    granted: bool = Field(
        description="the slot is the tool's; False: the claim is given up (the phase rolls "
        "back or the execution is over) and the tool must not run"
    )


class OffersInput(Model):
    task_queue: str


class OffersResult(Model):
    workers: list[str] | None = Field(
        description="live workers polling the queue (None: the server could not tell)"
    )
