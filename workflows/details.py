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


def render(phase_id: str, status: RunRecord, pending: list[ReviewRequest]) -> str:
    where = (
        f"step {status.current_wave}"
        if status.scheduling == "eager"
        else f"wave {status.current_wave}/{len(status.waves)}"
    )
    lines = [f"**{phase_id}** — {status.status}, {where}", ""]
    rows = list(status.workstreams.items())
    hidden = 0
    if len(rows) > TABLE_ROWS:
        counts = Counter(entry.status for _, entry in rows)
        lines += [", ".join(f"{n} {state}" for state, n in sorted(counts.items())), ""]
        rows = [(w, entry) for w, entry in rows if entry.status not in QUIET]
        hidden = max(0, len(rows) - TABLE_ROWS)
        rows = rows[:TABLE_ROWS]
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
