"""Human review (contract): what a workstream asks a person, and what the person decides."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, JsonValue, ValidationError

from schemas.base import ArtifactRef, Model

ReviewReason = Literal[
    "approval_required",  # review: always — a verified patch waits for a person
    "gates_failed",  # gates still failing after the fix loop
    "quarantined",  # the patch broke policy
    "merge_conflict",  # it conflicts with the integration branch, even after 3-way and re-run
    "budget_exceeded",  # the phase or the workstream reached its spending limit
]
Decision = Literal["approve", "reject", "adjust", "retry"]

#: What a person may decide, by why they are asked.
ALLOWED_DECISIONS: dict[str, tuple[Decision, ...]] = {
    "approval_required": ("approve", "reject", "adjust", "retry"),
    "gates_failed": ("approve", "reject", "adjust", "retry"),
    "quarantined": ("approve", "reject", "adjust", "retry"),
    # There is nothing to approve: the patch cannot be merged as it is.
    "merge_conflict": ("reject", "adjust", "retry"),
    # approve raises the limit by the decision's budget_increase_usd.
    "budget_exceeded": ("approve", "reject"),
}


class ReviewNeed(Model):
    """What a workstream needs a person for (the phase turns it into a ReviewRequest)."""

    reason: ReviewReason
    summary: str
    patch_id: str | None = None
    patch: ArtifactRef | None = None
    gate_logs: list[ArtifactRef] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)


class ReviewRequest(ReviewNeed):
    """A need, asked of people: with its id, where it comes from and what may be decided."""

    review_id: str = Field(description="ULID")
    run_id: str
    workstream_id: str
    allowed: list[Decision]
    requested_at: datetime
    timeout_at: datetime | None = None


class ReviewDecision(Model):
    """The payload of the ``submit_review`` update and of the ``review_decision`` signal."""

    review_id: str
    decision: Decision
    reviewer: str = Field(min_length=1)
    comment: str = ""
    instructions: str = Field(default="", description="adjust: appended to the tool's feedback")
    rollback: bool = Field(default=False, description="reject: also roll the whole phase back")
    budget_increase_usd: float | None = Field(
        default=None, gt=0, description="approve of a budget review: raise the limit by this"
    )


#: What a ``submit_review`` update or ``review_decision`` signal carries before it is checked:
#: a ReviewDecision from uet, or any JSON from ``temporal workflow signal`` and the Web UI. Taken
#: loosely so that a bad value is refused in one line by uet, not by the payload converter with
#: a traceback (signal) or a pydantic dump (update).
DecisionPayload = ReviewDecision | JsonValue


def read_decision(payload: DecisionPayload) -> ReviewDecision | str:
    """The decision, or one line saying what is wrong with the payload."""
    if isinstance(payload, ReviewDecision):
        return payload
    try:
        return ReviewDecision.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "payload"
            got = f" (got {error['input']!r})" if error["type"] != "missing" else ""
            problems.append(f"{where}: {error['msg']}{got}")
        return "invalid review decision: " + "; ".join(problems)


class ReviewRecord(Model):
    request: ReviewRequest
    decision: ReviewDecision | None = None
    decided_at: datetime | None = None
    timed_out: bool = False
    abandoned: bool = Field(default=False, description="the run was rolled back meanwhile")


def pending_requests(records: list[ReviewRecord]) -> list[ReviewRequest]:
    """The requests still waiting for a person."""
    return [r.request for r in records if r.decision is None and not r.abandoned]


class ReviewAnswer(Model):
    """What ``submit_review`` returns to its caller."""

    review_id: str
    workstream_id: str
    decision: Decision
    accepted: bool = True
