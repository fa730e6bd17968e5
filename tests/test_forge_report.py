"""The run's report in Markdown (a pull request's body): the table, the Mermaid DAG, escaping
and masking, the marker a later update finds, the cut of a huge run."""

from __future__ import annotations

import pytest

from activities.lib.forges.report import MARKER, MAX_BODY, run_markdown
from schemas.ledger import LedgerEntry
from schemas.run import PhaseState, RunRecord, WorkstreamState, WorkstreamStatus


def record(**workstreams: WorkstreamStatus) -> RunRecord:
    return RunRecord(
        run_id="01RUN",
        workflow_id="uet-01RUN",
        phase_id="PH-X",
        status=PhaseState.COMPLETED,
        integration_branch="uet/01RUN/integration",
        head_sha="a" * 40,
        cost_usd_total=0.25,
        workstreams=dict(workstreams),
    )


def entry(ws: str, attempt: int, tool: str = "claude") -> LedgerEntry:
    return LedgerEntry(
        ledger_id=f"L{ws}{attempt}",
        patch_id=f"P{ws}{attempt}",
        run_id="01RUN",
        workstream_id=ws,
        attempt=attempt,
        tool_id=tool,
    )


def test_the_table_the_dag_and_the_marker() -> None:
    run = record(
        a=WorkstreamStatus(
            status=WorkstreamState.COMPLETED, wave=1, commit="b" * 40, cost_usd=0.25
        ),
        b=WorkstreamStatus(status=WorkstreamState.FAILED, wave=2, reason="gate unit failed"),
    )
    text = run_markdown(
        run,
        [entry("a", 1), entry("b", 1, "shell"), entry("b", 2, "shell")],
        {"a": [], "b": ["a"]},
        dashboard="http://dash:8300/",
        issues={"a": 12},
    )
    assert "| a (#12) | ✅ completed | claude | 1 | $0.2500 | `bbbbbbbbbb` |" in text
    assert "| b | ❌ failed | shell | 2 | - | - |" in text
    assert "```mermaid" in text and "w0 --> w1" in text
    assert "[The run in the dashboard](http://dash:8300/runs/01RUN)" in text
    assert text.rstrip().endswith(MARKER.format(run_id="01RUN"))
    assert run_markdown(run, [], {"a": [], "b": ["a"]}) == run_markdown(
        run, [], {"a": [], "b": ["a"]}
    )  # the same run, the same body: an update changes nothing


def test_what_tools_wrote_is_escaped_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UET_TEST_API_KEY", "sk-live-abcdefghijklmnop")
    run = record(**{"x|y": WorkstreamStatus(status=WorkstreamState.COMPLETED, wave=1)})
    run.reason = "boom <script> sk-live-abcdefghijklmnop\nsecond line"
    text = run_markdown(run, [], {})
    assert "sk-live-abcdefghijklmnop" not in text
    assert "\\<script\\>" in text and "<script>" not in text
    assert "| x\\|y |" in text


def test_a_huge_run_is_cut_and_still_marked() -> None:
    many = {
        f"ws-{n:05d}": WorkstreamStatus(status=WorkstreamState.COMPLETED, wave=1)
        for n in range(3000)
    }
    text = run_markdown(record(**many), [], {})
    assert len(text) <= MAX_BODY
    assert "cut at 60,000 characters" in text
    assert text.rstrip().endswith(MARKER.format(run_id="01RUN"))


def test_it_closes_the_issues_of_integrated_workstreams_only() -> None:
    run = record(
        a=WorkstreamStatus(status=WorkstreamState.COMPLETED, wave=1, commit="b" * 40),
        b=WorkstreamStatus(status=WorkstreamState.FAILED, wave=1),
    )
    issues = {"a": 12, "b": 3}
    body = run_markdown(run, [], {}, issues=issues)
    assert "Closes #12" in body and "#3" in body.split("| b (")[1][:3]
    assert "Closes #3" not in body  # b's work is not in this pull request
    assert "Closes" not in run_markdown(run, [], {}, issues=issues, closes=())
