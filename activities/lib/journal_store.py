"""Reading a run's journal back: its parts (written by the phase through
activities/parts.py, JSON Lines of schemas.journal.JournalRecord) and its live tail."""

from __future__ import annotations

from collections.abc import Iterable

from activities.lib.artifacts import ArtifactStore
from activities.lib.parts import MEDIA_TYPE, pack_lines
from schemas.base import ArtifactRef
from schemas.events import RunEvent
from schemas.journal import JournalRecord, LedgerMove
from schemas.ledger import LedgerEntry, StateChange


def write_journal(
    store: ArtifactStore, ledger: Iterable[LedgerEntry], events: Iterable[RunEvent]
) -> list[ArtifactRef]:
    """A whole journal as parts (for a finished run's rollback, which adds moves to it)."""
    records = [JournalRecord(entry=e) for e in ledger] + [JournalRecord(event=e) for e in events]
    lines = [r.model_dump_json(exclude_none=True) for r in records]
    return [store.put_bytes(part.encode(), MEDIA_TYPE) for part in pack_lines(lines)]


def compose(
    store: ArtifactStore,
    parts: Iterable[ArtifactRef],
    ledger: Iterable[LedgerEntry] = (),
    events: Iterable[RunEvent] = (),
    moves: Iterable[LedgerMove] = (),
) -> tuple[list[LedgerEntry], list[RunEvent]]:
    """The whole ledger and event list of a run: its parts in order, then its live tail
    (entries still held by the workflow, events and moves not yet written out)."""
    entries: dict[str, LedgerEntry] = {}
    seen: dict[str, RunEvent] = {}

    def move(m: LedgerMove) -> None:
        entry = entries.get(m.patch_id)
        if entry is not None:  # the workflow checked the move when it made it
            entry.state = m.state
            entry.state_history.append(StateChange(state=m.state, at=m.at, reason=m.reason))

    for ref in parts:
        for line in store.read_bytes(ref).splitlines():
            record = JournalRecord.model_validate_json(line)
            if record.entry is not None:
                entries[record.entry.patch_id] = record.entry
            if record.event is not None:
                seen[record.event.event_id] = record.event
            if record.move is not None:
                move(record.move)
    for entry in ledger:
        entries[entry.patch_id] = entry
    for m in moves:
        move(m)
    for event in events:
        seen[event.event_id] = event
    return list(entries.values()), sorted(seen.values(), key=lambda e: e.event_id)
