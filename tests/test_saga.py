"""Saga compensation and merge conflicts: undo waves in reverse, cancel, rollback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import cli, git_out, phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.worker import Replayer, Worker

from runtime.plugin import WORKFLOWS
from runtime.settings import Settings
from schemas.review import ReviewDecision
from schemas.run import PhaseState, RunRecord, WorkstreamState
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent


def refs(repo: Path, run_id: str) -> list[str]:
    out = git_out(
        repo,
        "for-each-ref",
        "--format=%(refname)",
        f"refs/heads/uet/{run_id}",
        f"refs/tags/uet/{run_id}",
    )
    return sorted(out.splitlines())


def ledger(record: RunRecord) -> list[dict]:
    lines = (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def chain(log: Path, n: int) -> list[dict]:
    """ws-1 → ws-2 → … each adding wN.txt; its compensation logs whether its work is there."""
    return [
        {
            "workstream_id": f"ws-{i}",
            "dependencies": [f"ws-{i - 1}"] if i > 1 else [],
            "execution_request": {"command": f"echo {i} > w{i}.txt"},
            "compensation": {"command": f"test -f w{i}.txt && echo undo ws-{i} >> {log}"},
        }
        for i in range(1, n + 1)
    ]


async def test_rollback_after_the_last_wave_returns_to_the_base(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    log = tmp_path / "undo.log"
    spec = phase(
        gates=[{"gate_id": "no-w3", "command": "test ! -f w3.txt"}],  # fails after wave 3 only
        workstreams=chain(log, 3),
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))

    assert record.status == PhaseState.ROLLED_BACK
    assert record.reason == "phase gate no-w3 exited with 1 after wave 3"
    # The user's compensations ran newest first, each while its work was still there.
    assert log.read_text().splitlines() == ["undo ws-3", "undo ws-2", "undo ws-1"]
    assert git_out(repo, "rev-parse", record.integration_branch) == base == record.head_sha
    assert refs(repo, record.run_id) == [f"refs/heads/{record.integration_branch}"]
    assert not (settings.home / "worktrees" / record.run_id).exists()
    assert {s.status for s in record.workstreams.values()} == {WorkstreamState.ROLLED_BACK}
    assert [e["state"] for e in ledger(record)] == ["rolled_back"] * 3
    kinds = [
        json.loads(x)["type"]
        for x in (Path(record.report_dir or "") / "events.jsonl").read_text().splitlines()
    ]
    assert "COMPENSATION_STARTED" in kinds and "COMPENSATION_COMPLETED" in kinds
    assert kinds.count("COMPENSATION_STEP") == 3 * 3 + 3  # per wave: reset, tag, branch; + users
    assert kinds[-1] == "RUN_ROLLED_BACK"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
    await replayer.replay_workflow(
        await client.get_workflow_handle(record.workflow_id).fetch_history()
    )


async def test_phase_gate_failing_before_the_last_wave_stops_the_phase(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    log = tmp_path / "undo.log"
    spec = phase(
        gates=[{"gate_id": "no-w1", "command": "test ! -f w1.txt"}], workstreams=chain(log, 3)
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert record.status == PhaseState.FAILED
    assert record.reason == "phase gate no-w1 exited with 1 after wave 1"
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {"ws-1": "completed", "ws-2": "blocked", "ws-3": "blocked"}
    assert not log.exists(), "stopping is not rolling back"
    assert git_out(repo, "show", f"{record.head_sha}:w1.txt") == "1"


async def test_on_failure_rollback(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    spec = phase(
        on_failure="rollback",
        defaults={"review": "never", "resilience_policy": {"max_fix_attempts": 0}},
        workstreams=[
            {"workstream_id": "ws-ok", "execution_request": {"command": "touch ok.txt"}},
            {
                "workstream_id": "ws-bad",
                "execution_request": {"command": "touch bad.txt"},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
            {
                "workstream_id": "ws-later",
                "dependencies": ["ws-ok"],
                "execution_request": {"command": "touch later.txt"},
            },
        ],
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert record.status == PhaseState.ROLLED_BACK
    assert record.reason == "on_failure: rollback (ws-bad failed)"
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {"ws-ok": "rolled_back", "ws-bad": "failed", "ws-later": "dropped"}
    assert git_out(repo, "rev-parse", record.integration_branch) == base


async def test_reject_with_rollback(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    log = tmp_path / "undo.log"
    workstreams = chain(log, 2)
    workstreams[1]["resilience_policy"] = {"max_fix_attempts": 0}
    workstreams[1]["acceptance_criteria"] = {"gates": [{"gate_id": "unit", "command": "exit 1"}]}
    handle = await start_phase(client, settings, run_input(phase(workstreams=workstreams), repo))
    await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    rejected = await cli(client, settings)(
        "reject", handle.id.removeprefix("uet-"), "ws-2", "--rollback", "--comment", "start over"
    )
    assert rejected.returncode == 0, rejected.stderr
    record = await record_of(handle)
    assert record.status == PhaseState.ROLLED_BACK
    assert record.reason == "ws-2 rejected with rollback by " + record.reviews[0].decision.reviewer  # type: ignore[union-attr]
    assert log.read_text().splitlines() == ["undo ws-1"]
    assert git_out(repo, "rev-parse", record.integration_branch) == base
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {"ws-1": "rolled_back", "ws-2": "dropped"}


@pytest.mark.parametrize("scheduling", ["waves", "eager"])
async def test_cancel_mid_wave_kills_the_tool_then_compensates(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path, scheduling: str
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    log = tmp_path / "order.log"
    slow = (
        f"trap 'echo tool-stopped >> {log}; exit 143' TERM; echo tool-started >> {log}; "
        "sleep 60 & wait $!; touch finished.txt"
    )
    spec = phase(
        scheduling=scheduling,
        workstreams=[
            {
                "workstream_id": "ws-first",
                "execution_request": {"command": "touch first.txt"},
                "compensation": {"command": f"echo compensated >> {log}"},
            },
            {
                "workstream_id": "ws-slow",
                "dependencies": ["ws-first"],
                "execution_request": {"command": slow},
            },
        ],
    )
    input = run_input(spec, repo, heartbeat_timeout_s=2)
    handle = await start_phase(client, settings, input)
    for _ in range(300):
        if log.exists() and "tool-started" in log.read_text():
            break
        await asyncio.sleep(0.05)
    cancelled = await cli(client, settings)("cancel", input.run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{input.run_id} canceled" in cancelled.stdout
    # The tool was stopped (and awaited) before the compensation ran.
    assert log.read_text().splitlines() == ["tool-started", "tool-stopped", "compensated"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    record = RunRecord.model_validate_json(
        (settings.home / "runs" / input.run_id / "run.json").read_text()
    )
    assert record.status == PhaseState.CANCELED
    assert record.workstreams["ws-first"].status == WorkstreamState.ROLLED_BACK
    assert record.workstreams["ws-slow"].status == WorkstreamState.DROPPED
    assert git_out(repo, "rev-parse", record.integration_branch) == base
    child = client.get_workflow_handle(f"{record.workflow_id}/ws/ws-slow")
    assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_rollback_to_a_wave_while_waiting_for_review(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    log = tmp_path / "undo.log"
    workstreams = chain(log, 2)
    workstreams[1]["resilience_policy"] = {"max_fix_attempts": 0}
    workstreams[1]["acceptance_criteria"] = {"gates": [{"gate_id": "unit", "command": "exit 1"}]}
    input = run_input(phase(workstreams=workstreams), repo)
    handle = await start_phase(client, settings, input)
    await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    wave_1 = git_out(repo, "rev-parse", f"uet/{input.run_id}/wave-1")

    uet = cli(client, settings)
    refused = await uet("rollback", input.run_id, "--to-wave", "2")
    assert refused.returncode == 2 and "only finished waves can be kept" in refused.stderr
    done = await uet("rollback", input.run_id, "--to-wave", "1", "--reason", "not this way")
    assert done.returncode == 0, done.stderr
    record = await record_of(handle)
    assert record.status == PhaseState.ROLLED_BACK and record.reason == "not this way"
    assert git_out(repo, "rev-parse", record.integration_branch) == wave_1 == record.head_sha
    assert record.workstreams["ws-1"].status == WorkstreamState.COMPLETED
    assert record.workstreams["ws-2"].status == WorkstreamState.DROPPED
    assert record.reviews[0].abandoned
    assert not log.exists(), "wave 1 was kept, so its compensation did not run"


async def test_rollback_of_a_finished_run(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    log = tmp_path / "undo.log"
    input = run_input(phase(workstreams=chain(log, 2)), repo)
    record = await record_of(await start_phase(client, settings, input))
    assert record.status == PhaseState.COMPLETED
    rolled = await cli(client, settings)("rollback", input.run_id)
    assert rolled.returncode == 0, rolled.stderr
    assert f"{input.run_id} rolled_back" in rolled.stdout
    assert log.read_text().splitlines() == ["undo ws-2", "undo ws-1"]
    assert git_out(repo, "rev-parse", record.integration_branch) == base
    after = RunRecord.model_validate_json(
        (settings.home / "runs" / input.run_id / "run.json").read_text()
    )
    assert after.status == PhaseState.ROLLED_BACK and not after.compensations
    assert [e["state"] for e in ledger(after)] == ["rolled_back", "rolled_back"]
    events = [
        json.loads(line)["type"]
        for line in (Path(after.report_dir or "") / "events.jsonl").read_text().splitlines()
    ]
    assert events.count("RUN_COMPLETED") == 1 and events[-1] == "RUN_ROLLED_BACK"
    # The rollback got the ledger and events by reference, not inline.
    history = await client.get_workflow_handle(f"{record.workflow_id}/rollback").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    sent = json.loads(started.input.payloads[0].data)
    assert sent["ledger"] == [] and sent["events"] == [] and sent["record"]["journal"]
    again = await cli(client, settings)("rollback", input.run_id)
    assert again.returncode == 2 and "nothing left to roll back" in again.stderr


FILE = "".join(f"line {n}\n" for n in range(1, 9))


async def test_merge_conflicts_three_way_rerun_and_review(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": FILE, "g.txt": FILE})
    spec = phase(
        workstreams=[
            # f.txt: ws-a edits line 4, ws-b line 7. A plain re-apply of ws-b's patch fails (line 4
            # is in its context); the 3-way merge of the integration branch takes both.
            {
                "workstream_id": "ws-a",
                "execution_request": {"command": "sed -i 's/^line 4$/A4/' f.txt"},
            },
            {
                "workstream_id": "ws-b",
                "execution_request": {"command": "sed -i 's/^line 7$/B7/' f.txt"},
            },
            # g.txt: ws-c and ws-d both rewrite line 5; ws-d re-runs on the new head and wins.
            {"workstream_id": "ws-c", "execution_request": {"command": "sed -i '5s/.*/C5/' g.txt"}},
            {"workstream_id": "ws-d", "execution_request": {"command": "sed -i '5s/.*/D5/' g.txt"}},
            # ws-e rewrites line 5 too, with no fix attempts left: a person decides.
            {
                "workstream_id": "ws-e",
                "execution_request": {"command": "sed -i '5s/.*/E5/' g.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
            },
        ]
    )
    input = run_input(spec, repo)
    handle = await start_phase(client, settings, input)
    await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    assert (request.workstream_id, request.reason) == ("ws-e", "merge_conflict")
    assert request.conflicts == ["g.txt"] and request.allowed == ["reject", "adjust", "retry"]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PhaseWorkflow.submit_review,
            ReviewDecision(review_id=request.review_id, decision="approve", reviewer="alice"),
        )
    assert "'approve' is not a decision for a merge_conflict review" in str(refused.value.cause)
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        ReviewDecision(review_id=request.review_id, decision="reject", reviewer="alice"),
    )
    record = await record_of(handle)
    head = record.head_sha or ""
    assert git_out(repo, "show", f"{head}:f.txt").splitlines()[3:7] == [
        "A4",
        "line 5",
        "line 6",
        "B7",
    ]
    assert git_out(repo, "show", f"{head}:g.txt").splitlines()[4] == "D5"
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {
        "ws-a": "completed",
        "ws-b": "completed",
        "ws-c": "completed",
        "ws-d": "completed",
        "ws-e": "dropped",
    }
    by_ws: dict[str, list[str]] = {}
    for entry in sorted(ledger(record), key=lambda e: e["attempt"]):
        by_ws.setdefault(entry["workstream_id"], []).append(entry["state"])
    assert by_ws["ws-d"] == ["apply_failed", "committed"]  # re-run on the new head
    assert by_ws["ws-e"] == ["dropped"]
    # ws-b's patch would not apply as a plain patch on the head it was merged into.
    b_commit = record.workstreams["ws-b"].commit or ""
    patch = git_out(repo, "diff", f"{b_commit}~1", b_commit) + "\n"
    after_a = git_out(repo, "log", "--format=%H", "--grep=integrate ws-a (wave 1)", head)
    index = Path(record.report_dir or "") / "check.index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", after_a], cwd=repo, env=env, check=True)
    check = subprocess.run(
        ["git", "apply", "--cached", "--check", "-"],
        cwd=repo,
        env=env,
        input=patch,
        text=True,
        capture_output=True,
    )
    assert check.returncode != 0 and "patch does not apply" in check.stderr
