"""Notifications: the phase's journal tells the webhooks of ``notify:`` what happened.

A review requested, the budget warning, the run's end: each is a journal event already, so
the notifier listens to the journal rather than to the places that raise them. A
notification is a retried activity that is started and not waited for — a webhook that is
slow or down never slows the run — and the phase waits for the ones still going only as it
ends (or continues as new), so none is lost with the workflow.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from schemas.events import EventType, RunEvent
    from schemas.notify import Notification, NotificationReview, NotifyEvent, NotifyInput
    from schemas.run import RunRecord
    from schemas.spec import PhaseSpec

#: workflow.patched id: notifications (issue 18).
NOTIFY = "notify"
#: Journal events people are told about, and what the webhook calls them.
EVENTS: dict[EventType, NotifyEvent] = {
    EventType.REVIEW_REQUESTED: "review_requested",
    EventType.BUDGET_WARNING: "budget_warning",
    EventType.RUN_COMPLETED: "run_completed",
    EventType.RUN_FAILED: "run_failed",
    EventType.RUN_ROLLED_BACK: "run_failed",
    EventType.RUN_CANCELED: "run_failed",
}
TITLES: dict[NotifyEvent, str] = {
    "review_requested": "review requested",
    "budget_warning": "budget warning",
    "run_completed": "run completed",
    "run_failed": "run did not complete",
}
#: The activity retries each delivery itself (briefly); these attempts are for lost workers.
RETRY = RetryPolicy(maximum_attempts=3)
TIMEOUT = timedelta(minutes=2)


class Notifier:
    def __init__(self, phase: PhaseSpec, record: RunRecord) -> None:
        self.phase = phase
        self.record = record
        self.wanted = {event for hook in phase.notify.webhooks for event in hook.events}
        self._sent: list[asyncio.Future[Any]] = []

    def saw(self, event: RunEvent) -> None:
        """A journal event: tell the webhooks that asked for it."""
        kind = EVENTS.get(event.type)
        # patched() only where a notification goes out: runs without notify: record nothing.
        if kind is None or kind not in self.wanted or not patched(NOTIFY):
            return
        record = self.record
        review = None
        if kind == "review_requested":
            review = next(
                (
                    NotificationReview(
                        review_id=r.request.review_id,
                        reason=r.request.reason,
                        summary=r.request.summary,
                    )
                    for r in record.reviews
                    if r.request.review_id == event.data.get("review_id")
                ),
                None,
            )
        ws = f" for {event.workstream_id}" if event.workstream_id else ""
        notification = Notification(
            event=kind,
            run_id=record.run_id,
            phase_id=record.phase_id,
            workflow_id=record.workflow_id,
            at=event.at,
            title=f"{record.phase_id}: {TITLES[kind]}{ws}",
            text=event.message,
            status=record.status,
            workstream_id=event.workstream_id,
            review=review,
            cost_usd_total=record.cost_usd_total,
            budget_usd=record.budget_usd_total,
        )
        self._sent.append(
            workflow.start_activity_method(
                NotifyActivities.notify,
                NotifyInput(spec=self.phase.notify, notification=notification),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
                summary=f"notify: {notification.title}",
            )
        )

    async def drain(self) -> None:
        """Wait for the notifications still going (their failures are theirs, never the
        run's: the activity reports undelivered ones and a lost one is simply lost)."""
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent, return_exceptions=True)
