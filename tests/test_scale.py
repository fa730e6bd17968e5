"""Large runs: continue-as-new between waves, and a phase too large for a payload given by
reference. (bench/scale.py runs 2,000 workstreams; these pin down the behaviour on small ones.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, cli_env, git_out, phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker
from test_journal import report, rolled_back_chain

from activities.lib import parts
from activities.lib.artifacts import LocalArtifactStore
from activities.lib.parts import INLINE_LIMIT, by_reference, whole_record
from runtime.cli.undo import rollback
from runtime.settings import Settings
from schemas.refs import rollback_workflow_id
from schemas.run import PhaseState, RollbackRunInput, RunRecord, WorkstreamState
from workflows import journal
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow


def four_waves() -> Any:
    """Two chains side by side, four waves deep."""
    return phase(
        workstreams=[
            {
                "workstream_id": f"{side}-{n}",
                "dependencies": [f"{side}-{n - 1}"] if n > 1 else [],
                "execution_request": {"command": f"echo {side}{n} > {side}{n}.txt"},
            }
            for side in ("left", "right")
            for n in range(1, 5)
        ]
    )


def tree(record: RunRecord) -> str:
    return git_out(Path(record.repo_path), "rev-parse", f"{record.head_sha}^{{tree}}")


async def executions(client: Client, record: RunRecord) -> int:
    return len([e async for e in client.list_workflows(f'WorkflowId = "{record.workflow_id}"')])


async def run_both(
    client: Client, settings: Settings, make_repo: Any, spec: Any
) -> tuple[RunRecord, RunRecord]:
    """The same phase run in one execution and continued as new after every wave."""
    records = []
    for name, every in (("one", None), ("continued", 1)):
        repo: Path = make_repo({"base.txt": "base\n"}, name=name)
        input = run_input(spec, repo, continue_as_new_events=every)
        records.append(await record_of(await start_phase(client, settings, input)))
    return records[0], records[1]


async def test_a_continued_run_ends_like_one_that_is_not(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    one, continued = await run_both(client, settings, make_repo, four_waves())
    assert one.status == continued.status == PhaseState.COMPLETED
    assert await executions(client, one) == 1
    assert await executions(client, continued) == 4, "continued before waves 2, 3 and 4"
    assert tree(continued) == tree(one), "the same files in the end"
    assert report(continued) == report(one)
    assert [w.status for w in continued.workstreams.values()] == ["completed"] * 8


async def test_a_continued_run_rolls_back_every_wave(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    one, continued = await run_both(client, settings, make_repo, rolled_back_chain())
    assert one.status == continued.status == PhaseState.ROLLED_BACK
    assert await executions(client, continued) == 3
    assert git_out(Path(continued.repo_path), "rev-parse", continued.integration_branch) == (
        continued.base_sha
    )
    assert report(continued) == report(one)


async def test_a_large_phase_travels_by_reference(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    padding = "x" * 20_000  # four of these make the phase larger than a payload should be
    spec = phase(
        workstreams=[
            {
                "workstream_id": f"ws-{n}",
                "execution_request": {"command": f"echo {n} > {n}.txt # {padding}"},
            }
            for n in range(4)
        ]
    )
    inline = run_input(spec, make_repo({"base.txt": "base\n"}))
    input = by_reference(inline, LocalArtifactStore(settings.home / "artifacts"))
    assert input.phase is None and len(input.document) == 2
    assert len(input.model_dump_json()) < INLINE_LIMIT < len(inline.model_dump_json())

    handle = await start_phase(client, settings, input)
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED
    assert sorted(record.workstreams) == ["ws-0", "ws-1", "ws-2", "ws-3"]
    history = await handle.fetch_history()
    largest = max(p.ByteSize() for e in history.events for p in _payloads(e))
    assert largest < INLINE_LIMIT, "no payload in the history carries the phase whole"


def _payloads(event: Any) -> list[Any]:
    """Every payload of a history event (inputs, results)."""
    found = []
    for field, value in event.ListFields():
        if field.name.endswith("_attributes"):
            for name in ("input", "result"):
                if value.HasField(name) if name in value.DESCRIPTOR.fields_by_name else False:
                    found += list(getattr(value, name).payloads)
    return found


async def test_an_eager_run_drains_and_continues(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    spec = four_waves().model_copy(update={"scheduling": "eager"})
    one, continued = await run_both(client, settings, make_repo, spec)
    assert one.status == continued.status == PhaseState.COMPLETED
    assert await executions(client, continued) > 1
    assert tree(continued) == tree(one)
    # How many steps there are depends on which workstreams finish together (they are
    # integrated as one step, "integrate-finished-together"); all else is the same.
    steps = ("WAVE_INTEGRATED", None)
    (paths, events), (paths_one, events_one) = report(continued), report(one)
    assert events[steps] == continued.current_wave and events_one[steps] == one.current_wave
    del events[steps], events_one[steps]
    assert (paths, events) == (paths_one, events_one)


async def test_cancelling_a_continued_run_undoes_the_waves_before_it(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    spec = phase(
        workstreams=[
            {"workstream_id": "ws-1", "execution_request": {"command": "echo 1 > one.txt"}},
            {
                "workstream_id": "ws-2",
                "dependencies": ["ws-1"],
                "execution_request": {"command": "sleep 30; echo 2 > two.txt"},
            },
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo, continue_as_new_events=1))
    await wait_for_status(handle, lambda s: s.workstreams["ws-2"].status == "running")
    assert await executions(client, await handle.query(PhaseWorkflow.status)) == 2
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    record = RunRecord.model_validate_json(
        (settings.home / "runs" / handle.id.removeprefix("uet-") / "run.json").read_text()
    )
    assert record.status == PhaseState.CANCELED
    assert git_out(repo, "rev-parse", record.integration_branch) == record.base_sha, (
        "wave 1, merged by the first execution, is undone by the second"
    )


async def test_a_record_too_large_for_a_payload_is_returned_by_reference(
    client: Client, settings: Settings, worker: Worker, make_repo, monkeypatch
) -> None:
    """At 10,000 workstreams the record is 2 MB: the result, close_run's input and a failed
    run's details carry its scalars and the parts that hold it whole (here: at 1 KB)."""
    monkeypatch.setattr(parts, "INLINE_LIMIT", 1024)
    monkeypatch.setattr(journal, "INLINE_LIMIT", 1024)  # the workflows' copy of the name
    spec = four_waves()
    handle = await start_phase(client, settings, run_input(spec, make_repo({"a.txt": "a\n"})))
    carried = await record_of(handle)
    assert carried.status == PhaseState.COMPLETED and carried.parts
    assert carried.workstreams == {} and carried.waves == []
    assert carried.report_dir and carried.head_sha
    history = await handle.fetch_history()
    assert max(p.ByteSize() for e in history.events for p in _payloads(e)) < 48_000 + 1024

    store = LocalArtifactStore(settings.home / "artifacts")
    record = whole_record(carried, store)
    assert len(record.workstreams) == 8 and len(record.waves) == 4
    assert {s.status for s in record.workstreams.values()} == {WorkstreamState.COMPLETED}
    assert record.report_dir == carried.report_dir and record.parts == []
    assert RunRecord.model_validate_json(Path(record.report_dir, "run.json").read_text()) == record

    shown = await cli(client, settings)("status", record.run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["workstreams"].keys() == record.workstreams.keys()

    # `uet rollback` of the finished run: in this process, so that it sees the 1 KB limit too.
    for name, value in cli_env(client, settings).items():
        monkeypatch.setenv(name, value)
    assert await rollback(record.run_id, None, "too large", no_worker=True) == 0
    rolled = await client.get_workflow_handle_for(
        RollbackWorkflow.run, rollback_workflow_id(record.run_id)
    ).result()
    assert rolled.status == PhaseState.ROLLED_BACK and rolled.parts and rolled.workstreams == {}
    after = whole_record(rolled, store)
    assert {s.status for s in after.workstreams.values()} == {WorkstreamState.ROLLED_BACK}
    on_disk = RunRecord.model_validate_json(Path(record.report_dir, "run.json").read_text())
    assert on_disk.status == PhaseState.ROLLED_BACK and on_disk.workstreams == after.workstreams
    history = await client.get_workflow_handle(rollback_workflow_id(record.run_id)).fetch_history()
    assert max(p.ByteSize() for e in history.events for p in _payloads(e)) < 48_000 + 1024
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    (given,) = await client.data_converter.decode(started, [RollbackRunInput])
    assert given.record.parts and given.record.workstreams == {}  # the CLI's, by reference
