"""Learning from runs, part 1, end to end: runs record their tool runs, gate runs, errors and
resolutions as they go, once each; `uet errors list` and `uet insights` read them back; a
database that cannot be written never fails a run; the kill switch turns it all off."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import cli, phase, record_of, run_input, start_phase
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.worker import Worker

from activities.gates import GateActivities
from activities.lib.state_dir import StateDir
from activities.lib.telemetry.models import AntiPattern, ErrorEvent, ErrorPattern, Execution
from activities.lib.telemetry.recorder import ExecutionFact, Recorder, now
from activities.lib.telemetry.store import Telemetry
from runtime.settings import Settings
from schemas.gates import GateRunInput
from schemas.run import PhaseState
from schemas.spec import GateSpec

FIX_LOOP = """phase_id: PH-LEARN
workstreams:
  - workstream_id: a
    execution_request:
      command: 'if [ -n "$UET_FEEDBACK_FILE" ]; then echo ok > s.txt; else echo no > s.txt; fi'
    acceptance_criteria:
      gates: [{gate_id: ok, command: "python3 -c \\"import sys; assert open('s.txt').read().strip() == 'ok', 'not fixed yet'\\""}]
"""


def database(settings: Settings) -> Telemetry:
    return Telemetry(f"sqlite:///{settings.home / 'uet.db'}")


async def test_a_fixed_gate_shows_one_occurrence_and_one_resolution(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = repo.parent / "phase.yaml"
    kept = repo.parent / "feedback-seen.md"
    # The tool keeps the feedback it was given (outside its checkout) for the test to read.
    spec.write_text(
        FIX_LOOP.replace("then echo ok", f'then cp "$UET_FEEDBACK_FILE" {kept}; echo ok')
    )
    uet = cli(client, settings)
    ran = await uet("run", str(spec), "--repo", str(repo), "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["status"] == "completed"

    errors = await uet("errors", "list", "--json")
    assert errors.returncode == 0, errors.stderr
    (error,) = json.loads(errors.stdout)
    assert (error["occurrences"], error["resolved"]) == (1, 1)
    assert error["category"] == "test_assertion"  # the gate script asserts
    assert error["last_run_id"] == record["run_id"] and error["last_workstream_id"] == "a"

    data = json.loads((await uet("insights", "--json")).stdout)
    assert set(data) >= {"tools", "gates", "errors", "anti_patterns"}
    (shell,) = data["tools"]
    assert (shell["tool_id"], shell["runs"]) == ("shell", 2)
    assert shell["success_rate"] == 1.0 and shell["fix_attempt_rate"] == 0.5
    (gate,) = data["gates"]
    assert (gate["gate_id"], gate["runs"], gate["failure_rate"]) == ("ok", 2, 0.5)
    assert data["errors"][0]["signature"] == error["signature"]

    # The ledger entry and the event of the failed attempt carry the signature too.
    ledger = json.loads((await uet("ledger", record["run_id"], "--json")).stdout)
    first = min(ledger, key=lambda e: e["attempt"])
    assert first["gates"][0]["signature"] == error["signature"]
    events = (Path(record["report_dir"]) / "events.jsonl").read_text().splitlines()
    classified = [json.loads(e) for e in events if '"ERROR_CLASSIFIED"' in e]
    assert [e["data"]["signature"] for e in classified] == [error["signature"]]
    show = await uet("show", record["run_id"], "a")
    assert error["signature"] in show.stdout
    assert f"- error: test_assertion (signature `{error['signature']}`)" in kept.read_text()

    report = settings.home / "weekly.md"
    assert (await uet("insights", "--report", str(report))).returncode == 0
    assert "## Top errors" in report.read_text() and error["signature"] in report.read_text()


async def test_a_retried_activity_counts_once(settings: Settings, make_repo) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    from helpers import git_out

    head = git_out(repo, "rev-parse", "HEAD")
    gates = GateActivities(StateDir(settings.home))
    request = GateRunInput(
        repo_path=str(repo),
        run_id="RUN-ONCE",
        label="ws",
        commit_sha=head,
        attempt=1,
        gates=[GateSpec(gate_id="no", command="echo broken; exit 3")],
    )
    first = await gates.run_gates(request)
    again = await gates.run_gates(request)  # a retry after a crash, or another worker
    assert first.results[0].signature == again.results[0].signature
    store = database(settings)
    with store.session() as session:
        assert session.scalar(select(func.count(Execution.id))) == 1
        assert session.scalar(select(func.count(ErrorEvent.id))) == 1
        pattern = session.get(ErrorPattern, first.results[0].signature)
        assert pattern is not None and pattern.occurrences == 1
    store.close()


def test_a_database_that_cannot_be_written_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    recorder = Recorder(tmp_path)
    fact = ExecutionFact(
        key="k1",
        run_id="R",
        workstream_id="w",
        attempt=1,
        kind="tool",
        at=now(),
        outcome="changed",
        tool_id="shell",
    )
    monkeypatch.setenv("UET_DATABASE_URL", "postgresql+psycopg://uet@127.0.0.1:1/nowhere")
    recorder.record(fact)  # logs one line, never raises
    assert len(list((tmp_path / "telemetry-spool").glob("*.json"))) == 1
    monkeypatch.delenv("UET_DATABASE_URL")
    recorder.record(fact.model_copy(update={"key": "k2"}))
    assert list((tmp_path / "telemetry-spool").glob("*.json")) == []
    store = Telemetry(f"sqlite:///{tmp_path / 'uet.db'}")
    with store.session() as session:
        assert sorted(session.scalars(select(Execution.key))) == ["k1", "k2"]
    store.close()


async def test_a_run_goes_on_when_the_database_is_down(
    client: Client, settings: Settings, worker: Worker, make_repo, monkeypatch
) -> None:
    monkeypatch.setenv("UET_DATABASE_URL", "postgresql+psycopg://uet@127.0.0.1:1/nowhere")
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": "echo a > a.txt"},
                "acceptance_criteria": {"gates": [{"gate_id": "has", "command": "test -f a.txt"}]},
            },
        ]
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert record.status == PhaseState.COMPLETED
    assert list((settings.home / "telemetry-spool").glob("*.json"))  # kept for later


async def test_the_kill_switch_and_import_of_finished_runs(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = repo.parent / "phase.yaml"
    spec.write_text(FIX_LOOP)
    os.environ["UET_DISABLE_LEARNING"] = "1"
    try:
        off = cli(client, settings)  # the CLI, and the worker in it, with learning off
    finally:
        del os.environ["UET_DISABLE_LEARNING"]
    ran = await off("run", str(spec), "--repo", str(repo), "--json")
    assert ran.returncode == 0, ran.stderr
    assert not (settings.home / "uet.db").exists()  # not written, not even created
    refused = await off("insights")
    assert refused.returncode == 2 and "UET_DISABLE_LEARNING" in refused.stderr
    uet = cli(client, settings)
    # Learning back on: the finished run is imported from its report, once however often.
    for _ in range(2):
        imported = await uet("telemetry", "import")
        assert imported.returncode == 0 and "imported 1 run" in imported.stdout, imported.stderr
    (error,) = json.loads((await uet("errors", "list", "--json")).stdout)
    assert (error["occurrences"], error["resolved"]) == (1, 1)
    data = json.loads((await uet("insights", "--json")).stdout)
    assert [(t["tool_id"], t["runs"]) for t in data["tools"]] == [("shell", 2)]
    pruned = await uet("telemetry", "prune", "--older-than", "0.00001d")
    assert pruned.returncode == 0 and "forgot" in pruned.stdout
    assert json.loads((await uet("errors", "list", "--json")).stdout) == []


def test_flaky_gates_and_anti_patterns(tmp_path: Path) -> None:
    from datetime import timedelta

    from activities.lib.telemetry import insights

    store = Telemetry.open(f"sqlite:///{tmp_path / 'uet.db'}")
    at = now()
    with store.session() as session:
        for n, (outcome, tree) in enumerate([("failed", "t1"), ("passed", "t1"), ("failed", "t2")]):
            session.add(
                Execution(
                    key=f"g{n}",
                    run_id="R",
                    workstream_id="w",
                    attempt=n + 1,
                    kind="gate",
                    gate_id="unit",
                    tree_sha=tree,
                    at=at,
                    outcome=outcome,
                )
            )
        for n in range(4):  # codex fails 3 of 4 docs tasks
            session.add(
                Execution(
                    key=f"t{n}",
                    run_id="R",
                    workstream_id=f"w{n}",
                    attempt=1,
                    kind="tool",
                    tool_id="codex",
                    task_kind="docs",
                    at=at,
                    outcome="failed" if n else "changed",
                )
            )
        for n in range(3):  # one signature, three times, never resolved
            session.add(
                ErrorEvent(
                    key=f"e{n}",
                    signature="lint:abc",
                    category="lint",
                    run_id="R",
                    workstream_id=f"w{n}",
                    attempt=1,
                    source="gate:lint",
                    at=at + timedelta(seconds=n),
                )
            )
    with store.session() as session:
        data = insights.insights(session, insights.since(1))
        insights.remember(session, data["anti_patterns"])
        insights.remember(session, data["anti_patterns"])  # found again: updated, not doubled
    with store.session() as session:
        kept = session.scalars(select(AntiPattern.kind)).all()
    store.close()
    assert sorted(kept) == sorted(a["kind"] for a in data["anti_patterns"])
    (unit,) = data["gates"]
    assert (unit["runs"], unit["flaky"]) == (3, 1)  # t1 failed, then passed: flaky once
    kinds = {(a["kind"], a["subject"]) for a in data["anti_patterns"]}
    assert ("recurring_error", "lint:abc") in kinds
    assert ("tool_fails_on_task_kind", "codex on task_kind docs") in kinds
    (codex,) = data["tools"]
    assert codex["success_rate"] == 0.25
