"""How a workstream's attempt ends short of success, and the sentence a user should read."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from schemas.patch import PatchArtifact
    from schemas.review import ReviewNeed


class Failed(Exception):
    """Ends the workstream as failed (raised inside the workflow, caught in its run())."""

    def __init__(self, reason: str, patch: PatchArtifact | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.patch = patch


class AskReview(Exception):
    """Ends this execution waiting for a person: the phase asks, then resumes or re-runs it."""

    def __init__(self, need: ReviewNeed, patch: PatchArtifact | None = None) -> None:
        super().__init__(need.summary)
        self.need = need
        self.patch = patch


def cause_message(err: ActivityError | ChildWorkflowError) -> str:
    """The innermost application message (the wrapper only says which step failed)."""
    cause: BaseException | None = err.cause
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


def last_lines(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def headline(reason: str) -> str:
    return reason.splitlines()[0] if reason else ""
