"""How each kind of step runs: its time limit, its retries, what a cancel waits for.

One table, so that a git step of the phase and one of a workstream cannot drift apart, and
one helper that runs a step with them. Every remote step heartbeats (a dead worker's step
moves on within ``heartbeat`` instead of its time limit); a local step runs inside the
current workflow task and needs no heartbeat.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.lib.git import FINAL_GIT_ERRORS

A = TypeVar("A")
R = TypeVar("R")

#: Retries that heal what git and the disk go through (locks, a dead worker); an error typed
#: here never heals.
GIT_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=list(FINAL_GIT_ERRORS))
#: Attempts a tool run gets for lost workers, on top of the spec's max_attempts (which counts
#: the tool's own transient errors: the adapter makes the last of those final).
CRASH_ALLOWANCE = 10


@dataclass(frozen=True)
class StepOptions:
    timeout: timedelta
    retry: RetryPolicy
    #: Wait until the activity has really stopped before a cancel goes on (its tool is dead,
    #: its files are written): what comes next may depend on it.
    wait_for_cancel: bool = False

    def within(self, seconds: float) -> StepOptions:
        return replace(self, timeout=timedelta(seconds=seconds))


#: A quick, idempotent step of the phase (plan, open the run, integrate, journal parts, close).
QUICK = StepOptions(timedelta(minutes=5), GIT_RETRY)
#: A quick step of a workstream: a cancel waits for it (compensation comes next).
WORKSTREAM = StepOptions(timedelta(minutes=5), GIT_RETRY, wait_for_cancel=True)
#: Publishing on a forge: a rate limit or an outage is waited out (the activity says when to
#: try again); a refusal is final.
PUBLISH = StepOptions(
    timedelta(minutes=5),
    RetryPolicy(
        initial_interval=timedelta(seconds=2),
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=8,
        non_retryable_error_types=["PublishRefused", "ForgeRefused"],
    ),
)
#: One compensation: a user's undo command may take a while, and is retried less.
COMPENSATION = StepOptions(timedelta(minutes=15), RetryPolicy(maximum_attempts=3))


def gates(timeouts: list[float], base: StepOptions) -> StepOptions:
    """Gates run one after another: their time limits add up, plus two minutes for checkout."""
    return base.within(sum(timeouts) + 120)


#: How long a tool run started ahead of its slot may wait for it, beyond its own limit.
SLOT_WAIT = timedelta(days=1)


def tool(timeout_s: float, max_attempts: int, *, waits_for_slot: bool = False) -> StepOptions:
    """A tool run: the adapter enforces ``timeout_s`` itself and reports it; this is the
    backstop. One that waits for its slot first (the clock runs meanwhile) may wait a day."""
    return StepOptions(
        timedelta(seconds=timeout_s + 120) + (SLOT_WAIT if waits_for_slot else timedelta()),
        RetryPolicy(maximum_attempts=max_attempts + CRASH_ALLOWANCE),
        wait_for_cancel=True,
    )


class Steps:
    """Runs steps with the run's heartbeat timeout."""

    def __init__(self, heartbeat: timedelta) -> None:
        self.heartbeat = heartbeat

    async def run(
        self,
        method: Callable[[Any, A], Awaitable[R]],
        arg: A,
        options: StepOptions,
        *,
        summary: str,
        local: bool = False,
        task_queue: str | None = None,
        schedule_to_start: timedelta | None = None,
    ) -> R:
        """``task_queue``: another queue than the workflow's (a tool's); ``schedule_to_start``:
        how long it may wait there for a worker before the caller hears of it."""
        cancellation = (
            ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if options.wait_for_cancel
            else ActivityCancellationType.TRY_CANCEL
        )
        if local:
            return await workflow.execute_local_activity_method(
                method,
                arg,
                start_to_close_timeout=options.timeout,
                retry_policy=options.retry,
                cancellation_type=cancellation,
                summary=summary,
            )
        return await workflow.execute_activity_method(
            method,
            arg,
            task_queue=task_queue,
            schedule_to_start_timeout=schedule_to_start,
            start_to_close_timeout=options.timeout,
            heartbeat_timeout=self.heartbeat,
            retry_policy=options.retry,
            cancellation_type=cancellation,
            summary=summary,
        )
