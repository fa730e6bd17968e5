"""Workstreams started ahead of their slot (``prepare_ahead``): the checkout is made ready
while every slot is busy, and the tool starts when a slot frees — never more tools at once
than ``max_parallel``."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from helpers import phase, record_of, run_input, run_phase, show, start_phase
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker
from test_eager import events

from runtime.converter import DATA_CONVERTER
from runtime.settings import Settings
from schemas.run import PhaseState, SlotGrant
from schemas.saga import RollbackRequest
from workflows.phase import PhaseWorkflow
from workflows.runner import AHEAD_NOTE


def timed(ws: str, seconds: float) -> dict[str, object]:
    """A workstream whose tool writes when it started and ended (its own clock, ns)."""
    command = f"date +%s%N > {ws}.start; sleep {seconds}; date +%s%N > {ws}.end"
    return {"workstream_id": ws, "execution_request": {"command": command}}


def at(event: HistoryEvent) -> int:
    return event.event_time.ToNanoseconds()


async def children(client: Client, workflow_id: str) -> dict[str, list[HistoryEvent]]:
    """Each workstream's child history, by workstream id."""
    phase_history = await client.get_workflow_handle(workflow_id).fetch_history()
    found = {}
    for event in phase_history.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            run = event.child_workflow_execution_started_event_attributes.workflow_execution
            child = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            found[run.workflow_id.split("/ws/")[1].split("/")[0]] = list(
                (await child.fetch_history()).events
            )
    return found


def first(events: list[HistoryEvent], kind: EventType.ValueType) -> HistoryEvent:
    return next(e for e in events if e.event_type == kind)


async def grants(client: Client, workflow_id: str) -> list[bool]:
    """The answers of the phase's tool_slot updates, in its history's order."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    answers = []
    for event in history.events:
        completed = event.workflow_execution_update_completed_event_attributes
        if event.HasField("workflow_execution_update_completed_event_attributes") and (
            completed.meta.update_id.startswith("slot/")
        ):
            outcome = completed.outcome
            [grant] = DATA_CONVERTER.payload_converter.from_payloads(
                outcome.success.payloads, [SlotGrant]
            )
            answers.append(grant.granted)
    return answers


async def test_the_next_checkout_is_ready_before_a_slot_frees_and_tools_never_overlap(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    workstreams = [timed("a", 1.0), timed("b", 1.0), timed("c", 1.0)]
    for ahead in (1, 0):
        repo: Path = make_repo({"base.txt": "b\n"}, name=f"repo-{ahead}")
        spec = phase(max_parallel=1, prepare_ahead=ahead, workstreams=workstreams)
        record = await run_phase(client, settings, run_input(spec, repo))
        assert record.status == PhaseState.COMPLETED, record.reason
        head = record.head_sha or ""
        ran = sorted(
            (int(show(repo, head, f"{ws}.start")), int(show(repo, head, f"{ws}.end")), ws)
            for ws in "abc"
        )
        # One slot: each tool starts after the one before it ended.
        for (_, end, before), (start, _, after) in itertools.pairwise(ran):
            assert start > end, f"{after}'s tool started before {before}'s ended"
        histories = await children(client, record.workflow_id)
        order = [ws for _, _, ws in ran]
        tool_started = {
            ws: at(first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED))
            for ws, events in histories.items()
        }
        tool_done = {
            ws: at(first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED))
            for ws, events in histories.items()
        }
        # The tool's time as telemetry and the report have it: not the wait for the slot
        # (b and c each waited a second or more, behind a tool of one second).
        finished = [e["message"] for e in events(record) if e["type"] == "TOOL_FINISHED"]
        took = [float(m.split(" finished in ")[1].split("s")[0]) for m in finished]
        assert len(took) == 3 and max(took) < 1.8, finished
        if ahead:
            # The next one's tool activity (its checkout first) began while the slot's
            # holder still ran its tool; each waited for its slot in an update, granted.
            for before, after in itertools.pairwise(order):
                assert tool_started[after] < tool_done[before], (before, after)
            assert await grants(client, record.workflow_id) == [True, True]
        else:
            for before, after in itertools.pairwise(order):
                assert tool_started[after] > at(histories[before][-1]), (before, after)
            assert await grants(client, record.workflow_id) == []


async def test_a_workstream_waiting_ahead_is_given_up_when_the_phase_rolls_back(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"base.txt": "b\n"})
    spec = phase(
        max_parallel=1,
        prepare_ahead=1,
        scheduling="eager",
        workstreams=[
            {"workstream_id": "a-runs", "execution_request": {"command": "sleep 3"}},
            {"workstream_id": "b-waits", "execution_request": {"command": "echo b > b.txt"}},
        ],
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    # b-waits, started ahead, asks for its slot (its checkout ready) while a-runs runs.
    async with asyncio.timeout(60):
        while not any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            for e in (await handle.fetch_history()).events
        ):
            await asyncio.sleep(0.1)
    status = await handle.query(PhaseWorkflow.status)  # what `uet status` shows meanwhile
    assert status.workstreams["b-waits"].waiting == AHEAD_NOTE
    assert status.workstreams["a-runs"].waiting is None
    await handle.execute_update(
        PhaseWorkflow.rollback, RollbackRequest(reason="changed my mind", requested_by="t")
    )
    record = await record_of(handle)
    assert record.status == PhaseState.ROLLED_BACK, record.reason
    # The rollback is acted on when a-runs ends; its slot is not handed to b-waits then.
    ran = [e["workstream_id"] for e in events(record) if e["type"] == "TOOL_FINISHED"]
    assert ran == ["a-runs"]
    waited = (await children(client, record.workflow_id))["b-waits"]
    # Its tool activity began (the checkout) and ended without running the tool.
    assert any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED for e in waited)
    assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in waited)
    assert await grants(client, record.workflow_id) == [False]
