"""Eager scheduling: a workstream starts as soon as its dependencies are integrated."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out, phase, run_input, run_phase, show
from temporalio.client import Client
from temporalio.worker import Replayer, Worker
from test_eager_order import ten_independent

from activities.lib.planning import plan_phase
from activities.workspace import WorkspaceActivities
from runtime.converter import DATA_CONVERTER
from runtime.plugin import WORKFLOWS, build_worker
from runtime.settings import Settings
from schemas.run import PhaseState
from schemas.workspace import IntegrateResult


def events(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def steps_merged(client: Client, workflow_id: str) -> list[list[str]]:
    """What each integration step merged, in its order (from the local activities' results)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    steps = []
    for e in history.events:
        details = e.marker_recorded_event_attributes.details
        data = details.get("data") if e.HasField("marker_recorded_event_attributes") else None
        if data is not None and b'"integrate"' in data.payloads[0].data:
            [result] = DATA_CONVERTER.payload_converter.from_payloads(
                details["result"].payloads, [IntegrateResult]
            )
            steps.append([o.workstream_id for o in result.outcomes if o.merged])
    return steps


def first(evs: list[dict], kind: str, ws: str) -> int:
    return next(i for i, e in enumerate(evs) if e["type"] == kind and e["workstream_id"] == ws)


SKEWED = [
    {"workstream_id": "slow", "execution_request": {"command": "sleep 2; echo slow > slow.txt"}},
    {"workstream_id": "fast", "execution_request": {"command": "echo fast > fast.txt"}},
    {
        "workstream_id": "after-fast",
        "dependencies": ["fast"],
        "execution_request": {"command": "cat fast.txt > after-fast.txt"},
    },
    {
        "workstream_id": "last",
        "dependencies": ["slow", "after-fast"],
        "execution_request": {"command": "cat slow.txt after-fast.txt > last.txt"},
    },
]


async def test_dependents_start_before_the_wave_ends_and_the_tree_equals_waves(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    trees = {}
    for mode in ("waves", "eager"):
        repo: Path = make_repo({"base.txt": "b\n"}, name=f"repo-{mode}")
        record = await run_phase(
            client, settings, run_input(phase(scheduling=mode, workstreams=SKEWED), repo)
        )
        assert record.status == PhaseState.COMPLETED, record.reason
        head = record.head_sha or ""
        assert show(repo, head, "last.txt") == "slow\nfast"
        trees[mode] = git_out(repo, "rev-parse", f"{head}^{{tree}}")
        evs = events(record)
        started_after_fast = first(evs, "WORKSTREAM_STARTED", "after-fast")
        slow_done = first(evs, "TOOL_FINISHED", "slow")
        if mode == "eager":
            # It started on fast's integrated work while slow was still running ...
            assert started_after_fast < slow_done
            # ... and every workstream is one integration step, each with its checkpoint.
            assert record.current_wave == 4
            tags = git_out(repo, "tag", "--list", f"uet/{record.run_id}/*").split()
            assert len(tags) == 4
        else:
            assert started_after_fast > slow_done  # waited for its wave
        replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
        await replayer.replay_workflow(
            await client.get_workflow_handle(record.workflow_id).fetch_history()
        )
    assert trees["eager"] == trees["waves"]


async def test_scarce_slots_go_to_the_longest_remaining_path(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"base.txt": "b\n"})
    spec = phase(
        scheduling="eager",
        max_parallel=1,
        prepare_ahead=2,
        workstreams=[
            {
                "workstream_id": "a-short",
                "execution_request": {"command": "date +%s%N > a"},
                "estimated_duration_s": 1,
            },
            {
                "workstream_id": "b-long",
                "execution_request": {"command": "date +%s%N > b"},
                "estimated_duration_s": 1,
            },
            {
                "workstream_id": "b-next",
                "dependencies": ["b-long"],
                "execution_request": {"command": "date +%s%N > c"},
                "estimated_duration_s": 5,
            },
            {
                "workstream_id": "c-mid",
                "execution_request": {"command": "date +%s%N > d"},
                "estimated_duration_s": 3,
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    # When each tool ran (its own clock, in the file it wrote): the order the slot went in.
    # The two that waited were started ahead of it (prepare_ahead), their checkouts ready.
    ran = {ws: int(show(repo, record.head_sha or "", f)) for ws, f in FILES.items()}
    order = sorted(ran, key=ran.__getitem__)
    # b-long leads a 6 s path, c-mid 3 s, a-short 1 s. b-long's merge readies b-next, so its
    # slot is kept through the merge ("keep-slots-for-dependents"), and b-next (5 s) beats the
    # two that waited (and were prepared); then c-mid, then a-short.
    assert order == ["b-long", "b-next", "c-mid", "a-short"]
    started = [e["workstream_id"] for e in events(record) if e["type"] == "WORKSTREAM_STARTED"]
    assert set(started[:3]) == {"b-long", "c-mid", "a-short"}, started  # two ahead of the slot


FILES = {"a-short": "a", "b-long": "b", "b-next": "c", "c-mid": "d"}


async def test_ready_workstreams_start_in_the_plans_searched_order(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    """Ten independent workstreams, four slots: the plan's order packs them better than
    longest-first, and the first four children started are the first four of that order."""
    durations = ten_independent()
    spec = phase(
        scheduling="eager",
        max_parallel=4,
        workstreams=[
            {
                "workstream_id": ws,
                "estimated_duration_s": seconds,
                "execution_request": {"command": f"echo {ws} > {ws}.txt"},
            }
            for ws, seconds in durations.items()
        ],
    )
    order = plan_phase(spec).order
    longest_first = sorted(durations, key=lambda w: (-durations[w], w))
    assert set(order[:4]) != set(longest_first[:4])  # else this test shows nothing
    record = await run_phase(client, settings, run_input(spec, make_repo({"a.txt": "a\n"})))
    assert record.status == PhaseState.COMPLETED
    history = await client.get_workflow_handle(record.workflow_id).fetch_history()
    started = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id.split("/")[-1]
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert set(started[:4]) == set(order[:4])
    # Each step's integration ran inside the phase's workflow task, as a local activity.
    remote = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "integrate" not in remote  # each step's merge ran here
    steps = await steps_merged(client, record.workflow_id)
    # Those finished by the time a merge runs go in together ("integrate-finished-together"),
    # in workstream-id order: as many steps as merges, every workstream in one of them.
    assert record.current_wave == len(steps) and all(s == sorted(s) for s in steps), steps
    assert sorted(w for s in steps for w in s) == sorted(durations)


async def test_workstreams_that_finish_during_a_merge_are_integrated_together_as_one_step(
    client: Client, settings: Settings, make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first merge is held for 4 s (its local activity sleeps first); the two that finish
    meanwhile are merged in one step after it, in workstream-id order, with one checkpoint."""
    real = WorkspaceActivities.integrate
    calls = []

    @functools.wraps(real)
    async def held_first(self: WorkspaceActivities, input: Any) -> Any:
        calls.append([m.workstream_id for m in input.merges])
        if len(calls) == 1:
            await asyncio.sleep(4)
        return await real(self, input)

    monkeypatch.setattr(WorkspaceActivities, "integrate", held_first)
    spec = phase(
        scheduling="eager",
        max_parallel=3,
        workstreams=[
            {"workstream_id": "a-quick", "execution_request": {"command": "echo a > a.txt"}},
            {"workstream_id": "c", "execution_request": {"command": "sleep 1; echo c > c.txt"}},
            {"workstream_id": "b", "execution_request": {"command": "sleep 1; echo b > b.txt"}},
        ],
    )
    repo: Path = make_repo({"base.txt": "b\n"})
    async with build_worker(client, settings):
        record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert calls == [["a-quick"], ["b", "c"]]
    assert await steps_merged(client, record.workflow_id) == [["a-quick"], ["b", "c"]]
    assert record.current_wave == 2
    assert git_out(repo, "ls-tree", "--name-only", record.head_sha or "").split() == [
        "a.txt",
        "b.txt",
        "base.txt",
        "c.txt",
    ]
    # One checkpoint per step: the tags of steps 1 and 2, no third.
    tags = git_out(repo, "tag", "--list", f"uet/{record.run_id}/wave-*").split()
    assert len(tags) == 2, tags


async def test_a_freed_slot_starts_its_next_workstream_before_the_merge(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    """The merge is a local activity, and a workflow task that runs one sends nothing until it
    is done: the next child's start goes out first, and the merge runs in the next task."""
    spec = phase(
        scheduling="eager",
        max_parallel=1,
        workstreams=[
            {"workstream_id": ws, "execution_request": {"command": f"echo {ws} > {ws}.txt"}}
            for ws in ("a", "b", "c")
        ],
    )
    repo: Path = make_repo({"base.txt": "b\n"})
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert git_out(repo, "ls-tree", "--name-only", record.head_sha or "").split() == [
        "a.txt",
        "b.txt",
        "base.txt",
        "c.txt",
    ]
    history = await client.get_workflow_handle(record.workflow_id).fetch_history()
    kinds = []
    for e in history.events:
        if e.HasField("child_workflow_execution_completed_event_attributes"):
            kinds.append("done")
        elif e.HasField("start_child_workflow_execution_initiated_event_attributes"):
            kinds.append("start")
        elif e.HasField("workflow_task_completed_event_attributes") and kinds[-1:] != ["|"]:
            kinds.append("|")  # the commands after it are the next workflow task's
        elif e.HasField("marker_recorded_event_attributes"):
            data = e.marker_recorded_event_attributes.details.get("data")
            if data is not None and b'"integrate"' in data.payloads[0].data:
                kinds.append("merge")
    tasks = " ".join(kinds).split("|")  # what each workflow task's commands brought
    assert kinds.count("start") == kinds.count("merge") == 3, kinds
    # a runs; the task that hears it is done starts b, and only a later one merges a.
    assert not [t for t in tasks if "start" in t and "merge" in t], tasks
