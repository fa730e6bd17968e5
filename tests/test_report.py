"""`uet report RUN --html FILE`: one self-contained file (inline CSS and SVG, no script, nothing
fetched) with the run's DAG, timeline, workstream table, gates and costs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from helpers import cli, phase, record_of, run_input, start_phase
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from runtime.ui.app import create_app
from runtime.ui.data import Dashboard, PlanInfo, Snapshot
from runtime.ui.report import report_html
from schemas.events import EventType, RunEvent
from schemas.forge import PullRequestRef
from schemas.run import PhaseState, RunRecord, WorkstreamState, WorkstreamStatus

SCRIPT = "<script>alert(1)</script>"


def assert_self_contained(html: str) -> None:
    """Nothing it shows is loaded from elsewhere (a link a person may follow loads nothing)."""
    assert "<script" not in html.lower()
    assert not re.search(r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    outside = re.findall(r"""<(\w+)\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert {tag.lower() for tag in outside} <= {"a"}
    assert not re.search(r"<link\b", html, re.I)
    assert "@import" not in html and "url(" not in html


async def test_report_of_a_finished_run(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        gates=[{"gate_id": "all", "command": "true"}],
        workstreams=[
            {"workstream_id": "ws-a", "execution_request": {"command": "echo a > x.txt"}},
            {
                "workstream_id": "ws-b",
                "dependencies": ["ws-a"],
                "execution_request": {"command": "echo b > y.txt"},
            },
        ],
    )
    run = run_input(spec, repo)
    record = await record_of(await start_phase(client, settings, run))
    assert record.status == PhaseState.COMPLETED
    target = tmp_path / "report.html"
    done = await cli(client, settings)("report", run.run_id, "--html", str(target))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    html = target.read_text()
    assert_self_contained(html)
    assert '<svg class="dag"' in html and '<svg class="gantt"' in html
    assert 'id="workstreams"' in html and 'id="ws-ws-a"' in html and 'id="ws-ws-b"' in html
    assert 'href="#ws-ws-b"' in html  # the DAG's nodes link inside the file
    assert 'class="edge crit"' in html  # ws-a → ws-b is the critical path
    assert "PHASE_GATE" not in html and ">all<" in html  # the phase gate's row
    missing = await cli(client, settings)("report", "NO-SUCH-RUN", "--html", str(target))
    assert missing.returncode == 2 and "NO-SUCH-RUN" in missing.stderr

    # The dashboard's pages of the same finished run (read once, never asked again).
    dashboard = Dashboard(client, settings)
    transport = httpx.ASGITransport(app=create_app(dashboard))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8300") as http:
        listing = await http.get("/?status=completed")
        assert listing.status_code == 200 and run.run_id in listing.text
        page = await http.get(f"/runs/{run.run_id}")
        assert page.status_code == 200 and '<svg class="dag"' in page.text
        assert 'data-live=""' in page.text  # nothing to follow
        ws = await http.get(f"/runs/{run.run_id}/ws/ws-a")
        assert ws.status_code == 200 and 'class="diff"' in ws.text
        ledger = (await http.get(f"/runs/{run.run_id}/ledger.json")).json()
        assert {e["workstream_id"] for e in ledger} == {"ws-a", "ws-b"}
        insights = await http.get("/insights")
        assert insights.status_code == 200 and "Insights" in insights.text
        unknown = await http.get(f"/runs/{run.run_id}/artifacts/{'0' * 64}")
        assert unknown.status_code == 404
    await dashboard.close()


def test_report_escapes_run_data_and_needs_nothing_else() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    record = RunRecord(
        run_id="R1",
        workflow_id="uet-R1",
        phase_id="PH-X",
        status=PhaseState.FAILED,
        integration_branch="uet/R1/integration",
        waves=[["a"], ["b"]],
        cost_usd_total=0.5,
        budget_usd_total=2.0,
        reason=f"b failed: {SCRIPT}",
        pull_requests=[
            PullRequestRef(number=7, url="https://forge.example/pr/7", head="uet/R1/x", base="m"),
            PullRequestRef(number=8, url="javascript:alert(1)", head="uet/R1/y", base="m"),
        ],
        workstreams={
            "a": WorkstreamStatus(wave=1, status=WorkstreamState.COMPLETED, cost_usd=0.5),
            "b": WorkstreamStatus(wave=2, status=WorkstreamState.FAILED, reason=SCRIPT),
        },
    )
    events = [
        RunEvent(
            event_id=f"0{n}",
            type=kind,
            at=start + timedelta(seconds=n),
            run_id="R1",
            workstream_id=ws,
        )
        for n, (kind, ws) in enumerate(
            [
                (EventType.WORKSTREAM_STARTED, "a"),
                (EventType.WORKSTREAM_COMPLETED, "a"),
                (EventType.WORKSTREAM_STARTED, "b"),
                (EventType.WORKSTREAM_FAILED, "b"),
            ]
        )
    ]
    snapshot = Snapshot(
        run_id="R1",
        record=record,
        running=False,
        plan=PlanInfo(
            dependencies={"a": [], "b": ["a"]},
            titles={"a": f"title {SCRIPT}"},
            critical_path=["a", "b"],
            started_at=start,
        ),
        tick=1,
        at=start + timedelta(seconds=10),
        events=events,
    )
    html = report_html(snapshot)
    assert_self_contained(html)
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "$0.5000 of $2.00 (25%)" in html
    assert html.count('class="seg k-tool') == 2
    # The forge's links: to its pages only (a URL a forge answered is not trusted as a link).
    assert '<a href="https://forge.example/pr/7" rel="noopener noreferrer">#7</a>' in html
    assert "javascript:" not in html and "pull request #8" in html
