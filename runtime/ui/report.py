"""``uet report RUN --html FILE``: one run as one self-contained HTML file — CSS and SVG inline,
no script, nothing to fetch — with the dashboard's own pictures (render.py) and templates."""

from __future__ import annotations

from collections import defaultdict

from markupsafe import Markup

from runtime.ui import live, render
from runtime.ui.app import stylesheet
from runtime.ui.data import Snapshot
from runtime.ui.pages import ENV, Links
from schemas.ledger import LedgerEntry
from schemas.run import WorkstreamState

LINKS = Links(report=True)


def report_html(snapshot: Snapshot) -> str:
    by_ws: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in sorted(snapshot.ledger, key=lambda e: (e.workstream_id, e.attempt)):
        by_ws[entry.workstream_id].append(entry)
    costly = sorted(
        ((ws_id, ws.cost_usd) for ws_id, ws in snapshot.record.workstreams.items() if ws.cost_usd),
        key=lambda item: -item[1],
    )[:30]
    link = LINKS.for_run(snapshot.run_id)
    return ENV.get_template("report.html").render(
        s=snapshot,
        css=Markup(stylesheet()),  # our own stylesheet, not run data
        dag=render.dag_svg(snapshot.record, snapshot.plan, link),
        gantt=render.gantt_svg(live.chart(snapshot), link),
        cost_chart=render.bar_chart(costly, render.money, title="cost by workstream"),
        by_ws=by_ws,
        entries=sorted(snapshot.ledger, key=lambda e: (e.workstream_id, e.attempt)),
        states=[str(s) for s in WorkstreamState],
        links=LINKS,
    )
