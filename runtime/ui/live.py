"""Live pages: what changed since a page was drawn, pushed as server-sent events.

A page is a set of *fragments* — an element's inner HTML, an SVG group's children, or an
element's attributes — keyed by element id. Each tick of the run's watch builds the page's
fragments once (shared by every stream showing that run); each stream sends only those that
differ from what it sent before, as one JSON message that static/live.js applies. A node
changing colour is a few dozen bytes, not the page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from markupsafe import Markup

from runtime.ui import render
from runtime.ui.data import RunListing, Snapshot, workstream_entries
from runtime.ui.pages import Links, render_fragment
from runtime.ui.timeline import Timeline, timeline
from schemas.ledger import LedgerEntry

Fragments = dict[tuple[str, str], Any]  # (op, element id) → value

#: Ledger entries the run page lists (the rest are on the workstream pages and in ledger.json).
LEDGER_ROWS = 100
#: The live cells of a workstream's row (their element ids: <key>-<workstream>).
CELLS = ("st", "ex", "co", "cm", "rs")


def chart(snapshot: Snapshot) -> Timeline:
    return timeline(
        snapshot.record,
        snapshot.ledger,
        snapshot.events,
        snapshot.observed,
        snapshot.at,
        started=snapshot.plan.started_at,
        running=snapshot.running,
    )


def run_fragments(snapshot: Snapshot, links: Links) -> Fragments:
    record = snapshot.record
    found: Fragments = {
        ("html", "run-head"): render_fragment("_run_head.html", s=snapshot, links=links),
        ("html", "run-reviews"): render_fragment("_run_reviews.html", s=snapshot, links=links),
        ("html", "run-gates"): render_fragment("_phase_gates.html", s=snapshot, links=links),
        ("html", "run-ledger"): render_fragment(
            "_ledger.html", s=snapshot, links=links, entries=latest_entries(snapshot)
        ),
    }
    for ws_id in record.workstreams:
        found[("attr", f"n-{ws_id}")] = {"class": render.node_class(record, snapshot.plan, ws_id)}
        for key, value in workstream_cells(snapshot, ws_id).items():
            found[("html", f"{key}-{ws_id}")] = value
    tl = chart(snapshot)
    for row in tl.rows:
        found[("svg", f"g-{row.workstream_id}")] = render.gantt_row(row)
    found[("attr", "gantt-bars")] = {"viewBox": render.gantt_viewbox(tl)}
    height = 24 + len(tl.rows) * render.LANE_H
    found[("svg", "gantt-axis")] = render.gantt_axis(tl.span_s, height)
    return found


def workstream_cells(snapshot: Snapshot, ws_id: str) -> dict[str, Markup]:
    """The cells of a workstream's row in the run page's table (st-, ex-, co-, cm-, rs-)."""
    state = snapshot.record.workstreams[ws_id]
    reason = state.waiting or state.reason or ""
    return {
        "st": render.badge(str(state.status)),
        "ex": Markup(state.executions),
        "co": render.esc(render.money(state.cost_usd) if state.cost_usd else ""),
        "cm": render.esc((state.commit or "")[:10]),
        "rs": render.esc(reason if len(reason) < 160 else reason[:159] + "…"),
    }


def latest_entries(snapshot: Snapshot) -> list[Any]:
    def moved(entry: Any) -> Any:
        return entry.state_history[-1].at if entry.state_history else snapshot.at

    return sorted(snapshot.ledger, key=moved, reverse=True)[:LEDGER_ROWS]


def workstream_fragments(
    snapshot: Snapshot, ws_id: str, links: Links, extra: list[LedgerEntry] | None = None
) -> Fragments:
    """``extra``: entries the page was drawn with that the phase does not hold yet (a running
    workstream's own; the phase's copy wins once it has one)."""
    return {
        ("html", "ws-head"): render_fragment("_ws_head.html", s=snapshot, ws_id=ws_id, links=links),
        ("html", "ws-reviews"): render_fragment(
            "_ws_reviews.html", s=snapshot, ws_id=ws_id, links=links
        ),
        ("html", "ws-attempts"): render_fragment(
            "_ws_attempts.html",
            s=snapshot,
            links=links,
            entries=merged(snapshot.ledger, extra or [], ws_id),
        ),
    }


def merged(ledger: list[LedgerEntry], extra: list[LedgerEntry], ws_id: str) -> list[LedgerEntry]:
    entries = {e.patch_id: e for e in extra if e.workstream_id == ws_id}
    entries.update({e.patch_id: e for e in workstream_entries(ledger, ws_id)})
    return sorted(entries.values(), key=lambda e: e.attempt)


def runs_fragments(listings: list[RunListing], links: Links) -> Fragments:
    return {("html", "runs-body"): render_fragment("_runs_body.html", runs=listings, links=links)}


def changes(before: Fragments, after: Fragments) -> dict[str, Any]:
    """The ops that turn ``before`` into ``after`` (empty: nothing to send)."""
    ops: dict[str, dict[str, Any]] = {}
    for (op, element), value in after.items():
        if before.get((op, element)) != value:
            ops.setdefault(op, {})[element] = value
    return ops


def event(ops: dict[str, Any], tick: int) -> str:
    return f"data: {json.dumps({**ops, 'tick': tick}, separators=(',', ':'))}\n\n"


async def stream(
    first: Fragments,
    tick: int,
    next_fragments: Callable[[int], Any],
    disconnected: Callable[[], Any],
    keepalive_s: float = 15,
) -> AsyncIterator[str]:
    """The event stream of one open page. ``first``: the fragments the page was drawn with
    (so its first message is only what changed since); ``next_fragments(tick)``: the next
    tick's (tick, fragments), or None after ``keepalive_s`` without one, or ... to stop."""
    sent = first
    yield ": connected\n\n"
    while not await disconnected():
        found = await next_fragments(tick)
        if found is Ellipsis:
            return
        if found is None:
            yield ": keepalive\n\n"
            continue
        tick, fragments = found
        ops = changes(sent, fragments)
        sent = fragments
        if ops:
            yield event(ops, tick)
