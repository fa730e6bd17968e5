"""The committed JSON Schema files are exactly what the models generate."""

from __future__ import annotations

import json

import jsonschema
import pytest

from schemas.export import EXPORTED, SCHEMA_DIR, render
from schemas.run import RunRecord, WorkstreamStatus
from schemas.spec import PhaseSpec


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_committed_schema_matches_models(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text("utf-8")
    assert committed == render(EXPORTED[name], name), (
        f"schemas/{name} is stale: run `python -m schemas.export` and commit the result"
    )


def test_run_record_validates_against_its_schema() -> None:
    record = RunRecord(
        run_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
        workflow_id="uet-01ARZ3NDEKTSV4RRFFQ69G5FAV",
        phase_id="PH",
        integration_branch="uet/x/integration",
        workstreams={"ws-a": WorkstreamStatus(wave=1)},
    )
    schema = json.loads((SCHEMA_DIR / "run_record.v1.json").read_text())
    jsonschema.validate(record.model_dump(mode="json"), schema)


def test_defaults_merge_under_the_workstream() -> None:
    spec = PhaseSpec.model_validate(
        {
            "phase_id": "PH",
            "defaults": {
                "execution_request": {"tool_id": "shell", "env": {"A": "1"}},
                "resilience_policy": {"max_attempts": 5, "timeout_s": 60},
                "review": "never",
            },
            "workstreams": [
                {
                    "workstream_id": "a",
                    "execution_request": {"command": "x", "env": {"B": "2"}},
                    "resilience_policy": {"timeout_s": 10},
                },
            ],
        }
    )
    ws = spec.workstreams[0]
    assert ws.execution_request.env == {"A": "1", "B": "2"}
    assert ws.resilience_policy.max_attempts == 5 and ws.resilience_policy.timeout_s == 10
    assert ws.review == "never"


def test_ledger_state_machine() -> None:
    from datetime import UTC, datetime

    from schemas.ledger import IllegalTransition, LedgerEntry, PatchState, is_legal_history

    now = datetime.now(UTC)
    entry = LedgerEntry(
        ledger_id="L", patch_id="P", run_id="R", workstream_id="ws", attempt=1, tool_id="shell"
    )
    for state in (PatchState.VALIDATED, PatchState.QUEUED, PatchState.APPLIED):
        entry.move(state, now, "ok")
    with pytest.raises(IllegalTransition, match="applied -> committed is not a legal move"):
        entry.move(PatchState.COMMITTED, now)  # must be verified first
    entry.move(PatchState.VERIFIED, now)
    entry.move(PatchState.COMMITTED, now)
    assert [c.state for c in entry.state_history] == [
        "validated",
        "queued",
        "applied",
        "verified",
        "committed",
    ]
    S = PatchState
    assert is_legal_history([S.CREATED, S.QUARANTINED, S.DROPPED])
    assert not is_legal_history([S.CREATED, S.APPLIED])
    assert not is_legal_history([S.VALIDATED])
    assert not is_legal_history(
        [S.CREATED, S.VALIDATED, S.QUEUED, S.APPLIED, S.VERIFIED, S.COMMITTED, S.DROPPED]
    )
