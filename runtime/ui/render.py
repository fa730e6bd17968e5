"""The pictures and pieces of HTML the dashboard and ``uet report`` share: the DAG and the Gantt
chart as SVG, cost and progress bars, charts, a highlighted diff.

Everything that comes from a run (ids, titles, reasons, logs, diffs) goes through ``esc``:
secrets masked as in logs (activities/lib/redact.py), then HTML-escaped. Built as strings, not
templates: a 2,000-workstream run is 2,000 nodes and rows, drawn in well under a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from activities.lib.redact import redact, secret_values
from runtime.ui.data import PlanInfo
from runtime.ui.timeline import KINDS, Row, Timeline
from schemas.run import RunRecord, WorkstreamState

Link = Callable[[str], str]  # workstream id → where its node links to

#: A diff larger than this is cut for the page (the whole one is a link away).
DIFF_LIMIT = 200_000


_secrets: tuple[float, tuple[str, ...]] = (0.0, ())


def mask(text: str) -> str:
    """``redact`` with this process's secret values, looked up at most once a second (a big
    page masks tens of thousands of strings)."""
    global _secrets
    now = time.monotonic()
    if now - _secrets[0] > 1.0:
        _secrets = (now, secret_values())
    return redact(text, _secrets[1]) if _secrets[1] else text


def esc(value: object) -> Markup:
    """Masked, then escaped: the only way run data gets into markup."""
    return escape(mask(str(value)))


def badge(status: str) -> Markup:
    text = esc(status)
    return Markup(f'<span class="badge s-{text}">{text}</span>')


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


# -- the DAG ----------------------------------------------------------------------------------

NODE_W, NODE_H, COL_W, ROW_H, PAD = 150, 20, 190, 26, 12


@dataclass(frozen=True)
class Layout:
    position: dict[str, tuple[int, int]]  # node → its top left corner
    width: int
    height: int


def layout(record: RunRecord) -> Layout:
    """Columns are the plan's waves (topological generations; eager runs too), rows the
    workstreams of a wave in id order."""
    waves = record.waves or [sorted(record.workstreams)]
    placed = {ws for wave in waves for ws in wave}
    extra = [ws for ws in record.workstreams if ws not in placed]
    if extra:
        waves = [*waves, sorted(extra)]
    position = {}
    for column, wave in enumerate(waves):
        for row, ws_id in enumerate(wave):
            position[ws_id] = (PAD + column * COL_W, PAD + 18 + row * ROW_H)
    tallest = max((len(w) for w in waves), default=0)
    return Layout(position, PAD * 2 + len(waves) * COL_W, PAD * 2 + 18 + tallest * ROW_H)


def node_class(record: RunRecord, plan: PlanInfo, ws_id: str) -> str:
    state = record.workstreams.get(ws_id)
    status = state.status if state else WorkstreamState.PENDING
    return f"node s-{status}" + (" crit" if ws_id in set(plan.critical_path) else "")


def dag_svg(record: RunRecord, plan: PlanInfo, link: Link) -> Markup:
    place = layout(record)
    critical = set(plan.critical_path)
    crit_edges = plan.critical_edges
    plain: list[str] = []
    marked: list[str] = []
    for ws_id, deps in plan.dependencies.items():
        if ws_id not in place.position:
            continue
        x2, y2 = place.position[ws_id]
        for dep in deps:
            if dep not in place.position:
                continue
            x1, y1 = place.position[dep]
            x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
            mid = (x1 + x2) // 2
            path = f"M{x1} {y1}C{mid} {y1} {mid} {y2} {x2} {y2}"
            (marked if (dep, ws_id) in crit_edges else plain).append(path)
    eager = record.scheduling == "eager"
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{place.width}" '
        f'height="{place.height}" viewBox="0 0 {place.width} {place.height}" role="img">'
        "<title>workstream dependency graph</title>"
    ]
    for column in range(len(record.waves or [[]])):
        label = f"generation {column + 1}" if eager else f"wave {column + 1}"
        parts.append(f'<text class="col" x="{PAD + column * COL_W}" y="{PAD + 8}">{label}</text>')
    if plain:
        parts.append(f'<path class="edge" d="{" ".join(plain)}"/>')
    if marked:
        parts.append(f'<path class="edge crit" d="{" ".join(marked)}"/>')
    for ws_id, (x, y) in place.position.items():
        state = record.workstreams.get(ws_id)
        status = str(state.status) if state else "pending"
        title = plan.titles.get(ws_id) or ""
        tip = f"{ws_id} — {status}" + (f" — {title}" if title else "")
        tip += " (critical path)" if ws_id in critical else ""
        label = ws_id if len(ws_id) <= 21 else ws_id[:20] + "…"
        parts.append(
            f'<a href="{esc(link(ws_id))}"><title>{esc(tip)}</title>'
            f'<rect id="n-{esc(ws_id)}" class="{node_class(record, plan, ws_id)}" x="{x}" '
            f'y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + 14}">{esc(label)}</text></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# -- the Gantt chart --------------------------------------------------------------------------

LABEL_W, BAR_W, BAR_H, LANE_H = 170, 760, 12, 16


def gantt_svg(chart: Timeline, link: Link) -> Markup:
    """Bars are drawn in seconds inside a nested SVG whose viewBox is the run's span: as a live
    run goes on, only that viewBox, the axis and the rows that moved change."""
    height = 24 + len(chart.rows) * LANE_H
    parts = [
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + BAR_W + 10}" '
        f'height="{height}" role="img"><title>workstream timeline</title>'
        f'<g id="gantt-axis">{gantt_axis(chart.span_s, height)}</g>'
    ]
    for number, row in enumerate(chart.rows):
        y = 24 + number * LANE_H + 11
        label = row.workstream_id if len(row.workstream_id) <= 24 else row.workstream_id[:23] + "…"
        parts.append(
            f'<a href="{esc(link(row.workstream_id))}"><text x="4" y="{y}">{esc(label)}</text></a>'
        )
    parts.append(
        f'<svg id="gantt-bars" x="{LABEL_W}" y="24" width="{BAR_W}" height="{height - 24}" '
        f'viewBox="{gantt_viewbox(chart)}" preserveAspectRatio="none">'
    )
    for number, row in enumerate(chart.rows):
        parts.append(
            f'<g id="g-{esc(row.workstream_id)}" transform="translate(0 {number * LANE_H})">'
            f"{gantt_row(row)}</g>"
        )
    parts.append("</svg></svg>")
    return Markup("".join(parts))


def gantt_viewbox(chart: Timeline) -> str:
    return f"0 0 {chart.span_s:g} {max(1, len(chart.rows) * LANE_H)}"


def gantt_row(row: Row) -> str:
    order = {kind: n for n, kind in enumerate(KINDS)}
    bars = []
    for segment in sorted(row.segments, key=lambda s: order.get(s.kind, 0)):
        bars.append(
            f'<rect class="seg k-{segment.kind} s-{row.status}" x="{segment.start:g}" y="2" '
            f'width="{max(segment.end - segment.start, 0.1):.1f}" height="{BAR_H}">'
            f"<title>{esc(row.workstream_id)} {segment.kind}: {segment.start:g}s → "
            f"{segment.end:g}s</title></rect>"
        )
    return "".join(bars)


def gantt_axis(span_s: float, height: int) -> str:
    step = _nice_step(span_s / 8)
    ticks = []
    t = 0.0
    while t <= span_s + 1e-9:
        x = LABEL_W + t / span_s * BAR_W
        ticks.append(
            f'<line class="tick" x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{x:.1f}" y="14">{_duration(t)}</text>'
        )
        t += step
    return "".join(ticks)


def _nice_step(raw: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800):
        if step >= raw:
            return float(step)
    return 86400.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}"


# -- bars and charts --------------------------------------------------------------------------


def progress_bar(record: RunRecord) -> Markup:
    """One bar, a segment per state, sized by how many workstreams are in it."""
    total = max(1, len(record.workstreams))
    counts: dict[str, int] = {}
    for state in record.workstreams.values():
        counts[str(state.status)] = counts.get(str(state.status), 0) + 1
    x = 0.0
    parts = ['<svg class="bar" xmlns="http://www.w3.org/2000/svg" width="400" height="14">']
    for status in WorkstreamState:
        n = counts.get(str(status), 0)
        if not n:
            continue
        width = 400 * n / total
        parts.append(
            f'<rect class="s-{status}" x="{x:.1f}" y="0" width="{width:.1f}" height="14">'
            f"<title>{status}: {n}</title></rect>"
        )
        x += width
    parts.append("</svg>")
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    return Markup("".join(parts)) + Markup(' <span class="muted">{}</span>').format(summary)


def cost_bar(record: RunRecord) -> Markup:
    spent, budget = record.cost_usd_total, record.budget_usd_total
    if not budget:
        return Markup(
            '<span class="cost">{} spent <span class="muted">(no budget)</span></span>'
        ).format(money(spent))
    share = min(1.0, spent / budget) if budget else 0.0
    level = "over" if spent >= budget else "warn" if share >= 0.8 else "ok"
    return Markup(
        '<svg class="bar" xmlns="http://www.w3.org/2000/svg" width="400" height="14">'
        '<rect class="budget" x="0" y="0" width="400" height="14"/>'
        '<rect class="spent {level}" x="0" y="0" width="{w:.1f}" height="14"/></svg>'
        ' <span class="cost">{spent} of {budget} ({pct:.0%})</span>'
    ).format(level=level, w=400 * share, spent=money(spent), budget=money(budget), pct=share)


def bar_chart(
    items: Sequence[tuple[str, float]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    maximum: float | None = None,
    title: str = "",
) -> Markup:
    """Horizontal bars, one per labelled value."""
    if not items:
        return Markup('<p class="muted">nothing to show</p>')
    top = maximum or max((v for _, v in items), default=1.0) or 1.0
    label_w, bar_w, lane = 260, 360, 20
    height = lane * len(items) + 4
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
        f'height="{height}" role="img"><title>{esc(title)}</title>'
    ]
    for n, (label, value) in enumerate(items):
        y = n * lane + 2
        width = bar_w * max(0.0, value) / top
        short = label if len(label) <= 40 else label[:39] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{esc(short)}'
            f"<title>{esc(label)}</title></text>"
            f'<rect class="bar-v" x="{label_w}" y="{y}" width="{width:.1f}" height="{lane - 6}"/>'
            f'<text x="{label_w + width + 4:.1f}" y="{y + 13}">{esc(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    points: Sequence[tuple[str, float]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    title: str = "",
) -> Markup:
    """A line over labelled x positions (days), its top value and the first and last labels."""
    if not points:
        return Markup('<p class="muted">nothing to show</p>')
    width, height, pad = 620, 160, 30
    top = max(v for _, v in points) or 1.0
    step = (width - 2 * pad) / max(1, len(points) - 1)
    xy = [
        (pad + n * step, height - pad - (height - 2 * pad) * v / top)
        for n, (_, v) in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{esc(label)}: {esc(fmt(v))}</title>'
        "</circle>"
        for (x, y), (label, v) in zip(xy, points, strict=True)
    )
    return Markup(
        f'<svg class="chart line" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img"><title>{esc(title)}</title>'
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
        f'y2="{height - pad}"/>'
        f'<text x="{pad}" y="{pad - 10}">{esc(fmt(top))}</text>'
        f'<polyline points="{line}"/>{dots}'
        f'<text x="{pad}" y="{height - 8}">{esc(points[0][0])}</text>'
        f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">{esc(points[-1][0])}</text>'
        "</svg>"
    )


# -- diffs and logs ---------------------------------------------------------------------------

_FORMATTER = HtmlFormatter(cssclass="diff", nowrap=False)


def diff_html(text: str, limit: int = DIFF_LIMIT) -> Markup:
    """A unified diff, highlighted. Pygments escapes what it emits; secrets are masked first."""
    cut = len(text) > limit
    body = mask(text[:limit])
    html = highlight(body, DiffLexer(), _FORMATTER)
    if cut:
        html += f'<p class="muted">… cut at {limit:,} characters of {len(text):,}</p>'
    return Markup(html)


def pygments_css() -> str:
    return _FORMATTER.get_style_defs(".diff")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
