"""Typed run events: what happened, when (workflow time), to what."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.base import Model


class EventType(StrEnum):
    RUN_STARTED = "RUN_STARTED"
    CACHES_PREPARED = "CACHES_PREPARED"
    CACHES_FAILED = "CACHES_FAILED"
    WAVE_STARTED = "WAVE_STARTED"
    WORKSTREAM_STARTED = "WORKSTREAM_STARTED"
    TOOL_FINISHED = "TOOL_FINISHED"
    TOOL_FALLBACK = "TOOL_FALLBACK"
    CIRCUIT_OPENED = "CIRCUIT_OPENED"
    CIRCUIT_CLOSED = "CIRCUIT_CLOSED"
    NO_CHANGE = "NO_CHANGE"
    PATCH_CREATED = "PATCH_CREATED"
    PATCH_VALIDATED = "PATCH_VALIDATED"
    PATCH_QUARANTINED = "PATCH_QUARANTINED"
    PATCH_APPLIED = "PATCH_APPLIED"
    PATCH_APPLY_FAILED = "PATCH_APPLY_FAILED"
    PATCH_DROPPED = "PATCH_DROPPED"
    PATCH_COMMITTED = "PATCH_COMMITTED"
    GATE_PASSED = "GATE_PASSED"
    GATE_FAILED = "GATE_FAILED"
    GATE_SKIPPED = "GATE_SKIPPED"
    FIX_ATTEMPT = "FIX_ATTEMPT"
    RECOVERY_STARTED = "RECOVERY_STARTED"
    RECOVERY_APPLIED = "RECOVERY_APPLIED"
    RECOVERY_FAILED = "RECOVERY_FAILED"
    GATE_RETRIED = "GATE_RETRIED"
    ERROR_CLASSIFIED = "ERROR_CLASSIFIED"
    WORKSTREAM_COMPLETED = "WORKSTREAM_COMPLETED"
    WORKSTREAM_FAILED = "WORKSTREAM_FAILED"
    WORKSTREAM_BLOCKED = "WORKSTREAM_BLOCKED"
    MERGE_CONFLICT = "MERGE_CONFLICT"
    WAVE_INTEGRATED = "WAVE_INTEGRATED"
    PHASE_GATE_PASSED = "PHASE_GATE_PASSED"
    PHASE_GATE_FAILED = "PHASE_GATE_FAILED"
    REVIEW_REQUESTED = "REVIEW_REQUESTED"
    REVIEW_DECIDED = "REVIEW_DECIDED"
    REVIEW_TIMED_OUT = "REVIEW_TIMED_OUT"
    MERGE_RETRIED = "MERGE_RETRIED"
    BUDGET_WARNING = "BUDGET_WARNING"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    BUDGET_RAISED = "BUDGET_RAISED"
    COMPENSATION_STARTED = "COMPENSATION_STARTED"
    COMPENSATION_STEP = "COMPENSATION_STEP"
    COMPENSATION_COMPLETED = "COMPENSATION_COMPLETED"
    RUN_COMPLETED = "RUN_COMPLETED"
    RUN_ROLLED_BACK = "RUN_ROLLED_BACK"
    RUN_CANCELED = "RUN_CANCELED"
    RUN_FAILED = "RUN_FAILED"


#: Events a person following a run wants to see as they happen (``uet run`` prints them).
NOTEWORTHY = frozenset(
    {
        EventType.CACHES_FAILED,
        EventType.GATE_FAILED,
        EventType.FIX_ATTEMPT,
        EventType.RECOVERY_STARTED,
        EventType.RECOVERY_APPLIED,
        EventType.RECOVERY_FAILED,
        EventType.GATE_RETRIED,
        EventType.TOOL_FALLBACK,
        EventType.PATCH_QUARANTINED,
        EventType.MERGE_CONFLICT,
        EventType.MERGE_RETRIED,
        EventType.CIRCUIT_OPENED,
        EventType.BUDGET_WARNING,
        EventType.BUDGET_EXCEEDED,
        EventType.BUDGET_RAISED,
        EventType.COMPENSATION_STARTED,
        EventType.COMPENSATION_COMPLETED,
    }
)


class RunEvent(Model):
    event_id: str = Field(description="ULID")
    type: EventType
    at: datetime = Field(description="workflow time")
    run_id: str
    workstream_id: str | None = None
    patch_id: str | None = None
    wave: int | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
