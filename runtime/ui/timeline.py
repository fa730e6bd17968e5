"""When each workstream did what: the rows of the Gantt chart, from the run's events and its
ledger's state histories (workflow time), and — for what a live run has not written out yet —
from when the dashboard first saw each state. Pure: the dashboard and ``uet report`` share it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.events import EventType, RunEvent
from schemas.ledger import LedgerEntry, PatchState
from schemas.run import RunRecord, WorkstreamState

#: Segment kinds, in drawing order (later ones on top).
KINDS = ("queued", "tool", "gates", "review", "merge")
ENDS = {
    EventType.WORKSTREAM_COMPLETED,
    EventType.WORKSTREAM_FAILED,
    EventType.WORKSTREAM_BLOCKED,
}
DONE = {
    WorkstreamState.COMPLETED,
    WorkstreamState.FAILED,
    WorkstreamState.BLOCKED,
    WorkstreamState.DROPPED,
    WorkstreamState.ROLLED_BACK,
}


@dataclass(frozen=True)
class Segment:
    kind: str
    start: float  # seconds after the run started
    end: float


@dataclass(frozen=True)
class Row:
    workstream_id: str
    status: str
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class Timeline:
    started: datetime | None
    span_s: float
    rows: tuple[Row, ...] = field(default_factory=tuple)


def timeline(
    record: RunRecord,
    ledger: Iterable[LedgerEntry],
    events: Iterable[RunEvent],
    observed: dict[str, dict[str, datetime]],
    now: datetime,
    started: datetime | None = None,
    running: bool = True,
) -> Timeline:
    by_ws: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in ledger:
        by_ws[entry.workstream_id].append(entry)
    ws_events: dict[str, list[RunEvent]] = defaultdict(list)
    wave_start: dict[int, datetime] = {}
    last_event: datetime | None = None
    for event in events:
        last_event = max(last_event, event.at) if last_event else event.at
        if event.type == EventType.RUN_STARTED and started is None:
            started = event.at
        if event.type == EventType.WAVE_STARTED and event.wave is not None:
            wave_start.setdefault(event.wave, event.at)
        if event.workstream_id:
            ws_events[event.workstream_id].append(event)
    if started is None:
        moments = [t for states in observed.values() for t in states.values()]
        moments += [e.at for es in ws_events.values() for e in es]
        started = min(moments, default=now)
    # A closed run's chart ends with its last event, not when somebody looked at it.
    end_of_run = now if running or last_event is None else last_event

    def at(moment: datetime) -> float:
        return max(0.0, (moment - started).total_seconds())

    rows = []
    for ws_id, state in record.workstreams.items():
        segments = _segments(
            state.status,
            sorted(by_ws.get(ws_id, []), key=lambda e: e.attempt),
            sorted(ws_events.get(ws_id, []), key=lambda e: e.event_id),
            observed.get(ws_id, {}),
            wave_start.get(state.wave),
            end_of_run,
        )
        rows.append(
            Row(
                ws_id,
                str(state.status),
                tuple(
                    Segment(kind, round(at(a), 1), round(max(at(b), at(a) + 0.1), 1))
                    for kind, a, b in segments
                ),
            )
        )
    return Timeline(started, max(1.0, round(at(end_of_run), 1)), tuple(rows))


def _segments(
    status: WorkstreamState,
    entries: list[LedgerEntry],
    events: list[RunEvent],
    seen: dict[str, datetime],
    wave_started: datetime | None,
    now: datetime,
) -> list[tuple[str, datetime, datetime]]:
    started = [e.at for e in events if e.type == EventType.WORKSTREAM_STARTED]
    created = [e.state_history[0].at for e in entries if e.state_history]
    # Seen past pending by the dashboard: it had started by then at the latest.
    started += [moment for state, moment in seen.items() if state != WorkstreamState.PENDING]
    start = min(started + created, default=None)
    if start is None:
        return []  # it has not started
    ended = [e.at for e in events if e.type in ENDS]
    ended += [seen[s] for s in DONE if s in seen]
    end = max(ended, default=None) if status in DONE else None
    end = end or now
    out: list[tuple[str, datetime, datetime]] = []
    if wave_started is not None and wave_started < start:
        out.append(("queued", wave_started, start))
    # Tool runs: from the start (or the previous attempt's last move) to each patch.
    tool_from = start
    for entry in entries:
        history = entry.state_history
        if not history:
            continue
        out.append(("tool", tool_from, history[0].at))
        for before, after in zip(history, [*history[1:], None], strict=True):
            until = after.at if after is not None else None
            if before.state == PatchState.APPLIED:
                out.append(("gates", before.at, until or end))
            if before.state == PatchState.VERIFIED and until is not None:
                out.append(("merge", before.at, until))
        tool_from = history[-1].at
    if not entries:
        out.append(("tool", start, end))
    elif status == WorkstreamState.RUNNING and tool_from < end:
        last = entries[-1].state
        if last in (PatchState.DROPPED, PatchState.QUARANTINED, PatchState.APPLY_FAILED):
            out.append(("tool", tool_from, end))  # a fix attempt or re-run goes on
    asked = [e.at for e in events if e.type == EventType.REVIEW_REQUESTED]
    decided = [e.at for e in events if e.type == EventType.REVIEW_DECIDED]
    if not asked and WorkstreamState.AWAITING_REVIEW in seen:
        asked = [seen[WorkstreamState.AWAITING_REVIEW]]
    for number, moment in enumerate(asked):
        answered = decided[number] if number < len(decided) else None
        out.append(("review", moment, answered or end))
    return out
