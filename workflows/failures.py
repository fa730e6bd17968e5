"""Turning activity and child failures into the sentence a user should read."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError


def cause_message(err: ActivityError | ChildWorkflowError) -> str:
    """The innermost application message (the wrapper only says which step failed)."""
    cause: BaseException | None = err.cause
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)
