"""DAG → waves, critical path and speedup bound on wide, deep and diamond graphs."""

from __future__ import annotations

import json

import pytest

from activities.lib.planning import plan_phase
from runtime.cli import main
from schemas.spec import PhaseSpec


def spec(
    edges: dict[str, list[str]],
    max_parallel: int = 4,
    scheduling: str = "waves",
    **durations: float,
) -> PhaseSpec:
    return PhaseSpec.model_validate(
        {
            "phase_id": "PH",
            "max_parallel": max_parallel,
            "scheduling": scheduling,
            "workstreams": [
                {
                    "workstream_id": ws,
                    "dependencies": deps,
                    "execution_request": {"command": "true"},
                    **({"estimated_duration_s": durations[ws]} if ws in durations else {}),
                }
                for ws, deps in edges.items()
            ],
        }
    )


def test_wide() -> None:
    plan = plan_phase(spec({f"ws-{i:02}": [] for i in range(10)}, max_parallel=4))
    assert plan.waves == [[f"ws-{i:02}" for i in range(10)]]
    assert plan.critical_path_s == 1
    assert plan.speedup_bound == 4.0  # 10 units of work on 4 slots: bound by slots


def test_deep() -> None:
    chain = {f"ws-{i}": [f"ws-{i - 1}"] if i else [] for i in range(6)}
    plan = plan_phase(spec(chain))
    assert plan.waves == [[f"ws-{i}"] for i in range(6)]
    assert plan.critical_path == [f"ws-{i}" for i in range(6)]
    assert plan.speedup_bound == 1.0


def test_diamond_with_durations() -> None:
    edges = {"top": [], "left": ["top"], "right": ["top"], "bottom": ["left", "right"]}
    plan = plan_phase(spec(edges, top=1, left=5, right=2, bottom=1))
    assert plan.waves == [["top"], ["left", "right"], ["bottom"]]
    assert plan.critical_path == ["top", "left", "bottom"]
    assert plan.critical_path_s == 7 and plan.total_work_s == 9
    assert plan.speedup_bound == pytest.approx(9 / 7, abs=1e-3)


def test_ids_are_sorted_within_a_wave_whatever_the_file_order() -> None:
    plan = plan_phase(spec({"zeta": [], "alpha": [], "mid": ["zeta"], "beta": ["alpha"]}))
    assert plan.waves == [["alpha", "zeta"], ["beta", "mid"]]


def test_plan_json_cli(tmp_path, capsys) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "phase_id: PH\nworkstreams:\n"
        "  - {workstream_id: a, execution_request: {command: x}}\n"
        "  - {workstream_id: b, dependencies: [a], execution_request: {command: x}}\n"
        "  - {workstream_id: c, execution_request: {command: x}}\n"
    )
    assert main(["plan", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["phase_id"] == "PH"
    assert data["waves"] == [["a", "c"], ["b"]]
    assert data["critical_path"] == ["a", "b"]
