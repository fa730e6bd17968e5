"""The patch ledger (contract): one entry per patch, a state machine, and its legal moves.

``committed`` means: part of the run's integration branch.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from schemas.base import Model
from schemas.gates import GateResult
from schemas.patch import PatchArtifact, ValidationReport
from schemas.tools import ToolUsage


class PatchState(StrEnum):
    CREATED = "created"
    VALIDATED = "validated"
    QUEUED = "queued"
    APPLIED = "applied"
    VERIFIED = "verified"
    COMMITTED = "committed"
    QUARANTINED = "quarantined"
    APPLY_FAILED = "apply_failed"
    DROPPED = "dropped"
    ROLLED_BACK = "rolled_back"


S = PatchState

#: Every legal move. Anything else is a bug and raises.
TRANSITIONS: dict[PatchState, frozenset[PatchState]] = {
    S.CREATED: frozenset({S.VALIDATED, S.QUARANTINED, S.DROPPED}),
    S.VALIDATED: frozenset({S.QUEUED, S.DROPPED}),
    S.QUEUED: frozenset({S.APPLIED, S.APPLY_FAILED, S.DROPPED}),
    # Gates fail: dropped when a fix attempt replaces it, quarantined when none is left;
    # verified anyway when a reviewer approves it.
    S.APPLIED: frozenset({S.VERIFIED, S.QUARANTINED, S.DROPPED}),
    # Integration: merged, or it conflicts with what the wave merged before it.
    S.VERIFIED: frozenset({S.COMMITTED, S.APPLY_FAILED, S.DROPPED}),
    S.COMMITTED: frozenset({S.ROLLED_BACK}),
    # A reviewer's recorded override puts a quarantined patch back on the path.
    S.QUARANTINED: frozenset({S.VALIDATED, S.DROPPED}),
    S.APPLY_FAILED: frozenset({S.DROPPED}),
    S.DROPPED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(ValueError):
    pass


class StateChange(Model):
    state: PatchState
    at: datetime = Field(description="workflow time")
    reason: str = ""


class Validation(Model):
    format_ok: bool | None = None
    scope_ok: bool | None = None
    constraints_ok: bool | None = None
    tests_ran: bool = False
    tests_passed: bool | None = None
    errors: list[str] = Field(default_factory=list, description="'code: path: message'")


class Quarantine(Model):
    reason: str
    folder: str | None = None


class LedgerEntry(Model):
    ledger_id: str
    patch_id: str
    run_id: str
    workstream_id: str
    attempt: int
    tool_id: str
    tool_reason: str = Field(default="", description="why this tool ran (spec, router, fallback)")
    tool_usage: ToolUsage | None = Field(default=None, description="what the tool run cost")
    pattern: str | None = Field(
        default=None,
        description="the recovery pattern applied: its fixer made this patch (tool_id "
        "recovery), or its guidance was in the feedback",
    )
    state: PatchState = PatchState.CREATED
    state_history: list[StateChange] = Field(default_factory=list)
    patch: PatchArtifact | None = None
    validation: Validation = Field(default_factory=Validation)
    gates: list[GateResult] = Field(default_factory=list)
    apply_attempts: int = 0
    quarantine: Quarantine | None = None
    commit: str | None = Field(default=None, description="the workstream commit made from it")
    replaces: str | None = Field(default=None, description="patch_id of the attempt it replaces")
    rollback_of: str | None = None

    def move(self, state: PatchState, at: datetime, reason: str = "") -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"patch {self.patch_id}: {self.state} -> {state} is not a legal move"
            )
        self.state = state
        self.state_history.append(StateChange(state=state, at=at, reason=reason))

    def record_validation(self, report: ValidationReport) -> None:
        self.validation.format_ok = report.format_ok
        self.validation.scope_ok = report.scope_ok
        self.validation.constraints_ok = report.constraints_ok
        self.validation.errors = [
            f"{e.code}: {e.path}: {e.message}" if e.path else f"{e.code}: {e.message}"
            for e in report.errors
        ] + [
            # What the policy allows stays on the record, marked.
            f"{e.code} (allowed): {e.path}: {e.message}"
            if e.path
            else f"{e.code} (allowed): {e.message}"
            for e in report.warnings
        ]


def is_legal_history(states: list[PatchState]) -> bool:
    """Starts at ``created`` and every step is in TRANSITIONS."""
    if not states or states[0] != PatchState.CREATED:
        return False
    return all(b in TRANSITIONS[a] for a, b in itertools.pairwise(states))
