"""PhaseWorkflow end to end on a real dev server and real git repositories."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from helpers import git_out, phase, run_input, run_phase, show, snapshot
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from runtime.settings import Settings
from schemas.refs import workflow_id
from schemas.run import PhaseState, WorkstreamState
from workflows.phase import PhaseWorkflow
from workflows.workstream import WorkstreamWorkflow


# A tool that appends a line to a file, and a gate that checks a line is there.
def append(path: str, line: str) -> str:
    return f"mkdir -p $(dirname {path}) && echo '{line}' >> {path}"


def has(path: str, line: str) -> str:
    return f"grep -qx '{line}' {path}"


async def test_waves_see_merged_work_of_earlier_waves(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"README.md": "demo\n"})
    before = snapshot(repo)
    spec = phase(
        max_parallel=2,
        workstreams=[
            {"workstream_id": "ws-a", "execution_request": {"command": append("a.txt", "from a")}},
            {"workstream_id": "ws-b", "execution_request": {"command": append("b.txt", "from b")}},
            {  # wave 2: must see a.txt and b.txt from wave 1
                "workstream_id": "ws-c",
                "dependencies": ["ws-a", "ws-b"],
                "execution_request": {"command": "cat a.txt b.txt > c.txt"},
                "acceptance_criteria": {
                    "gates": [
                        {"gate_id": "has-a", "command": has("c.txt", "from a")},
                        {"gate_id": "has-b", "command": has("c.txt", "from b"), "after": ["has-a"]},
                    ]
                },
            },
            {  # wave 3
                "workstream_id": "ws-d",
                "dependencies": ["ws-c"],
                "execution_request": {"command": ["sh", "-c", "wc -l < c.txt > d.txt"]},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))

    assert record.status == PhaseState.COMPLETED, record.reason
    assert record.waves == [["ws-a", "ws-b"], ["ws-c"], ["ws-d"]]
    assert {w: s.status for w, s in record.workstreams.items()} == dict.fromkeys(
        ["ws-a", "ws-b", "ws-c", "ws-d"], WorkstreamState.COMPLETED
    )
    head = record.head_sha
    assert head == git_out(repo, "rev-parse", f"uet/{record.run_id}/integration")
    assert show(repo, head, "c.txt") == "from a\nfrom b"
    assert show(repo, head, "d.txt").strip() == "2"
    # One checkpoint tag per wave, each an ancestor of the next.
    tags = [git_out(repo, "rev-parse", f"uet/{record.run_id}/wave-{n}") for n in (1, 2, 3)]
    assert tags[-1] == head
    for older, newer in itertools.pairwise(tags):
        git_out(repo, "merge-base", "--is-ancestor", older, newer)
    # Each workstream commit carries its trailers and sits on its own branch.
    for ws_id, entry in record.workstreams.items():
        assert entry.commit == git_out(repo, "rev-parse", f"uet/{record.run_id}/ws/{ws_id}")
        trailers = git_out(repo, "log", "-1", "--format=%(trailers:only,unfold)", entry.commit)
        assert f"Uet-Workstream: {ws_id}" in trailers
        assert f"Uet-Run: {record.run_id}" in trailers
    # Merges in workstream-id order within a wave.
    subjects = git_out(repo, "log", "--first-parent", "--format=%s", head).splitlines()
    assert subjects[:4] == [
        "uet: integrate ws-d (wave 3)",
        "uet: integrate ws-c (wave 2)",
        "uet: integrate ws-b (wave 1)",
        "uet: integrate ws-a (wave 1)",
    ]
    assert snapshot(repo) == before, "the user's branch, index and working tree are untouched"

    # The histories replay deterministically with the current workflow code.
    replayer = Replayer(
        workflows=[PhaseWorkflow, WorkstreamWorkflow], data_converter=client.data_converter
    )
    parent = client.get_workflow_handle(workflow_id(record.run_id))
    await replayer.replay_workflow(await parent.fetch_history())
    child = client.get_workflow_handle(f"{workflow_id(record.run_id)}/ws/ws-c")
    await replayer.replay_workflow(await child.fetch_history())


async def test_failing_gate_blocks_dependents_not_independents(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"app.py": "x = 1\n"})
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws-bad",
                "execution_request": {"command": append("bad.txt", "x")},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {
                    "gates": [
                        {
                            "gate_id": "unit",
                            "kind": "unit",
                            "command": "echo 'boom: 3 tests failed'; exit 3",
                        },
                        {"gate_id": "later", "command": "true", "after": ["unit"]},
                    ]
                },
            },
            {
                "workstream_id": "ws-child",
                "dependencies": ["ws-bad"],
                "execution_request": {"command": append("child.txt", "x")},
            },
            {
                "workstream_id": "ws-grandchild",
                "dependencies": ["ws-child"],
                "execution_request": {"command": append("grandchild.txt", "x")},
            },
            {
                "workstream_id": "ws-free",
                "execution_request": {"command": append("free.txt", "ok")},
            },
            {
                "workstream_id": "ws-free-next",
                "dependencies": ["ws-free"],
                "execution_request": {"command": has("free.txt", "ok") + " && touch next.txt"},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))

    assert record.status == PhaseState.FAILED
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {
        "ws-bad": WorkstreamState.FAILED,
        "ws-child": WorkstreamState.BLOCKED,
        "ws-grandchild": WorkstreamState.BLOCKED,
        "ws-free": WorkstreamState.COMPLETED,
        "ws-free-next": WorkstreamState.COMPLETED,
    }
    bad = record.workstreams["ws-bad"]
    assert bad.reason is not None
    assert "gate unit exited with 3" in bad.reason and "boom: 3 tests failed" in bad.reason
    assert record.workstreams["ws-child"].reason == "dependency ws-bad failed"
    assert record.workstreams["ws-grandchild"].reason == (
        "dependency ws-child is blocked by ws-bad, which failed"
    )
    head = record.head_sha
    assert head is not None
    files = git_out(repo, "ls-tree", "--name-only", head).splitlines()
    assert "free.txt" in files and "next.txt" in files
    assert "bad.txt" not in files and "child.txt" not in files
    # Blocked workstreams never ran: no child workflow was started for them.
    blocked = client.get_workflow_handle(f"{workflow_id(record.run_id)}/ws/ws-child")
    try:
        await blocked.describe()
        raise AssertionError("a blocked workstream was started")
    except Exception as exc:  # RPCError NOT_FOUND
        assert "not found" in str(exc).lower()


async def test_tool_failures_are_reported_not_retried_forever(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "missing-cmd",
                "execution_request": {"command": ["definitely-not-a-program-uet"]},
            },
            {
                "workstream_id": "missing-sh",
                "execution_request": {"command": "no-such-tool-uet --x"},
            },
            {"workstream_id": "exits-1", "execution_request": {"command": "echo nope >&2; exit 1"}},
            {
                "workstream_id": "slow",
                "execution_request": {"command": "sleep 30"},
                "resilience_policy": {"timeout_s": 1},
            },
            {"workstream_id": "no-change", "execution_request": {"command": "true"}},
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    reasons = {w: s.reason or "" for w, s in record.workstreams.items()}
    assert "command not found" in reasons["missing-cmd"]
    assert "command not found" in reasons["missing-sh"]
    assert "command exited with 1" in reasons["exits-1"] and "nope" in reasons["exits-1"]
    assert "timed out after 1s" in reasons["slow"]
    assert record.workstreams["no-change"].status == WorkstreamState.COMPLETED
    assert record.workstreams["no-change"].commit is None
    # Non-retryable errors fail on the first attempt.
    history = await client.get_workflow_handle(
        f"{workflow_id(record.run_id)}/ws/missing-cmd"
    ).fetch_history()
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [1]


async def test_patch_tool_and_phase_gate(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    from activities.lib.artifacts import LocalArtifactStore

    repo: Path = make_repo({"greet.py": "print('hello')\n"})
    diff = (
        "diff --git a/greet.py b/greet.py\n--- a/greet.py\n+++ b/greet.py\n"
        "@@ -1 +1,2 @@\n print('hello')\n+print('world')\n"
    )
    stale = diff.replace(" print('hello')", " print('goodbye')")
    store = LocalArtifactStore(settings.home / "artifacts")
    spec = phase(
        gates=[{"gate_id": "runs", "command": "python3 greet.py | grep -q world"}],
        workstreams=[
            {
                "workstream_id": "ws-p",
                "execution_request": {"tool_id": "patch", "patch_file": "p.diff"},
            },
            {
                "workstream_id": "ws-stale",
                "execution_request": {"tool_id": "patch", "patch_file": "stale.diff"},
            },
        ],
    )
    input = run_input(spec, repo)
    input.patch_files = {
        "ws-p": store.put_bytes(diff.encode(), "text/x-diff"),
        "ws-stale": store.put_bytes(stale.encode(), "text/x-diff"),
    }
    record = await run_phase(client, settings, input)
    assert record.workstreams["ws-p"].status == WorkstreamState.COMPLETED
    assert [g.status for g in record.phase_gates] == ["passed"]
    assert show(repo, record.head_sha or "", "greet.py") == "print('hello')\nprint('world')"
    stale_reason = record.workstreams["ws-stale"].reason or ""
    assert stale_reason.startswith("ws-stale: patch_file 'stale.diff' at ")
    assert "does not apply: error: patch failed: greet.py:1" in stale_reason
    history = await client.get_workflow_handle(
        f"{workflow_id(record.run_id)}/ws/ws-stale"
    ).fetch_history()
    # A ready patch runs as one local activity, applied, validated and committed: its marker
    # says how many attempts it took.
    runs = [
        json.loads(m.details["data"].payloads[0].data)
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and (m := e.marker_recorded_event_attributes).marker_name == "core_local_activity"
    ]
    assert [(r["activity_type"], r["attempt"]) for r in runs] == [("take_ready_patch", 1)], (
        "a patch that does not apply is not retried"
    )
