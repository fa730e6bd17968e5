"""Which of uet's workflow changes a run has: ``workflow.patched``, with the changes of each
generation folded into one marker.

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
``workflow.patched`` answers outside replay.

Generation 12 folds the changes of generation 11 and those made since (:data:`FOLDED_12`)
behind ``uet-generation-12``, by the same argument: a run started with this code records
that one marker; a generation-11 run, replaying, hears False for generation 12 and True for
generation 11, so it takes what it took and asks each later change on its own. Each new
generation is asked first, so a new run records only the newest marker. A change made after
the newest generation is asked on its own, as any change is. Generation 13 folds one more
(:data:`FOLDED_13`) behind ``uet-generation-13`` the same way: were it asked on its own, every
new workstream would record its marker and upsert beside generation 12's. Generation 14
(:data:`FOLDED_14`, ``uet-generation-14``) likewise.

A workstream's child workflow asks nothing (generation 15, :data:`FOLDED_15`): its phase hands
it the generation it has in the child's memo (:data:`INHERITED`, written when the child is
started, so it is in the child's first event and replays as it was), and the child has that
generation's changes without a marker of its own — which saved each workstream a marker, an
upsert and a visibility write. A child started without one (by code before generation 15)
asks as it did. Generation 16 (:data:`FOLDED_16`, ``uet-generation-16``) folds four changes of
the phase's, by the argument of generation 12, and generations 17 and 18 (:data:`FOLDED_17`,
:data:`FOLDED_18`) one more each.
"""

from __future__ import annotations

from temporalio import workflow

#: The marker a run started with generation 11 recorded (once).
GENERATION_11 = "uet-generation-11"
#: The change ids of generations 1 to 10, all of which a generation-11 run has. Never add
#: to this set (or any generation's): a change is folded only by a new generation.
FOLDED_11 = frozenset(
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


#: The marker a run started with generation 12 recorded (once).
GENERATION_12 = "uet-generation-12"
#: Generation 12's own changes: the one made after generation 11 (v12's histories) and the
#: ready patch applied on the workstream's worker (issue 20, v13's).
FOLDED_12 = frozenset({"ready-patch-applied-locally", "rollback-record-by-reference"})

#: The marker a run started with generation 13 recorded (once).
GENERATION_13 = "uet-generation-13"
#: Generation 13's own change: a ready patch applied, validated and committed in one local
#: activity (issue 20, v14's histories).
FOLDED_13 = frozenset({"ready-patch-in-one-step"})

#: The marker a run started with generation 14 recorded (once).
GENERATION_14 = "uet-generation-14"
#: Generation 14's own change: a tool's patch validated and committed in the tool's own
#: activity (issue 20, v15's histories).
FOLDED_14 = frozenset({"tool-patch-in-its-step"})

#: The marker a run started with generation 15 recorded (once).
GENERATION_15 = "uet-generation-15"
#: Generation 15's own change: a workstream's child has its phase's generation without
#: asking (issue 20, v16's histories).
FOLDED_15 = frozenset({"child-inherits-generation"})

GENERATION_16 = "uet-generation-16"
#: Generation 16's own changes: in eager mode, the workstream a finished one's slot goes to is
#: started before the finished one is integrated, unless its merge readies another, which the
#: slot is kept for; a run is opened while it is planned; a small run is closed by a local
#: activity (issue 20, v17's histories).
FOLDED_16 = frozenset(
    {
        "start-before-integrating",
        "open-while-planning",
        "close-run-locally",
        "keep-slots-for-dependents",
    }
)

GENERATION_17 = "uet-generation-17"
#: Generation 17's own change: in eager mode, the workstreams that have finished by the time
#: a merge runs are integrated together, as one step (issue 20, v18's histories).
FOLDED_17 = frozenset({"integrate-finished-together"})

#: The marker a run started with this code records (once).
GENERATION = "uet-generation-18"
#: Generation 18's own change: workstreams started ahead of their slot, which their tool
#: asks the phase for once the checkout is ready (issue 20, v19's histories).
FOLDED_18 = frozenset({"prepare-ahead"})
#: Every change a run of the newest generation has.
FOLDED = (
    FOLDED_11 | FOLDED_12 | FOLDED_13 | FOLDED_14 | FOLDED_15 | FOLDED_16 | FOLDED_17 | FOLDED_18
)
#: Newest first: a new run asks (and records) only the newest marker.
GENERATIONS = (
    (GENERATION, FOLDED),
    (
        GENERATION_17,
        FOLDED_11 | FOLDED_12 | FOLDED_13 | FOLDED_14 | FOLDED_15 | FOLDED_16 | FOLDED_17,
    ),
    (GENERATION_16, FOLDED_11 | FOLDED_12 | FOLDED_13 | FOLDED_14 | FOLDED_15 | FOLDED_16),
    (GENERATION_15, FOLDED_11 | FOLDED_12 | FOLDED_13 | FOLDED_14 | FOLDED_15),
    (GENERATION_14, FOLDED_11 | FOLDED_12 | FOLDED_13 | FOLDED_14),
    (GENERATION_13, FOLDED_11 | FOLDED_12 | FOLDED_13),
    (GENERATION_12, FOLDED_11 | FOLDED_12),
    (GENERATION_11, FOLDED_11),
)


#: The memo key in which a phase hands its generation to a workstream's child workflow.
INHERITED = "uet-generation"


def patched(change: str) -> bool:
    """Whether this run has ``change``: ``workflow.patched``, one marker for the folded ones
    (none for those of a generation the run inherited)."""
    inherited = _inherited()
    if inherited is not None:
        return change in inherited or workflow.patched(change)
    for marker, changes in GENERATIONS:
        if change in changes and workflow.patched(marker):
            return True
    return workflow.patched(change)


def generation() -> str | None:
    """The newest generation this run has: what a child it starts inherits. Asked live, the
    newest is True (and recorded already: a run asks it first); replaying, what was."""
    for marker, _ in GENERATIONS:
        if workflow.patched(marker):
            return marker
    return None


def _inherited() -> frozenset[str] | None:
    """The changes of the generation this run was handed (its memo), if it was."""
    marker = workflow.memo_value(INHERITED, None, type_hint=str)
    if marker is None:
        return None
    for name, changes in GENERATIONS:
        if name == marker:
            return changes
    # A newer phase's child on an older worker: its changes are unknown here. Failing the
    # workflow task (retried) leaves it to a worker that knows them.
    raise RuntimeError(f"this worker does not know {marker}: upgrade uet on it")
