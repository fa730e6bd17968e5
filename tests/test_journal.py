"""The journal written out step by step: a run whose ledger and events go to the artifact store as
it runs reports exactly what a run that holds them to the end does, rollbacks included."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from helpers import cli, phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.run import PhaseState, RunRecord


def rolled_back_chain() -> Any:
    """ws-a, then ws-b, then ws-bad (fails its gate): on_failure rollback undoes all three waves."""
    return phase(
        on_failure="rollback",
        defaults={"review": "never", "resilience_policy": {"max_fix_attempts": 0}},
        workstreams=[
            {"workstream_id": "ws-a", "execution_request": {"command": "echo a > a.txt"}},
            {
                "workstream_id": "ws-b",
                "dependencies": ["ws-a"],
                "execution_request": {"command": "echo b > b.txt"},
            },
            {
                "workstream_id": "ws-bad",
                "dependencies": ["ws-b"],
                "execution_request": {"command": "echo bad > bad.txt"},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
        ],
    )


def report(record: RunRecord) -> tuple[list[tuple[Any, ...]], Counter[tuple[str, str | None]]]:
    """The report without ids and times: each patch's path through the ledger, and the events."""
    folder = Path(record.report_dir or "")
    entries = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["event_id"] for e in events] == sorted(e["event_id"] for e in events)
    paths = sorted(
        (
            e["workstream_id"],
            e["attempt"],
            e["state"],
            tuple(h["state"] for h in e["state_history"]),
        )
        for e in entries
    )
    return paths, Counter((e["type"], e["workstream_id"]) for e in events)


async def test_written_journal_reports_what_a_held_one_does(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    records = []
    for name, batch in (("held", 10_000), ("written", 1)):
        repo: Path = make_repo({"base.txt": "base\n"}, name=name)
        input = run_input(rolled_back_chain(), repo)
        input.options.journal_batch = batch
        records.append(await record_of(await start_phase(client, settings, input)))
    held, written = records
    assert held.status == written.status == PhaseState.ROLLED_BACK
    assert not held.journal, "a small run keeps its journal to the end"
    assert len(written.journal) == 2, "one part after each of the two waves that passed"

    assert report(written) == report(held)
    paths, _ = report(written)
    # ws-a and ws-b were written out as committed; the rollback moved them afterwards.
    assert paths[0] == (
        "ws-a",
        1,
        "rolled_back",
        ("created", "validated", "queued", "applied", "verified", "committed", "rolled_back"),
    )
    assert [p[2] for p in paths] == ["rolled_back", "rolled_back", "dropped"]  # a, b, bad


async def test_live_ledger_includes_written_parts(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    spec = phase(
        defaults={"resilience_policy": {"max_fix_attempts": 0}},
        workstreams=[
            {"workstream_id": "ws-1", "execution_request": {"command": "echo 1 > one.txt"}},
            {
                "workstream_id": "ws-2",
                "dependencies": ["ws-1"],
                "execution_request": {"command": "echo 2 > two.txt"},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
        ],
    )
    input = run_input(spec, repo)
    input.options.journal_batch = 1
    handle = await start_phase(client, settings, input)
    status = await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    assert status.journal, "wave 1 was written out before wave 2 asked for review"

    listed = await cli(client, settings)("ledger", input.run_id, "--json")
    assert listed.returncode == 0, listed.stderr
    states = {e["workstream_id"]: e["state"] for e in json.loads(listed.stdout)}
    assert states == {"ws-1": "committed", "ws-2": "applied"}
    await handle.cancel()
