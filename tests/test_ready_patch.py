"""A ready patch goes from file to commit in one local activity (activities/ready_patch.py),
a tool's patch from the tool to its commit in the tool's own activity on its queue, and the
workstream reads each step's result as it reads that step on its own: a patch its
validation refuses is quarantined and never committed, a commit that fails for good fails the
workstream with the patch ``apply_failed``, a transient failure retries the whole step, and a
valid patch ends on the integration branch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out, phase, run_input, run_phase, show
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.lib.artifacts.local import LocalArtifactStore
from activities.workspace import WorkspaceActivities
from runtime.settings import Settings
from schemas.ledger import PatchState
from schemas.refs import tool_queue
from schemas.run import PhaseState, RunRecord, WorkstreamState
from schemas.workspace import CommitPatchInput, CommitPatchResult

INSIDE = b"--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-app\n+app 2\n"
OUTSIDE = b"--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-hi\n+hello\n"


def ready(ws_id: str) -> dict[str, Any]:
    return {
        "workstream_id": ws_id,
        "constraints": {"file_scope": {"allowed_paths": ["src/**"]}},
        "resilience_policy": {"max_fix_attempts": 0},
        "execution_request": {"tool_id": "patch", "patch_file": f"{ws_id}.diff"},
    }


async def run(
    client: Client, settings: Settings, repo: Path, patches: dict[str, bytes]
) -> RunRecord:
    input = run_input(phase(workstreams=[ready(ws) for ws in patches]), repo, no_review=True)
    store = LocalArtifactStore(settings.home / "artifacts")
    input.patch_files = {ws: store.put_bytes(data) for ws, data in patches.items()}
    return await run_phase(client, settings, input)


def ledger(record: RunRecord) -> dict[str, dict[str, Any]]:
    lines = (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
    return {entry["workstream_id"]: entry for entry in map(json.loads, lines)}


async def local_steps(client: Client, record: RunRecord, ws_id: str) -> list[str]:
    history = await client.get_workflow_handle(f"{record.workflow_id}/ws/{ws_id}").fetch_history()
    return [
        json.loads(m.details["data"].payloads[0].data)["activity_type"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and (m := e.marker_recorded_event_attributes).marker_name == "core_local_activity"
    ]


async def test_a_refused_patch_is_quarantined_and_never_committed(
    client: Client, settings: Settings, worker: Worker, make_repo: Any
) -> None:
    repo = make_repo({"README.md": "hi\n", "src/app.py": "app\n"})
    record = await run(client, settings, repo, {"good": INSIDE, "bad": OUTSIDE})
    assert record.status == PhaseState.FAILED
    assert record.workstreams["good"].status == WorkstreamState.COMPLETED
    assert record.workstreams["bad"].status == WorkstreamState.FAILED
    assert "README.md" in (record.workstreams["bad"].reason or "")
    entries = ledger(record)
    assert entries["bad"]["state"] == PatchState.QUARANTINED
    assert entries["bad"]["commit"] is None and entries["good"]["state"] == PatchState.COMMITTED
    assert git_out(repo, "tag", "--list", f"*{entries['bad']['patch_id']}*") == ""
    assert show(repo, record.integration_branch, "src/app.py") == "app 2"
    assert show(repo, record.integration_branch, "README.md") == "hi"
    for ws_id in ("good", "bad"):  # one step each, whatever it ended with
        assert await local_steps(client, record, ws_id) == ["take_ready_patch"], ws_id


@pytest.mark.parametrize("kind", ["ready", "tool"])
async def test_a_commit_that_fails_for_good_fails_the_workstream_apply_failed(
    kind: str,
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(self: WorkspaceActivities, input: CommitPatchInput) -> CommitPatchResult:
        raise ApplicationError(
            f"{input.branch_ref} is locked", type="BranchLocked", non_retryable=True
        )

    monkeypatch.setattr(WorkspaceActivities, "commit_patch", refused)
    repo = make_repo({"README.md": "hi\n", "src/app.py": "app\n"})
    record = await good(kind, client, settings, repo)
    assert record.workstreams["good"].status == WorkstreamState.FAILED
    assert "is locked" in (record.workstreams["good"].reason or "")
    entry = ledger(record)["good"]
    assert entry["state"] == PatchState.APPLY_FAILED and entry["commit"] is None
    assert [c["state"] for c in entry["state_history"]] == [
        "created",
        "validated",
        "queued",
        "apply_failed",
    ]


@pytest.mark.parametrize("kind", ["ready", "tool"])
async def test_a_transient_commit_failure_retries_the_step_and_commits_once(
    kind: str,
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    commit_patch = WorkspaceActivities.commit_patch

    async def flaky(self: WorkspaceActivities, input: CommitPatchInput) -> CommitPatchResult:
        calls.append(input.patch_id)
        if len(calls) == 1:
            raise ApplicationError("the disk hiccuped")  # retryable
        return await commit_patch(self, input)

    monkeypatch.setattr(WorkspaceActivities, "commit_patch", flaky)
    repo = make_repo({"README.md": "hi\n", "src/app.py": "app\n"})
    record = await good(kind, client, settings, repo)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert len(calls) == 2 and len(set(calls)) == 1  # the same patch id both times
    entry = ledger(record)["good"]
    assert entry["state"] == PatchState.COMMITTED and entry["commit"]
    assert git_out(repo, "rev-parse", f"{entry['commit']}^") == record.base_sha
    assert show(repo, record.integration_branch, "src/app.py") == "app 2"


# --- a tool's patch, in the tool's own activity on its queue ("tool-patch-in-its-step") ------

EDITS = {"good": "printf 'app 2\\n' > src/app.py", "bad": "printf 'hello\\n' > README.md"}


async def run_tools(client: Client, settings: Settings, repo: Path, ws_ids: list[str]) -> RunRecord:
    workstreams = [{**ready(ws), "execution_request": {"command": EDITS[ws]}} for ws in ws_ids]
    return await run_phase(
        client, settings, run_input(phase(workstreams=workstreams), repo, no_review=True)
    )


async def tool_steps(client: Client, record: RunRecord, ws_id: str) -> list[tuple[str, str]]:
    """(activity type, task queue) of what the workstream scheduled, and its local ones."""
    history = await client.get_workflow_handle(f"{record.workflow_id}/ws/{ws_id}").fetch_history()
    scheduled = [
        (a.activity_type.name, a.task_queue.name)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        for a in [e.activity_task_scheduled_event_attributes]
    ]
    return scheduled + [("local", name) for name in await local_steps(client, record, ws_id)]


async def test_a_tools_refused_patch_is_quarantined_in_its_step(
    client: Client, settings: Settings, worker: Worker, make_repo: Any
) -> None:
    repo = make_repo({"README.md": "hi\n", "src/app.py": "app\n"})
    record = await run_tools(client, settings, repo, ["good", "bad"])
    assert record.status == PhaseState.FAILED
    assert record.workstreams["good"].status == WorkstreamState.COMPLETED
    assert "README.md" in (record.workstreams["bad"].reason or "")
    entries = ledger(record)
    assert entries["bad"]["state"] == PatchState.QUARANTINED and entries["bad"]["commit"] is None
    assert entries["good"]["state"] == PatchState.COMMITTED
    assert git_out(repo, "tag", "--list", f"*{entries['bad']['patch_id']}*") == ""
    assert show(repo, record.integration_branch, "src/app.py") == "app 2"
    assert show(repo, record.integration_branch, "README.md") == "hi"
    # One step on the tool's queue; after it only the refused patch's quarantine.
    step = ("take_tool_patch", tool_queue(settings.task_queue, "shell"))
    assert await tool_steps(client, record, "good") == [step]
    assert await tool_steps(client, record, "bad") == [
        step,
        ("quarantine_patch", settings.task_queue),
    ]


async def good(kind: str, client: Client, settings: Settings, repo: Path) -> RunRecord:
    """One workstream whose patch is valid: a ready patch, or a tool's."""
    if kind == "ready":
        return await run(client, settings, repo, {"good": INSIDE})
    return await run_tools(client, settings, repo, ["good"])
