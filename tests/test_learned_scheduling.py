"""Scheduling and routing from history: durations learned from earlier runs weigh the plan's
critical path and eager priorities; ``router: {learned: true}`` orders an auto chain by the
tools' learned success rate and cost. Read once, by the planning activity."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import phase, plan_of, run_input, run_phase
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from activities.lib.planning import plan_phase
from activities.lib.telemetry.history import (
    ToolRecord,
    learn,
    learned_durations,
    learned_tool_order,
    order_tools,
    read_learned,
)
from activities.lib.telemetry.models import Execution, Run, WorkstreamShape
from activities.lib.telemetry.store import Telemetry
from runtime.plugin import WORKFLOWS
from runtime.settings import Settings
from schemas.run import PhaseState
from schemas.spec import PhaseSpec, WorkstreamSpec

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ws(ws_id: str, **fields: object) -> WorkstreamSpec:
    return WorkstreamSpec.model_validate(
        {"workstream_id": ws_id, "execution_request": {"command": "true"}, **fields}
    )


class Rows:
    """Executions and shapes written straight into a telemetry database."""

    def __init__(self, store: Telemetry) -> None:
        self.store = store
        self.n = 0

    def execution(
        self,
        run_id: str,
        ws_id: str,
        seconds: float,
        minute: int,
        *,
        kind: str = "tool",
        tool: str = "shell",
        task_kind: str | None = None,
        outcome: str = "changed",
        cost: float | None = None,
    ) -> None:
        self.n += 1
        with self.store.session() as session:
            session.add(
                Execution(
                    key=f"x{self.n}",
                    run_id=run_id,
                    workstream_id=ws_id,
                    attempt=1,
                    kind=kind,
                    tool_id=tool if kind == "tool" else None,
                    gate_id="g" if kind == "gate" else None,
                    task_kind=task_kind if kind == "tool" else None,
                    at=T0 + timedelta(minutes=minute),
                    duration_s=seconds,
                    outcome=outcome,
                    cost_usd=cost,
                )
            )

    def shape(self, run_id: str, phase_id: str, ws_id: str, template: str | None = None) -> None:
        self.n += 1
        with self.store.session() as session:
            session.add(
                WorkstreamShape(
                    key=f"s{self.n}",
                    run_id=run_id,
                    phase_id=phase_id,
                    workstream_id=ws_id,
                    template=template,
                    tool_id="shell",
                    gate_set="-",
                    scope_shape="",
                    spec={},
                    at=T0,
                )
            )

    def run(self, run_id: str, phase_id: str) -> None:
        with self.store.session() as session:
            session.add(Run(run_id=run_id, phase_id=phase_id, status="completed"))


@pytest.fixture
def rows(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Telemetry.open(f"sqlite:///{tmp_path / 'uet.db'}")
    yield Rows(store)
    store.close()


# -- learned durations -------------------------------------------------------------------------


def test_durations_prefer_the_workstream_then_its_template_then_its_task_kind(rows) -> None:
    # "a" in three earlier runs of PH-A (one known only from the runs table, one with a gate);
    # its runs in another phase and in the run being planned do not count.
    rows.shape("r1", "PH-A", "a")
    rows.execution("r1", "a", 10, 1)
    rows.execution("r1", "a", 2, 2, kind="gate")
    rows.shape("r2", "PH-A", "a")
    rows.execution("r2", "a", 20, 3)
    rows.run("r3", "PH-A")
    rows.execution("r3", "a", 30, 4)
    rows.shape("o1", "PH-OTHER", "a")
    rows.execution("o1", "a", 999, 5)
    rows.execution("now", "a", 500, 6)
    # Workstreams of template "tpl" elsewhere: 5 and 7 seconds.
    rows.shape("o1", "PH-OTHER", "x", template="tpl")
    rows.execution("o1", "x", 5, 7)
    rows.shape("o2", "PH-OTHER", "y", template="tpl")
    rows.execution("o2", "y", 7, 8)
    # Task kind "docs" elsewhere: 3 seconds (its gate run adds 1).
    rows.execution("o3", "z", 3, 9, task_kind="docs")
    rows.execution("o3", "z", 1, 10, kind="gate")

    wanted = [
        ws("a", template="tpl", task_kind="docs"),  # its own history wins
        ws("b", template="tpl", task_kind="docs"),  # then the template
        ws("c", task_kind="docs"),  # then the task kind
        ws("d", task_kind="never-seen"),
    ]
    with rows.store.session() as session:
        found = learned_durations(session, "PH-A", wanted, exclude_run="now")
    assert found["a"] == (20.0, "median of a in 3 runs of phase PH-A")  # 12, 20, 30
    assert found["b"] == (6.0, "median of template tpl in 2 runs")
    assert found["c"] == (4.0, "median of task kind docs in 1 run")
    assert "d" not in found


def test_the_median_of_the_most_recent_ten_runs(rows) -> None:
    for n in range(1, 13):  # 12 runs, the later the longer
        rows.shape(f"r{n:02}", "PH", "a")
        rows.execution(f"r{n:02}", "a", float(n), n)
    with rows.store.session() as session:
        ((seconds, basis),) = learned_durations(session, "PH", [ws("a")]).values()
    assert seconds == 7.5  # median of 3..12
    assert basis == "median of a in 10 runs of phase PH"


def test_learn_skips_estimated_workstreams(rows) -> None:
    rows.shape("r1", "PH", "a")
    rows.execution("r1", "a", 4, 1)
    rows.shape("r1", "PH", "b")
    rows.execution("r1", "b", 4, 1)
    spec = PhaseSpec(phase_id="PH", workstreams=[ws("a"), ws("b", estimated_duration_s=9)])
    with rows.store.session() as session:
        learned = learn(session, spec)
    assert learned.durations == {"a": 4.0}


def test_kill_switch_mode_off_and_no_database_give_nothing(
    tmp_path: Path, rows, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("UET_DATABASE_URL", raising=False)
    rows.shape("r1", "PH", "a")
    rows.execution("r1", "a", 4, 1)
    spec = PhaseSpec(phase_id="PH", workstreams=[ws("a")])
    assert read_learned(tmp_path, spec).durations == {"a": 4.0}  # tmp_path/uet.db is `rows`

    monkeypatch.setenv("UET_DISABLE_LEARNING", "1")
    assert read_learned(tmp_path, spec).durations == {}
    monkeypatch.delenv("UET_DISABLE_LEARNING")

    off = spec.model_copy(update={"learning": spec.learning.model_copy(update={"mode": "off"})})
    assert read_learned(tmp_path, off).durations == {}

    empty = tmp_path / "nothing-here"
    assert read_learned(empty, spec).durations == {}
    assert not (empty / "uet.db").exists(), "reading creates no database"

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "uet.db").write_text("this is not a database")
    with caplog.at_level(logging.WARNING, logger="uet.telemetry"):
        assert read_learned(broken, spec).durations == {}
    assert "no learned figures" in caplog.text


# -- the plan with learned durations -----------------------------------------------------------


def test_learned_durations_move_the_critical_path() -> None:
    spec = PhaseSpec(
        phase_id="PH",
        max_parallel=2,
        workstreams=[
            ws("top"),
            ws("left", dependencies=["top"]),
            ws("right", dependencies=["top"]),
            ws("bottom", dependencies=["left", "right"], estimated_duration_s=1),
        ],
    )
    plain = plan_phase(spec)
    assert plain.critical_path == ["top", "left", "bottom"]  # equal weights: the smaller id
    assert plain.learned_durations == {}

    learned = plan_phase(spec, {"right": 5.0, "left": 2.0, "bottom": 99.0})
    assert learned.critical_path == ["top", "right", "bottom"]
    # "top" has neither an estimate nor history: it weighs the median of the known (2 s).
    assert learned.critical_path_s == 2 + 5 + 1
    assert learned.remaining["right"] > learned.remaining["left"]  # eager starts it first
    # The spec's estimate wins over a learned figure; only what was used is reported.
    assert learned.learned_durations == {"right": 5.0, "left": 2.0}
    assert learned.total_work_s == 2 + 2 + 5 + 1


# -- learned tool order ------------------------------------------------------------------------


def test_order_by_success_rate_then_cost_and_too_few_runs_keep_their_place() -> None:
    records = {
        "claude": ToolRecord(runs=25, successes=23, avg_cost_usd=0.4),
        "codex": ToolRecord(runs=10, successes=6, avg_cost_usd=0.1),
        "aider": ToolRecord(runs=2, successes=0, avg_cost_usd=None),
        "gemini": ToolRecord(runs=25, successes=23, avg_cost_usd=0.2),
    }
    order, why = order_tools(["codex", "aider", "claude", "gemini"], records)
    # aider keeps place 2; the ranked three fill places 1, 3, 4 best first, cheaper on a tie.
    assert order == ["gemini", "aider", "claude", "codex"]
    assert why == (
        "learned order: gemini 92% (n=25, $0.20 avg), aider (n=2: kept its place), "
        "claude 92% (n=25, $0.40 avg), codex 60% (n=10, $0.10 avg)"
    )
    assert order_tools(["claude", "codex"], {}) == (["claude", "codex"], "")


def test_tool_order_from_the_database(rows) -> None:
    for n in range(4):  # claude: 1 of 4 docs tasks; codex: 3 of 3; aider: once
        rows.execution(
            "r",
            f"c{n}",
            1,
            n,
            tool="claude",
            task_kind="docs",
            outcome="changed" if n == 0 else ("timeout" if n == 1 else "failed"),
        )
    for n in range(3):
        rows.execution("r", f"x{n}", 1, n, tool="codex", task_kind="docs", outcome="no_change")
    rows.execution("r", "a0", 1, 0, tool="aider", task_kind="docs", outcome="changed")
    for n in range(5):  # another task kind does not count
        rows.execution("r", f"o{n}", 1, n, tool="claude", task_kind="tests")
    with rows.store.session() as session:
        order, why = learned_tool_order(session, ["claude", "codex", "aider"], "docs")
        assert order == ["codex", "claude", "aider"]
        assert why.startswith("learned order: codex 100% (n=3), claude 25% (n=4)")
        spec = PhaseSpec.model_validate(
            {
                "phase_id": "PH",
                "router": {
                    "learned": True,
                    "rules": [{"kind": "docs", "tools": ["claude", "codex"]}],
                },
                "workstreams": [
                    {
                        "workstream_id": "d",
                        "task_kind": "docs",
                        "estimated_duration_s": 1,
                        "execution_request": {"tool_id": "auto", "prompt": "x"},
                    },
                    {
                        "workstream_id": "s",
                        "estimated_duration_s": 1,
                        "execution_request": {"command": "true"},
                    },
                ],
            }
        )
        learned = learn(session, spec)
    assert learned.tool_order == {"d": ["codex", "claude"]}
    assert learned.tool_order_reason["d"] == (
        "learned order: codex 100% (n=3), claude 25% (n=4); router rule 1"
    )


# -- end to end --------------------------------------------------------------------------------


def ledger(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_a_second_run_plans_and_routes_with_what_the_first_learned(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    fake_tools: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("UET_DATABASE_URL", raising=False)
    monkeypatch.delenv("UET_DISABLE_LEARNING", raising=False)
    # Run 1, one workstream after another: claude fails each docs task, codex takes over.
    script = tmp_path / "scenarios"
    script.write_text("api_error\nsuccess\n" * 3)
    monkeypatch.setenv("UET_FAKE_SCENARIO_FILE", str(script))
    auto = {"tool_id": "auto"}
    spec = phase(
        phase_id="PH-LEARNED",
        router={
            "learned": True,
            "default": ["claude", "codex"],
            "circuit_breaker": {"failure_threshold": 10},
        },
        defaults={"resilience_policy": {"max_attempts": 1, "max_fix_attempts": 0}},
        workstreams=[
            {
                "workstream_id": f"ws-{n}",
                "task_kind": "docs",
                "dependencies": [f"ws-{n - 1}"] if n > 1 else [],
                "execution_request": {**auto, "prompt": f"WRITE docs/{n}.md: {n}"},
            }
            for n in (1, 2, 3)
        ],
    )
    first = await run_phase(client, settings, run_input(spec, make_repo({"a": "a\n"}, "one")))
    assert first.status == PhaseState.COMPLETED, first.reason
    plan = await plan_of(client, first.workflow_id)
    assert plan.learned_durations == {} and plan.tool_order == {}  # nothing to learn from yet
    assert {e["workstream_id"]: e["tool_id"] for e in ledger(first)} == dict.fromkeys(
        ["ws-1", "ws-2", "ws-3"], "codex"
    )

    # Run 2: its plan carries run 1's durations, and codex goes first.
    fake_tools.unlink()
    second = await run_phase(client, settings, run_input(spec, make_repo({"a": "a\n"}, "two")))
    assert second.status == PhaseState.COMPLETED, second.reason
    plan = await plan_of(client, second.workflow_id)
    assert set(plan.learned_durations) == {"ws-1", "ws-2", "ws-3"}
    assert all(seconds > 0 for seconds in plan.learned_durations.values())
    assert plan.learned_from["ws-1"] == "median of ws-1 in 1 run of phase PH-LEARNED"
    assert plan.critical_path_s == pytest.approx(sum(plan.learned_durations.values()), abs=0.01)
    expected = "learned order: codex 100% (n=3, $0.01 avg), claude 0% (n=3); router default"
    assert plan.tool_order == {w: ["codex", "claude"] for w in ("ws-1", "ws-2", "ws-3")}
    assert plan.tool_order_reason["ws-2"] == expected
    tools = [line.split(" ", 1)[0] for line in fake_tools.read_text().splitlines()]
    assert tools == ["codex", "codex", "codex"]  # claude was never asked
    entries = {e["workstream_id"]: e for e in ledger(second)}
    assert entries["ws-1"]["tool_id"] == "codex"
    assert entries["ws-1"]["tool_reason"] == expected

    replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
    await replayer.replay_workflow(
        await client.get_workflow_handle(second.workflow_id).fetch_history()
    )
