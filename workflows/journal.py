"""A workflow's record of what happened: patch ledger entries and run events.

Times are workflow time and ids come from the deterministic factory, so replay rebuilds the
exact same journal. Events also go to the log through ``workflow.logger``, which stays
silent while replaying.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.ids import IdFactory

with workflow.unsafe.imports_passed_through():
    from schemas.events import EventType, RunEvent
    from schemas.journal import LedgerMove
    from schemas.ledger import TRANSITIONS, IllegalTransition, LedgerEntry, PatchState, StateChange

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
        context = {"uet_event": str(type), "workstream_id": workstream_id, "patch_id": patch_id}
        workflow.logger.info(
            message or str(type), extra={k: v for k, v in context.items() if v is not None}
        )
        return event

    def new_entry(
        self, *, workstream_id: str, attempt: int, tool_id: str, replaces: str | None
    ) -> LedgerEntry:
        entry = LedgerEntry(
            ledger_id=self.ids.new(),
            patch_id=self.ids.new(),
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
