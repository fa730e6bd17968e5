"""Publishing a run on its forge: as the phase ends (``forge.publish``), and again on
``uet pr RUN`` — the same activity either way, so both push, open or update, and comment the
same. A publish that fails never fails the run: its result is intact on uet's branch, the
record says why (``publish_error``) and ``uet pr RUN`` tries again.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

from workflows import SANDBOXED
from workflows.failures import cause_message
from workflows.journal import Journal
from workflows.steps import PUBLISH, Steps

with workflow.unsafe.imports_passed_through():
    from activities.forge import ForgeActivities
    from schemas.events import EventType
    from schemas.publish import PublishInput, PublishResult

#: workflow.patched id: the phase publishes itself as it ends (issue 19).
PUBLISH_AT_END = "forge-publish"


async def publish(steps: Steps, input: PublishInput) -> PublishResult:
    where = input.forge.repository or input.forge.remote
    return await steps.run(
        ForgeActivities.publish, input, PUBLISH, summary=f"publish on {input.forge.kind}: {where}"
    )


async def publish_at_end(steps: Steps, journal: Journal, input: PublishInput) -> None:
    """Publish and put what happened in the record and the journal."""
    record = input.record
    try:
        result = await publish(steps, input)
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        record.publish_error = (
            f"{cause_message(err)}; the run's result is intact — `uet pr {record.run_id}` "
            "publishes it"
        )
        journal.event(EventType.PUBLISH_FAILED, record.publish_error)
        return
    record.pull_requests = result.pull_requests
    record.publish_error = None
    for pr in result.pull_requests:
        what = "opened" if pr.created else "updated"
        journal.event(
            EventType.PULL_REQUEST_PUBLISHED,
            f"{what} pull request #{pr.number} {pr.url} ({pr.head} → {pr.base})",
            workstream_id=pr.workstream_id,
        )
    for comment in result.comments:
        journal.event(
            EventType.ISSUE_COMMENTED,
            f"{'commented on' if comment.created else 'updated the comment on'} issue "
            f"#{comment.issue}",
            workstream_id=comment.workstream_id,
        )
    for problem in result.problems:
        journal.event(EventType.PUBLISH_FAILED, problem)


@workflow.defn(sandboxed=SANDBOXED)
class PublishWorkflow:
    """``uet pr RUN``: a finished run published again (its id: ``uet-RUN/pr``)."""

    @workflow.run
    async def run(self, input: PublishInput) -> PublishResult:
        return await publish(Steps(timedelta(seconds=30)), input)
