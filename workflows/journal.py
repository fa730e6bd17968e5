"""A workflow's record of what happened: patch ledger entries and run events.

Times are workflow time and ids come from the deterministic factory, so replay rebuilds the
exact same journal. Events also go to the log through ``workflow.logger``, which stays
silent while replaying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow

from workflows.ids import IdFactory
from workflows.steps import QUICK, Steps
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.lib.parts import INLINE_LIMIT, pack_lines, split
    from activities.parts import PartActivities
    from schemas.base import ArtifactRef
    from schemas.events import EventType, RunEvent
    from schemas.journal import JournalRecord, LedgerMove
    from schemas.ledger import TRANSITIONS, IllegalTransition, LedgerEntry, PatchState, StateChange
    from schemas.phase_state import PhaseWorkflowState
    from schemas.run import RunRecord
    from schemas.workspace import PartText

#: workflow.patched id: the journal is written out step by step (issue 7).
WRITE_JOURNAL = "write-journal-per-step"
#: Parts read at once by ``read_each``: ~384 KB of a large phase's lines, which validate in
#: about a quarter of a second on a slow machine.
READ_WINDOW = 8
#: The event each ledger move announces (queued and verified are announced by their causes).
_MOVE_EVENTS = {
    PatchState.VALIDATED: EventType.PATCH_VALIDATED,
    PatchState.QUARANTINED: EventType.PATCH_QUARANTINED,
    PatchState.APPLIED: EventType.PATCH_APPLIED,
    PatchState.APPLY_FAILED: EventType.PATCH_APPLY_FAILED,
    PatchState.DROPPED: EventType.PATCH_DROPPED,
    PatchState.COMMITTED: EventType.PATCH_COMMITTED,
}


class Journal:
    def __init__(self, run_id: str, ids: IdFactory) -> None:
        self.run_id = run_id
        self.ids = ids
        self.entries: list[LedgerEntry] = []
        self.events: list[RunEvent] = []
        #: Moves of entries that were already written out (see schemas/journal.py).
        self.moves: list[LedgerMove] = []
        #: Told of every event as it is journaled (the notifier).
        self.listeners: list[Callable[[RunEvent], None]] = []

    def event(
        self,
        type: EventType,
        message: str = "",
        *,
        workstream_id: str | None = None,
        patch_id: str | None = None,
        wave: int | None = None,
        **data: Any,
    ) -> RunEvent:
        event = RunEvent(
            event_id=self.ids.new(),
            type=type,
            at=workflow.now(),
            run_id=self.run_id,
            workstream_id=workstream_id,
            patch_id=patch_id,
            wave=wave,
            message=message,
            data=data,
        )
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        context = {"uet_event": str(type), "workstream_id": workstream_id, "patch_id": patch_id}
        workflow.logger.info(
            message or str(type), extra={k: v for k, v in context.items() if v is not None}
        )
        return event

    def next_ids(self) -> tuple[str, str]:
        """(ledger id, patch id) for an entry made later (new_entry's ``ids``), when a step
        before it needs the patch's id."""
        return self.ids.new(), self.ids.new()

    def new_entry(
        self,
        *,
        workstream_id: str,
        attempt: int,
        tool_id: str,
        replaces: str | None,
        ids: tuple[str, str] | None = None,
    ) -> LedgerEntry:
        ledger_id, patch_id = ids or self.next_ids()
        entry = LedgerEntry(
            ledger_id=ledger_id,
            patch_id=patch_id,
            run_id=self.run_id,
            workstream_id=workstream_id,
            attempt=attempt,
            tool_id=tool_id,
            replaces=replaces,
            state_history=[StateChange(state=PatchState.CREATED, at=workflow.now())],
        )
        self.entries.append(entry)
        self.event(
            EventType.PATCH_CREATED,
            f"{workstream_id}: patch {entry.patch_id} (attempt {attempt})",
            workstream_id=workstream_id,
            patch_id=entry.patch_id,
        )
        return entry

    def move(self, entry: LedgerEntry, state: PatchState, reason: str = "") -> None:
        entry.move(state, workflow.now(), reason)
        self._announce(entry.workstream_id, entry.patch_id, state, reason)

    def move_written(
        self,
        workstream_id: str,
        patch_id: str,
        current: PatchState,
        state: PatchState,
        reason: str = "",
    ) -> None:
        """``move`` for an entry already written out: recorded as a LedgerMove."""
        if state not in TRANSITIONS[current]:
            raise IllegalTransition(f"patch {patch_id}: {current} -> {state} is not a legal move")
        self.moves.append(
            LedgerMove(patch_id=patch_id, state=state, at=workflow.now(), reason=reason)
        )
        self._announce(workstream_id, patch_id, state, reason)

    def _announce(self, workstream_id: str, patch_id: str, state: PatchState, reason: str) -> None:
        kind = _MOVE_EVENTS.get(state)
        if kind is not None:
            text = f"{workstream_id}: patch {patch_id} {state}"
            self.event(
                kind,
                f"{text}: {reason}" if reason else text,
                workstream_id=workstream_id,
                patch_id=patch_id,
            )


class JournalParts:
    """The phase's journal written out to the artifact store in parts as it goes, and documents
    read back from parts: a phase holds references, so its memory, its queries and its
    report's input stay small however long the run."""

    def __init__(
        self,
        journal: Journal,
        state: PhaseWorkflowState,
        steps: Steps,
        batch: int,
        live: Callable[[str], bool],
    ) -> None:
        self.journal = journal
        self.state = state
        self.steps = steps
        self.batch = batch
        self.live = live  # workstream id → its ledger entries may still change in place

    async def write_out(self, *, everything: bool = False) -> None:
        """Write out what can no longer change in place — the ledger entries of finished
        workstreams, the events and moves so far — once there is a batch of it (or
        ``everything``)."""
        ledger, journal = self.state.ledger, self.journal
        held = len(ledger) + len(journal.events) + len(journal.moves)
        if not everything and held < self.batch:
            return
        if not patched(WRITE_JOURNAL):
            return
        final = [e for e in ledger.values() if not self.live(e.workstream_id)]
        events = sorted(journal.events, key=lambda e: e.event_id)
        moves = list(journal.moves)
        records = [
            *(JournalRecord(entry=e) for e in final),
            *(JournalRecord(move=m) for m in moves),
            *(JournalRecord(event=e) for e in events),
        ]
        if not records:
            return
        lines = [r.model_dump_json(exclude_none=True) for r in records]
        self.state.record.journal += await self.write(pack_lines(lines), "journal")
        for entry in final:
            del ledger[entry.patch_id]
            self.state.written[entry.patch_id] = (entry.workstream_id, entry.state)
        # Handlers may have added events while the parts were written: keep those.
        done = {e.event_id for e in events}
        journal.events[:] = [e for e in journal.events if e.event_id not in done]
        del journal.moves[: len(moves)]

    async def write(self, parts: list[str], what: str) -> list[ArtifactRef]:
        return await write_parts(self.steps, parts, what)

    async def read(self, refs: list[ArtifactRef]) -> str:
        return await read_parts(self.steps, refs)

    async def read_each(self, refs: list[ArtifactRef], take: Callable[[str], None]) -> None:
        """The parts in order, a window of them at a time, each given to ``take`` as its window
        arrives: what ``take`` does with a large document is spread over one workflow task per
        window, each far inside the SDK's two seconds."""
        for start in range(0, len(refs), READ_WINDOW):
            window = range(start, min(start + READ_WINDOW, len(refs)))
            for text in await asyncio.gather(*(_load(self.steps, refs, n) for n in window)):
                take(text.text)


async def write_parts(steps: Steps, parts: list[str], what: str) -> list[ArtifactRef]:
    """``parts`` into the artifact store, one activity each, at once."""
    return list(
        await asyncio.gather(
            *(
                steps.run(
                    PartActivities.store_part,
                    PartText(text=part),
                    QUICK,
                    summary=f"write {what} part {n + 1} of {len(parts)}",
                )
                for n, part in enumerate(parts)
            )
        )
    )


async def read_parts(steps: Steps, refs: list[ArtifactRef]) -> str:
    """The text the parts ``refs`` hold, read at once."""
    texts = await asyncio.gather(*(_load(steps, refs, n) for n in range(len(refs))))
    return "".join(t.text for t in texts)


async def carried_record(steps: Steps, record: RunRecord, change: str) -> RunRecord:
    """``record`` as a payload may carry it: by reference, as parts, when it is too large
    (10,000 workstreams make a 2 MB record) and the run has ``change``."""
    text = record.model_dump_json()
    if len(text) <= INLINE_LIMIT or not patched(change):
        return record
    return record.by_reference(await write_parts(steps, split(text), "record"))


def _load(steps: Steps, refs: list[ArtifactRef], n: int) -> Awaitable[PartText]:
    return steps.run(
        PartActivities.load_part, refs[n], QUICK, summary=f"read part {n + 1} of {len(refs)}"
    )
