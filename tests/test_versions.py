"""A run started with this code records one change marker, for the generation, and takes every
folded change (workflows/versions.py); its workstreams' children inherit the generation and
record none; runs recorded before replay as they were (tests/test_replay.py)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from helpers import phase, run_input, run_phase, show
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

import workflows
from activities.lib.artifacts.local import LocalArtifactStore
from runtime.settings import Settings
from schemas.refs import tool_queue
from schemas.run import PhaseState, WorkstreamInput
from workflows.versions import FOLDED, GENERATION, INHERITED
from workflows.workstream import WorkstreamWorkflow


def _changes(events: Any) -> list[str]:
    found = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                found.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


async def test_a_new_run_records_the_generation_once_and_takes_the_folded_changes(
    client: Client, settings: Settings, worker: Worker, make_repo: Any
) -> None:
    spec = phase(
        workstreams=[
            {"workstream_id": "a", "execution_request": {"command": "echo a > a.txt"}},
            {"workstream_id": "b", "execution_request": {"command": "echo b > b.txt"}},
            {
                "workstream_id": "p",
                "execution_request": {"tool_id": "patch", "patch_file": "p.diff"},
            },
        ]
    )
    repo = make_repo({"README.md": "hi\n"})
    input = run_input(spec, repo)
    patch = b"--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-hi\n+hello\n"
    input.patch_files = {"p": LocalArtifactStore(settings.home / "artifacts").put_bytes(patch)}
    record = await run_phase(client, settings, input)
    assert record.status == PhaseState.COMPLETED, record.reason
    runs = [
        w async for w in client.list_workflows(f'WorkflowId STARTS_WITH "{record.workflow_id}"')
    ]
    assert len(runs) == 4  # the phase and its three workstreams
    tasks = {}
    for run in runs:
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        upserts = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        ]
        if "/ws/" in run.id:
            # The phase's generation, handed down: no marker, no upsert of the child's own
            # ("child-inherits-generation").
            assert (await run.memo()).get(INHERITED) == GENERATION, run.id
            assert _changes(history.events) == [] and upserts == [], run.id
        else:
            assert _changes(history.events) == [GENERATION], run.id
        scheduled = [
            e.activity_task_scheduled_event_attributes
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        # Folded changes taken: validate and commit run as local activities
        # ("validate-patch-locally", "commit-patch-locally"), a tool on its own queue
        # ("tool-queues"), a ready patch here ("ready-patch-applied-locally") in one step.
        names = {a.activity_type.name for a in scheduled}
        assert not names & {"validate_patch", "commit_patch"}, run.id
        local = [
            json.loads(m.details["data"].payloads[0].data)["activity_type"]
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and (m := e.marker_recorded_event_attributes).marker_name == "core_local_activity"
        ]
        if run.id.endswith("/ws/p"):
            assert "run_tool" not in names
            # One local activity from file to commit ("ready-patch-in-one-step").
            assert local == ["take_ready_patch"], local
        elif "/ws/" in run.id:
            # The tool on its own queue ("tool-queues") validates and commits its patch
            # ("tool-patch-in-its-step"): nothing is left for the workstream's worker.
            assert [(a.activity_type.name, a.task_queue.name) for a in scheduled] == [
                ("take_tool_patch", tool_queue(settings.task_queue, "shell"))
            ], run.id
            assert local == [], local
        else:
            # Opened while it is planned, both asked in one task ("open-while-planning"); a
            # small run's report written by a local activity ("close-run-locally").
            first, second = scheduled[:2]
            assert [first.activity_type.name, second.activity_type.name] == [
                "plan_phase",
                "open_run",
            ]
            assert first.workflow_task_completed_event_id == (
                second.workflow_task_completed_event_id
            )
            assert "close_run" not in names and local[-1] == "close_run", (names, local)
        tasks[run.id.rsplit("/", 1)[-1]] = sum(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events
        )
    # The ready patch is applied, validated and committed in the workstream's first task.
    assert tasks["p"] == 1 and tasks["a"] == 2, tasks
    assert show(repo, record.integration_branch, "README.md") == "hello"


def test_every_folded_change_is_one_the_code_asks_for() -> None:
    source = "\n".join(p.read_text() for p in Path(workflows.__file__).parent.glob("*.py"))
    asked = set(re.findall(r'^[A-Z_]+ = "([a-z0-9-]+)"$', source, re.M))
    assert asked >= FOLDED


async def test_a_child_handed_a_generation_this_worker_does_not_know_waits_for_one_that_does(
    client: Client, settings: Settings, worker: Worker
) -> None:
    # A newer phase's child picked up by an older worker: its workflow task fails (and is
    # retried, for a worker that knows the generation), it never guesses.
    spec = phase(workstreams=[{"workstream_id": "a", "execution_request": {"command": "true"}}])
    input = WorkstreamInput(
        run_id="01J00000000000000000000000",
        repo_path="/nonexistent",
        workstream=spec.workstreams[0],
        base_sha="0" * 40,
        wave=1,
        branch_ref="refs/heads/uet/x/a",
    )
    handle = await client.start_workflow(
        WorkstreamWorkflow.run,
        input,
        id=f"ws-unknown-generation-{settings.task_queue}",
        task_queue=settings.task_queue,
        memo={INHERITED: "uet-generation-999"},
    )
    try:
        failure = None
        for _ in range(100):
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failure = event.workflow_task_failed_event_attributes.failure.message
            if failure is not None:
                break
            await asyncio.sleep(0.1)
        assert failure is not None and "does not know uet-generation-999" in failure, failure
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    finally:
        await handle.terminate()
