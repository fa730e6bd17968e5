"""The phase's current details in the Web UI: a markdown summary of where the run is."""

from __future__ import annotations

from collections import Counter

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.review import ReviewRequest
    from schemas.run import RunRecord, WorkstreamState

#: Above this many workstreams the table lists only the ones worth looking at (running,
#: waiting, failed, …) under a count per state: a 2,000-row table helps nobody.
TABLE_ROWS = 40
QUIET = (WorkstreamState.PENDING, WorkstreamState.COMPLETED)


class Tally:
    """Each workstream's state as last counted, brought up to date one workstream at a time.
    The details are rendered again on every change: counting 10,000 workstreams each time
    was most of a large phase's workflow time."""

    def __init__(self, record: RunRecord) -> None:
        self.recount(record)

    def recount(self, record: RunRecord) -> None:
        self.record = record
        self.order = {ws_id: n for n, ws_id in enumerate(record.workstreams)}
        self.seen = {ws_id: entry.status for ws_id, entry in record.workstreams.items()}
        self.counts = Counter(self.seen.values())
        self.loud = {ws_id for ws_id, state in self.seen.items() if state not in QUIET}

    def saw(self, ws_id: str) -> None:
        """``ws_id``'s state may have changed."""
        old, new = self.seen[ws_id], self.record.workstreams[ws_id].status
        if old == new:
            return
        self.seen[ws_id] = new
        self.counts[old] -= 1
        self.counts[new] += 1
        if new in QUIET:
            self.loud.discard(ws_id)
        else:
            self.loud.add(ws_id)

    def rows(self) -> list[str]:
        """The workstreams worth looking at, in the record's order."""
        return sorted(self.loud, key=self.order.__getitem__)


def render(
    phase_id: str, status: RunRecord, pending: list[ReviewRequest], tally: Tally | None = None
) -> str:
    """``tally``: the record's states, counted already (else counted here)."""
    where = (
        f"step {status.current_wave}"
        if status.scheduling == "eager"
        else f"wave {status.current_wave}/{len(status.waves)}"
    )
    lines = [f"**{phase_id}** — {status.status}, {where}", ""]
    workstreams = status.workstreams
    rows = list(workstreams.items())
    hidden = 0
    if len(workstreams) > TABLE_ROWS:
        tally = tally or Tally(status)
        counts = {state: n for state, n in tally.counts.items() if n}
        lines += [", ".join(f"{n} {state}" for state, n in sorted(counts.items())), ""]
        loud = tally.rows()
        hidden = max(0, len(loud) - TABLE_ROWS)
        rows = [(ws_id, workstreams[ws_id]) for ws_id in loud[:TABLE_ROWS]]
    if rows:
        lines += ["| workstream | wave | status | commit |", "|---|---|---|---|"]
    for ws_id, entry in rows:
        commit = entry.commit[:10] if entry.commit else ""
        if commit and entry.step and status.scheduling == "eager":
            commit += f" (step {entry.step})"
        state = f"{entry.status}: {entry.waiting}" if entry.waiting else str(entry.status)
        lines.append(f"| {ws_id} | {entry.wave} | {state} | {commit} |")
    if hidden:
        lines.append(f"\n… and {hidden} more: `uet status {status.run_id}`")
    for request in pending:
        lines.append(
            f"\nReview `{request.review_id}` for **{request.workstream_id}** ({request.reason}): "
            f"`uet approve|reject|retry {status.run_id} {request.workstream_id}`"
        )
    return "\n".join(lines)
