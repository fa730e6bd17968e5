"""Replay safety: recorded histories of representative runs replay with the current workflow
code. A change that would break runs open today fails here, before it ships.

To change workflow code on purpose while runs are open, gate the new behaviour with
``workflow.patched("id")`` (see the README), then re-record: python tests/record_histories.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.converter import DATA_CONVERTER
from runtime.plugin import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    doc = json.loads(path.read_text())
    return WorkflowHistory.from_json(doc["workflow_id"], doc["history"])


def test_every_scenario_was_recorded() -> None:
    scenarios = {p.parent.name for p in HISTORIES}
    assert scenarios == {
        "plain",
        "fix_loop",
        "review",
        "rollback",
        "conflict",
        "continued",
        "gate_missing",
        "no_review",
        "recovery",
        "workspace",
        "caches_failed",
        "no_change",
        "tool_waits",
        "notified",
        "published",
        "eager",
        "large",
        "ready_patch",
    }
    generations = {p.stem.split("-")[0] for p in HISTORIES}
    every = {f"v{n}" for n in range(1, 20)}
    assert every <= generations, "each generation of workflow code keeps its histories"
    newest = {p.parent.name for p in HISTORIES if p.stem.startswith("v19-")}
    assert newest == scenarios, "the newest generation records every scenario"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(load(path))


async def test_an_incompatible_change_fails_replay() -> None:
    from incompatible_phase import PlansTwice

    phase_history = next(p for p in HISTORIES if p.parent.name == "plain" and p.stem == "v1-00")
    replayer = Replayer(workflows=[PlansTwice, *WORKFLOWS[1:]], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(load(phase_history), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondeterminism" in str(result.replay_failure).lower()
