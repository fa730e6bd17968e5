"""Budgets: a warning halves parallelism; at the limit no tool run starts until a person
raises the limit or says no."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.review import ReviewDecision
from schemas.run import PhaseState
from workflows.phase import PhaseWorkflow


@pytest.fixture(autouse=True)
def _fakes_on_path(fake_tools: Path) -> None:
    """Every test here runs the fake CLIs (see conftest.fake_tools)."""


def ai(ws_id: str, text: str, deps: list[str] | None = None, tool: str = "codex") -> dict:
    return {
        "workstream_id": ws_id,
        "dependencies": deps or [],
        "execution_request": {"tool_id": tool, "prompt": f"WRITE {ws_id}.txt: {text}"},
    }


def events(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_limit_waits_for_a_person_who_raises_it(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        max_parallel=2,
        budget={"max_cost_usd_total": 0.000001, "max_cost_usd_per_workstream": 5},
        # codex spends past the limit (it cannot be told one); claude is told what is left.
        workstreams=[ai("ws-1", "one"), ai("ws-2", "two", ["ws-1"], tool="claude")],
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    status = await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    assert status.cost_usd_total > status.budget_usd_total  # type: ignore[operator]
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    assert (request.workstream_id, request.reason) == ("ws-2", "budget_exceeded")
    assert request.allowed == ["approve", "reject"]
    assert "of its $0.00 budget" in request.summary
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        ReviewDecision(
            review_id=request.review_id,
            decision="approve",
            reviewer="alice",
            budget_increase_usd=10,
        ),
    )
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert record.budget_usd_total == pytest.approx(10.000001)
    kinds = [e["type"] for e in events(record)]
    assert kinds.count("BUDGET_WARNING") == 1 and "BUDGET_EXCEEDED" in kinds
    warning = next(e for e in events(record) if e["type"] == "BUDGET_WARNING")
    assert "parallelism halved to 1" in warning["message"]
    # Claude was told what it may still spend.
    calls = [line.split(" ", 1) for line in fake_tools.read_text().splitlines()]
    (claude_argv,) = [json.loads(argv) for tool, argv in calls if tool == "claude"]
    left = float(claude_argv[claude_argv.index("--max-budget-usd") + 1])
    assert left == 5.0  # the tighter of the phase's ~$10 left and the workstream's $5


async def test_rejecting_a_budget_review_stops_every_tool_run(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        budget={"max_cost_usd_total": 0.000001},
        workstreams=[ai("ws-1", "one"), ai("ws-2", "two", ["ws-1"]), ai("ws-3", "three", ["ws-1"])],
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, lambda s: len([r for r in s.reviews if r.decision is None]) == 2)
    first, _ = await handle.query(PhaseWorkflow.pending_reviews)
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        ReviewDecision(review_id=first.review_id, decision="reject", reviewer="alice"),
    )
    record = await record_of(handle)
    assert record.status == PhaseState.FAILED
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {"ws-1": "completed", "ws-2": "dropped", "ws-3": "dropped"}
    assert all("budget exhausted" in (record.workstreams[w].reason or "") for w in ("ws-2", "ws-3"))
    assert len(fake_tools.read_text().splitlines()) == 1, "only ws-1's tool ever ran"
    assert record.workstreams["ws-1"].cost_usd > 0
