"""Facts from a finished run's report folder (``$UET_HOME/runs/<run>``): for runs that ended
before the telemetry existed, or while it could not be written. The keys are those the live
recording uses, so importing a run that was recorded as it went adds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from activities.lib.errors.engine import classify
from activities.lib.telemetry.recorder import (
    ErrorFact,
    ExecutionFact,
    Fact,
    ResolutionFact,
    RunFact,
    error_fact,
    file_types,
)
from schemas.events import EventType, RunEvent
from schemas.ledger import LedgerEntry
from schemas.run import RunRecord

M = TypeVar("M", bound=BaseModel)


def run_facts(folder: Path) -> list[Fact]:
    record = RunRecord.model_validate_json((folder / "run.json").read_text("utf-8"))
    ledger = _lines(folder / "ledger.jsonl", LedgerEntry)
    events = _lines(folder / "events.jsonl", RunEvent)
    started = next((e.at for e in events if e.type == EventType.RUN_STARTED), None)
    facts: list[Fact] = [
        RunFact(
            run_id=record.run_id,
            phase_id=record.phase_id,
            status=str(record.status),
            scheduling=record.scheduling,
            workstreams=len(record.workstreams),
            cost_usd=record.cost_usd_total,
            started_at=started,
            ended_at=events[-1].at if events else None,
        )
    ]
    for entry in sorted(ledger, key=lambda e: (e.workstream_id, e.attempt)):
        facts += _entry_facts(record.run_id, entry)
    return facts


def _entry_facts(run_id: str, entry: LedgerEntry) -> list[Fact]:
    at = entry.state_history[0].at if entry.state_history else None
    assert at is not None
    usage = entry.tool_usage
    tool_key = f"tool/{run_id}/{entry.workstream_id}/{entry.attempt}/{entry.tool_id}"
    files = [change.path for change in entry.patch.stats.files] if entry.patch else []
    facts: list[Fact] = [
        ExecutionFact(
            key=tool_key,
            run_id=run_id,
            workstream_id=entry.workstream_id,
            attempt=entry.attempt,
            kind="tool",
            tool_id=entry.tool_id,
            model=usage.model if usage else None,
            file_types=file_types(files),
            at=at,
            outcome="changed",
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cost_usd=usage.cost_usd if usage else None,
        )
    ]
    for gate in entry.gates:
        if gate.status == "skipped" or entry.commit is None:
            continue
        key = f"gate/{run_id}/{entry.workstream_id}/{entry.attempt}/{entry.commit}/{gate.gate_id}"
        found = None
        if gate.status != "passed":
            found = (
                classify("", code=gate.code, detail=(gate.reason or "").split(": ", 1)[-1])
                if gate.code
                else classify(gate.output_tail)
            )
        facts.append(
            ExecutionFact(
                key=key,
                run_id=run_id,
                workstream_id=entry.workstream_id,
                attempt=entry.attempt,
                kind="gate",
                gate_id=gate.gate_id,
                at=at,
                duration_s=gate.duration_s,
                outcome=gate.status,
                reason_code=gate.code,
                signature=found.signature if found else None,
            )
        )
        source = f"gate:{gate.gate_id}"
        if found is None:
            facts.append(
                ResolutionFact(
                    run_id=run_id,
                    workstream_id=entry.workstream_id,
                    attempt=entry.attempt,
                    source=source,
                    at=at,
                    resolved_by=f"attempt {entry.attempt} passed",
                )
            )
        else:
            fact: ErrorFact = error_fact(
                found,
                key=key,
                run_id=run_id,
                workstream_id=entry.workstream_id,
                attempt=entry.attempt,
                source=source,
                excerpt=gate.output_tail,
                log=gate.log,
            )
            facts.append(fact.model_copy(update={"at": at}))
    return facts


def _lines(path: Path, model: type[M]) -> list[M]:
    if not path.is_file():
        return []
    text = path.read_text("utf-8")
    return [model.model_validate_json(line) for line in text.splitlines() if line]
