"""The caches a phase's workspaces fill, prepared before the first tool runs.

Without this, the first workstream of a key runs setup while the others of its wave wait
for it (one checkout populates a key, activities/lib/workspace/cache.py), and a setup that
cannot succeed is found only after tools have run — each workstream then trying it twice
itself. Here each distinct workspace with ``setup`` and ``cache`` is set up once at the base,
all of them at once; its workstreams then restore the caches. A setup that fails is final for
the workstreams that use that workspace: they fail with its reason and never start a tool.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.failures import cause_message
from workflows.journal import Journal
from workflows.steps import WORKSTREAM, Steps
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.caches import CacheActivities
    from schemas.caches import PrepareCachesInput, PrepareCachesResult
    from schemas.events import EventType
    from schemas.spec import PhaseSpec, WorkspaceSpec

#: workflow.patched id: caches prepared before the first wave (issue 15).
PREPARE_CACHES = "prepare-caches"


async def prepare_caches(
    phase: PhaseSpec, steps: Steps, journal: Journal, *, repo_path: str, run_id: str, base: str
) -> dict[str, str]:
    """Set up each workspace that fills a cache once at ``base``; the workstreams whose
    workspace's setup failed → why (``setup_failed: …``)."""
    users: dict[str, list[str]] = {}
    specs: dict[str, WorkspaceSpec] = {}
    for ws in phase.workstreams:
        if ws.workspace.setup and ws.workspace.cache:
            key = ws.workspace.model_dump_json()
            users.setdefault(key, []).append(ws.workstream_id)
            specs[key] = ws.workspace
    if not users or not patched(PREPARE_CACHES):
        return {}
    # Setup may run twice (once more on a fresh checkout), and restoring takes a while.
    runs = [
        steps.run(
            CacheActivities.prepare_caches,
            PrepareCachesInput(
                repo_path=repo_path,
                run_id=run_id,
                commit=base,
                workspace=specs[key],
                label=f"caches-{number}",
            ),
            WORKSTREAM.within(2 * specs[key].setup_timeout_s + 300),
            summary=f"prepare caches for {_names(users[key])}",
        )
        for number, key in enumerate(users, start=1)
    ]
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    failed: dict[str, str] = {}
    for key, outcome in zip(users, outcomes, strict=True):
        paths = ", ".join(entry.path for entry in specs[key].cache)
        if isinstance(outcome, PrepareCachesResult):
            how = "setup ran" if outcome.setup_ran else "already there"
            journal.event(
                EventType.CACHES_PREPARED,
                f"caches {paths} for {_names(users[key])}: {how} ({outcome.seconds:g}s)",
                workstream_ids=users[key],
                setup_ran=outcome.setup_ran,
            )
            continue
        if isinstance(outcome, ActivityError) and not is_cancelled_exception(outcome):
            cause = outcome.cause
            reason = cause_message(outcome)
            final = isinstance(cause, ApplicationError) and cause.type == "SetupFailed"
            journal.event(
                EventType.CACHES_FAILED,
                f"caches {paths} for {_names(users[key])}: {reason}"
                + ("" if final else "; each workstream sets up its own"),
                workstream_ids=users[key],
            )
            if final:  # anything else: the workstreams try setup themselves
                failed.update((ws_id, reason) for ws_id in users[key])
            continue
        assert isinstance(outcome, BaseException)
        raise outcome  # a cancel, or a bug
    return failed


def _names(ws_ids: list[str]) -> str:
    shown = ", ".join(ws_ids[:3])
    return shown + (f" and {len(ws_ids) - 3} more" if len(ws_ids) > 3 else "")
