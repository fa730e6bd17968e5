"""Which of uet's workflow changes a run has: ``workflow.patched``, with the changes made
before generation 11 folded into one marker.

Each ``workflow.patched(id)`` a run takes records a marker, and the SDK upserts the
``TemporalChangeVersion`` search attribute beside it: two history events and a visibility
write per change id, per run. By issue 20 a trivial workstream's child workflow paid that
for four ids — six of its 21 events. A run started with this code asks once, for
:data:`GENERATION`, and has every change in :data:`FOLDED` from then on.

Why old runs still take their own branches: ``workflow.patched`` answers once per run and
keeps the answer. A run that started before generation 11 has no generation marker; its
first folded question comes while its history replays (every change in it was asked at
the same point by the code that started it, after the generation is asked), so the
generation is False for the whole run and each change is asked on its own, as before. Were
the first question asked live, every change would be True anyway: that is what
``workflow.patched`` answers outside replay. A change made after generation 11 is not in
:data:`FOLDED` and is asked on its own, as any change is.
"""

from __future__ import annotations

from temporalio import workflow

#: The marker a run started with generation 11 or later records (once).
GENERATION = "uet-generation-11"
#: The change ids of generations 1 to 10, all of which a generation-11 run has. Never add
#: to this set: a change is folded only by a new generation with a new marker.
FOLDED = frozenset(
    {
        "ai-no-change-fails",
        "commit-patch-locally",
        "continue-as-new-between-waves",
        "eager-order-from-plan",
        "failed-patch-review-fails-execution",
        "forge-publish",
        "gate-command-not-found-fails-at-once",
        "integrate-eager-step-locally",
        "notify",
        "one-branch-undo-per-wave",
        "phase-read-in-slices",
        "prepare-caches",
        "record-by-reference",
        "recovery-patterns",
        "tool-queues",
        "validate-patch-locally",
        "write-journal-per-step",
    }
)


def patched(change: str) -> bool:
    """Whether this run has ``change``: ``workflow.patched``, one marker for the folded ones."""
    if change in FOLDED and workflow.patched(GENERATION):
        return True
    return workflow.patched(change)
