"""A run's report in Markdown, for a pull request's body (and an issue's comment): what a
reviewer on the forge needs without opening anything else — each workstream's outcome, tool,
attempts and cost, the gates, the DAG as a Mermaid graph (GitHub, GitLab and Gitea draw it),
the ledger in numbers and a link to the dashboard.

Pure: the same run gives the same text, so updating a pull request with it again is a no-op
on the forge. Everything that came from a tool or a person is escaped for Markdown tables
and masked like logs are (activities/lib/redact.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

from activities.lib.redact import redact
from schemas.ledger import LedgerEntry
from schemas.run import RunRecord

#: Marks the body as uet's, so a later `uet pr` finds and rewrites only its own text.
MARKER = "<!-- uet:run={run_id} -->"
OUTCOME = {
    "completed": "✅ completed",
    "failed": "❌ failed",
    "blocked": "⛔ blocked",
    "dropped": "⏭️ dropped",
    "rolled_back": "↩️ rolled back",
    "awaiting_review": "⏳ awaiting review",
    "running": "🔄 running",
    "pending": "… pending",
}
#: A body larger than this is cut (GitHub refuses bodies over 65,536 characters).
MAX_BODY = 60_000


def run_markdown(
    record: RunRecord,
    ledger: Iterable[LedgerEntry],
    dependencies: Mapping[str, list[str]],
    *,
    dashboard: str | None = None,
    issues: Mapping[str, int] | None = None,
    closes: Iterable[int] | None = None,
) -> str:
    """The report; ``dependencies``: workstream → what it depends on (the phase's DAG);
    ``issues``: workstream → the issue it came from (``uet plan --from-issues``); ``closes``:
    the issues its merge closes (default: those of every integrated workstream)."""
    entries = list(ledger)
    by_ws: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_ws.setdefault(entry.workstream_id, []).append(entry)
    lines = [
        f"## uet run `{record.run_id}` — {cell(record.phase_id)}: "
        f"{OUTCOME.get(str(record.status), str(record.status))}",
        "",
        f"Integration branch `{record.integration_branch}`"
        + (f" at `{record.head_sha[:12]}`" if record.head_sha else "")
        + (f" · cost ${record.cost_usd_total:.4f}" if record.cost_usd_total else "")
        + (f" of ${record.budget_usd_total:.2f}" if record.budget_usd_total else ""),
    ]
    if record.reason:
        lines += ["", f"> {cell(record.reason)}"]
    lines += [
        "",
        "| workstream | outcome | tool | attempts | cost | commit |",
        "|---|---|---|---|---|---|",
    ]
    for ws_id, state in record.workstreams.items():
        mine = by_ws.get(ws_id, [])
        tools = ", ".join(dict.fromkeys(e.tool_id for e in mine)) or "-"
        attempts = max((e.attempt for e in mine), default=0)
        name = cell(ws_id)
        if issues and ws_id in issues:
            name += f" (#{issues[ws_id]})"
        lines.append(
            f"| {name} | {OUTCOME.get(str(state.status), str(state.status))} | {cell(tools)} "
            f"| {attempts} | {f'${state.cost_usd:.4f}' if state.cost_usd else '-'} "
            f"| {f'`{state.commit[:10]}`' if state.commit else '-'} |"
        )
    if record.phase_gates:
        lines += ["", "### Phase gates", ""]
        for gate in record.phase_gates:
            mark = "✅" if gate.status == "passed" else "❌"
            lines.append(f"- {mark} `{cell(gate.gate_id)}` {gate.status}")
    lines += ["", "### Plan", "", "```mermaid", "graph LR", *_mermaid(record, dependencies), "```"]
    counts = Counter(str(e.state) for e in entries)
    if counts:
        lines += [
            "",
            "### Ledger",
            "",
            f"{len(entries)} patches: "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
        ]
    if dashboard:
        lines += ["", f"[The run in the dashboard]({dashboard.rstrip('/')}/runs/{record.run_id})"]
    if closes is None:
        closes = [
            number
            for ws_id, number in (issues or {}).items()
            if ws_id in record.workstreams and record.workstreams[ws_id].commit
        ]
    if closing := sorted(set(closes)):  # the forges close these when the pull request merges
        lines += ["", ", ".join(f"Closes #{number}" for number in closing)]
    lines += ["", MARKER.format(run_id=record.run_id)]
    body = "\n".join(lines) + "\n"
    if len(body) > MAX_BODY:  # the table of a very large run: cut, and say so
        cut = body[: MAX_BODY - 200].rsplit("\n", 1)[0]
        body = f"{cut}\n\n… cut at {MAX_BODY:,} characters: `uet status {record.run_id}`\n"
        body += MARKER.format(run_id=record.run_id) + "\n"
    return body


def _mermaid(record: RunRecord, dependencies: Mapping[str, list[str]]) -> list[str]:
    ids = {ws: f"w{n}" for n, ws in enumerate(record.workstreams)}
    lines = []
    for ws, node in ids.items():
        state = str(record.workstreams[ws].status)
        label = re.sub(r"[\"\[\]{}()<>|]", "", ws)
        lines.append(f'  {node}["{label}"]:::{state}')
    for ws, deps in dependencies.items():
        for dep in deps:
            if dep in ids and ws in ids:
                lines.append(f"  {ids[dep]} --> {ids[ws]}")
    colours = {"completed": "#2da44e", "failed": "#cf222e", "blocked": "#bc4c00"}
    lines += [f"  classDef {s} fill:{c},color:#fff" for s, c in colours.items()]
    return lines


def cell(text: str) -> str:
    """One Markdown table cell: masked, one line, pipes and markup escaped."""
    flat = redact(text).replace("\n", " ").replace("|", "\\|")
    return re.sub(r"([<>*_`\[\]])", r"\\\1", flat)[:300]
