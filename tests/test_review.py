"""Human review: requests, decisions by update and by signal, the validator, timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from helpers import (
    cli,
    git_out,
    phase,
    record_of,
    run_input,
    show,
    start_phase,
    wait_for_status,
)
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Replayer, Worker

from runtime.plugin import WORKFLOWS
from runtime.settings import Settings
from schemas.review import ReviewDecision
from schemas.run import PhaseState, WorkstreamState
from workflows import search
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent
FAILING_GATE = {"gates": [{"gate_id": "unit", "command": "echo '1 test failed'; exit 1"}]}


def awaiting(s) -> bool:  # type: ignore[no-untyped-def]
    return s.status == PhaseState.AWAITING_REVIEW


def decision(
    review_id: str, what: str = "approve", reviewer: str = "alice", **kw
) -> ReviewDecision:  # type: ignore[no-untyped-def]
    return ReviewDecision(review_id=review_id, decision=what, reviewer=reviewer, **kw)


def entry_states(record, ws_id: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    folder = Path(record.report_dir)
    entries = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    return [
        [h["state"] for h in e["state_history"]]
        for e in sorted(entries, key=lambda e: e["attempt"])
        if e["workstream_id"] == ws_id
    ]


async def test_approve_by_update_and_what_the_validator_refuses(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        allowed_reviewers=["alice", "bob"],
        workstreams=[
            {
                "workstream_id": "ws-gate",
                "execution_request": {"command": "echo x > g.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING_GATE,
            },
            {
                "workstream_id": "ws-after",
                "dependencies": ["ws-gate"],
                "execution_request": {"command": "test -f g.txt && touch after.txt"},
            },
        ],
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    status = await wait_for_status(handle, awaiting)
    assert status.workstreams["ws-gate"].status == WorkstreamState.AWAITING_REVIEW
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    assert (request.workstream_id, request.reason) == ("ws-gate", "gates_failed")
    assert request.allowed == ["approve", "reject", "adjust", "retry"]
    assert "gate unit exited with 1" in request.summary and "1 test failed" in request.summary
    assert request.patch is not None and request.gate_logs
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(search.STATUS) == "awaiting_review"

    events_before = len((await handle.fetch_history()).events)
    refused = {
        "no review 'nope' in this run": decision("nope"),
        "'mallory' may not decide reviews here": decision(request.review_id, reviewer="mallory"),
        "adjust needs instructions for the tool": decision(request.review_id, "adjust"),
    }
    for message, bad in refused.items():
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(PhaseWorkflow.submit_review, bad)
        assert message in str(failure.value.cause)
    assert len((await handle.fetch_history()).events) == events_before, "nothing reached history"

    answer = await handle.execute_update(
        PhaseWorkflow.submit_review, decision(request.review_id, comment="flaky test, ship it")
    )
    assert (answer.workstream_id, answer.decision) == ("ws-gate", "approve")
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(PhaseWorkflow.submit_review, decision(request.review_id))
    assert "already decided (approve)" in str(failure.value.cause)

    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED
    assert record.workstreams["ws-after"].status == WorkstreamState.COMPLETED
    (states,) = entry_states(record, "ws-gate")
    assert states == ["created", "validated", "queued", "applied", "verified", "committed"]
    (review,) = record.reviews
    assert review.decision and review.decision.reviewer == "alice" and review.decided_at


async def test_approve_by_signal_and_a_bad_signal_is_ignored(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-1",
                "execution_request": {"command": "echo x > x.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING_GATE,
            },
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, awaiting)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    await handle.signal(PhaseWorkflow.review_decision, decision("not-a-review"))
    # adjust without instructions: invalid, so ignored.
    await handle.signal(PhaseWorkflow.review_decision, decision(request.review_id, "adjust"))
    # A query sees every signal accepted before it: the review is still pending, undecided.
    status = await handle.query(PhaseWorkflow.status)
    assert [(r.request.review_id, r.decision) for r in status.reviews] == [
        (request.review_id, None)
    ]
    assert [r.review_id for r in await handle.query(PhaseWorkflow.pending_reviews)] == [
        request.review_id
    ]
    await handle.signal(PhaseWorkflow.review_decision, decision(request.review_id))
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED
    # Signals are handled in order: both bad ones came first and changed nothing.
    (review,) = record.reviews
    assert review.decision is not None
    assert (review.decision.decision, review.decision.reviewer) == ("approve", "alice")
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 3
    with pytest.raises(RPCError):  # no second execution (an accepted adjust would start one)
        await client.get_workflow_handle(f"{record.workflow_id}/ws/ws-1/2").describe()


async def test_reject_drops_the_workstream_and_blocks_its_dependents(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-bad",
                "execution_request": {"command": "echo x > x.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING_GATE,
            },
            {
                "workstream_id": "ws-child",
                "dependencies": ["ws-bad"],
                "execution_request": {"command": "touch c.txt"},
            },
            {"workstream_id": "ws-free", "execution_request": {"command": "touch f.txt"}},
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, awaiting)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    await handle.execute_update(
        PhaseWorkflow.submit_review, decision(request.review_id, "reject", comment="wrong approach")
    )
    record = await record_of(handle)
    assert record.status == PhaseState.FAILED
    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {"ws-bad": "dropped", "ws-child": "blocked", "ws-free": "completed"}
    assert record.workstreams["ws-child"].reason == "dependency ws-bad was dropped"
    (states_bad,) = entry_states(record, "ws-bad")
    assert states_bad[-1] == "dropped"


async def test_adjust_reruns_the_tool_with_the_instructions(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    tool = (
        'if [ -n "$UET_FEEDBACK_FILE" ]; then cp "$UET_FEEDBACK_FILE" feedback.md; fi; '
        "echo try >> tries.txt"
    )
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-a",
                "execution_request": {"command": tool},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "told", "command": "grep -q 'paint it blue' feedback.md"}]
                },
            },
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, awaiting)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        decision(request.review_id, "adjust", instructions="paint it blue"),
    )
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    feedback = show(repo, record.head_sha or "", "feedback.md")
    assert "## Instructions from the reviewer (alice)\n\npaint it blue" in feedback
    assert "failed acceptance gate `told`" in feedback
    first, second = entry_states(record, "ws-a")
    assert first[-1] == "dropped" and second[-1] == "committed"
    ledger = [
        json.loads(x)
        for x in (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
    ]
    assert ledger[1]["replaces"] == ledger[0]["patch_id"] and ledger[1]["attempt"] == 2
    # The second execution is its own child workflow, next to the first.
    await client.get_workflow_handle(f"{record.workflow_id}/ws/ws-a/2").describe()


async def test_review_timeout_applies_the_phase_default(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        review_timeout_s=1,
        on_review_timeout="reject",
        workstreams=[
            {
                "workstream_id": "ws-1",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING_GATE,
            }
        ],
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert record.workstreams["ws-1"].status == WorkstreamState.DROPPED
    (review,) = record.reviews
    assert review.timed_out and review.decision and review.decision.decision == "reject"
    assert review.decision.reviewer == "uet"


async def test_quarantine_override_and_approval_gate(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-protected",
                "execution_request": {"command": "echo '[x]' > .gitmodules"},
            },
            {
                "workstream_id": "ws-always",
                "review": "always",
                "execution_request": {"command": "echo ok > ok.txt"},
            },
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, lambda s: len(s.reviews) == 2)
    pending = {r.workstream_id: r for r in await handle.query(PhaseWorkflow.pending_reviews)}
    assert pending["ws-protected"].reason == "quarantined"
    assert "protected_path: .gitmodules" in pending["ws-protected"].summary
    assert pending["ws-always"].reason == "approval_required"
    for request in pending.values():
        await handle.execute_update(
            PhaseWorkflow.submit_review, decision(request.review_id, comment="ok by me")
        )
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    (protected,) = entry_states(record, "ws-protected")
    assert protected == [
        "created",
        "quarantined",
        "validated",
        "queued",
        "applied",
        "verified",
        "committed",
    ]
    assert show(repo, record.head_sha or "", ".gitmodules") == "[x]"
    (always,) = entry_states(record, "ws-always")
    assert always == ["created", "validated", "queued", "applied", "verified", "committed"]
    replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def test_cli_lists_reviews_and_answers_them(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-cli",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING_GATE,
            },
        ]
    )
    input = run_input(spec, repo)
    handle = await start_phase(client, settings, input)
    await wait_for_status(handle, awaiting)
    uet = cli(client, settings)

    # Across runs, found by search attribute (visibility catches up within moments).
    for _ in range(40):
        listed = await uet("reviews", "--json")
        assert listed.returncode == 0, listed.stderr
        mine = [r for r in json.loads(listed.stdout) if r["run_id"] == input.run_id]
        if mine:
            break
        await asyncio.sleep(0.25)
    assert [(r["workstream_id"], r["reason"]) for r in mine] == [("ws-cli", "gates_failed")]
    assert mine[0]["review_id"]
    human = await uet("reviews", input.run_id)
    assert f"uet approve {input.run_id} ws-cli" in human.stdout
    refused = await uet("approve", input.run_id, "ws-nope")
    assert refused.returncode == 2 and "no pending review for 'ws-nope'" in refused.stderr
    started = time.monotonic()
    approved = await uet(
        "approve", input.run_id, "ws-cli", "--reviewer", "carol", "--comment", "fine"
    )
    assert approved.returncode == 0, approved.stderr
    assert "approve recorded for ws-cli" in approved.stdout
    status = await wait_for_status(
        handle, lambda s: s.workstreams["ws-cli"].status != WorkstreamState.AWAITING_REVIEW
    )
    moved_on_s = time.monotonic() - started
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED and status
    assert record.reviews[0].decision and record.reviews[0].decision.reviewer == "carol"
    print(f"uet approve → workstream moving on: {moved_on_s:.2f}s (CLI process included)")
    assert git_out(repo, "rev-parse", record.integration_branch) == record.head_sha
