"""Learning from runs, part 2, end to end (real server, real git, real processes): the same
error fixed the same way in three runs becomes an active recovery pattern; the fourth
occurrence is healed by it without an AI fix attempt; a pattern whose recovery fails ends
quarantined; the kill switch applies nothing.

The "AI" is the fake codex (tests/fakes): its prompt writes a Python file with an unused
import, which the `ruff check` gate rejects. The gate also prints how to fix it, so the fix
attempt's prompt (the prompt plus the feedback) writes the good file — an AI that reads the
error. ``ruff check --fix .`` reproduces that fix on the failing tree: uet discovers it as
the pattern's recovery command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cli, phase, record_of, run_input, start_phase
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Worker

from activities.lib.telemetry.models import PatternUse, RecoveryPattern, Resolution
from activities.lib.telemetry.store import Telemetry
from runtime.settings import Settings
from schemas.run import PhaseState, RunRecord
from schemas.spec import PhaseSpec

#: The gate: ruff, and on failure the line an AI reading the error would act on.
GATE = "ruff check --no-cache . || { echo 'WRITE gen.py: print(\"hi\")'; exit 1; }"
BAD = 'WRITE gen.py: import os\nAPPEND gen.py: print("hi")'


@pytest.fixture(autouse=True)
def _tools(fake_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake AI CLIs and the test's own ruff on PATH (a fresh `.venv/bin` is not)."""
    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}{os.pathsep}{venv_bin}")
    monkeypatch.delenv("UET_DISABLE_LEARNING", raising=False)


def lint_phase(ws_ids: list[str], **extra: object) -> PhaseSpec:
    return phase(
        max_parallel=len(ws_ids),
        workstreams=[
            {
                "workstream_id": ws_id,
                "execution_request": {"tool_id": "codex", "prompt": BAD},
                "acceptance_criteria": {"gates": [{"gate_id": "lint", "command": GATE}]},
                "review": "never",
            }
            for ws_id in ws_ids
        ],
        **extra,
    )


def codex_calls(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("codex "))


def events(record: RunRecord) -> list[dict]:
    lines = (Path(str(record.report_dir)) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def ledger(record: RunRecord) -> list[dict]:
    lines = (Path(str(record.report_dir)) / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def database(settings: Settings) -> Telemetry:
    return Telemetry(f"sqlite:///{settings.home / 'uet.db'}")


async def run(client: Client, settings: Settings, spec: PhaseSpec, repo: Path) -> RunRecord:
    handle = await start_phase(client, settings, run_input(spec, repo))
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    return record


async def test_three_fixes_make_a_pattern_that_heals_the_fourth_without_a_fix_call(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    repo: Path = make_repo({"README.md": "lint me\n"})
    for n in range(3):
        before = codex_calls(fake_tools) if fake_tools.exists() else 0
        record = await run(client, settings, lint_phase([f"w{n}"]), repo)
        assert codex_calls(fake_tools) - before == 2  # the first try and one fix attempt
        kinds = [e["type"] for e in events(record)]
        assert "FIX_ATTEMPT" in kinds and "RECOVERY_APPLIED" not in kinds

    store = database(settings)
    with store.session() as session:
        resolutions = session.scalars(select(Resolution)).all()
        assert len(resolutions) == 3
        assert {r.reproduced_by for r in resolutions} == {"ruff check --fix ."}
        assert all(r.files == ["gen.py"] and "-import os" in r.excerpt for r in resolutions)
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        assert (pattern.state, pattern.version, pattern.uses) == ("active", "1.0", 0)
        signature = pattern.signature
    assert signature.startswith("lint:")

    uet = cli(client, settings)
    listed = await uet("patterns", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["signature"] == signature and row["state"] == "active"
    assert row["recovery_command"] == "ruff check --fix ."
    # Three identical fixes, all gated, a fixer that reproduces them: as sure as it gets.
    assert row["confidence"] == 1.0 and row["version"] == "1.0"
    shown = await uet("patterns", "show", row["pattern_id"], "--json")
    inputs = json.loads(shown.stdout)["inputs"]
    assert inputs["resolutions"] == 3 and inputs["similarity"] == 1.0

    # The fourth occurrence: healed by the pattern, the AI tool is not called again.
    before = codex_calls(fake_tools)
    record = await run(client, settings, lint_phase(["w3"]), repo)
    assert codex_calls(fake_tools) - before == 1  # its first try only: zero fix calls
    kinds = [e["type"] for e in events(record)]
    assert "FIX_ATTEMPT" not in kinds and "RECOVERY_APPLIED" in kinds
    healed = next(e for e in events(record) if e["type"] == "RECOVERY_APPLIED")
    assert row["pattern_id"] in healed["message"]
    (verified,) = [e for e in ledger(record) if e["state"] not in ("dropped", "quarantined")]
    assert (verified["tool_id"], verified["state"]) == ("recovery", "committed")
    assert verified["pattern"] == f"{row['pattern_id']} v1.0"
    assert "ruff check --fix ." in verified["tool_reason"]
    dropped = [e for e in ledger(record) if e["state"] == "dropped"]
    assert [e["tool_id"] for e in dropped] == ["codex"]
    with store.session() as session:
        (use,) = session.scalars(select(PatternUse)).all()
        assert (use.kind, use.outcome, use.workstream_id) == ("recovery", "passed", "w3")
        used = session.get(RecoveryPattern, row["pattern_id"])
        assert used is not None and (used.uses, used.successes) == (1, 1)
        # The healed error is resolved, but not learned from again (the pattern made it).
        assert session.scalars(
            select(Resolution).where(Resolution.pattern_id == row["pattern_id"])
        ).all()
    store.close()


async def test_a_pattern_whose_recovery_fails_ends_quarantined(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path, tmp_path
) -> None:
    """An imported pattern whose recovery command does not heal: three uses, three failures,
    quarantined by itself with a report; the fix attempts go on as before."""
    repo: Path = make_repo({"README.md": "lint me\n"})
    # Learn the signature first (one run, fixed by the AI).
    await run(client, settings, lint_phase(["seed"]), repo)
    store = database(settings)
    with store.session() as session:
        (resolution,) = session.scalars(select(Resolution)).all()
        signature = resolution.signature
    folder = tmp_path / "patterns"
    folder.mkdir()
    (folder / "broken.yaml").write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "pattern_id": "RP-broken",
                "signature": signature,
                "category": "lint",
                "state": "active",
                "version": "1.0",
                "guidance": "Remove the unused import.",
                # Changes a file, but not the one that fails.
                "recovery_command": "echo touched >> README.md",
            }
        )
    )
    uet = cli(client, settings)
    imported = await uet("patterns", "import", str(folder))
    assert imported.returncode == 0, imported.stderr

    record = await run(client, settings, lint_phase(["q1", "q2", "q3"]), repo)
    kinds = [e["type"] for e in events(record)]
    assert kinds.count("RECOVERY_FAILED") == 3 and "RECOVERY_APPLIED" not in kinds
    listed = json.loads((await uet("patterns", "list", "--json")).stdout)
    broken = next(p for p in listed if p["pattern_id"] == "RP-broken")
    assert broken["state"] == "quarantined"
    # Its three recoveries failed; the fix attempts its guidance went into passed.
    assert (broken["failures"], broken["successes"]) == (3, 3)
    shown = await uet("patterns", "show", "RP-broken")
    assert "quarantined by itself" in shown.stdout and "within the first 10 uses" in shown.stdout
    # The AI fix attempts were told what fixed it before (the pattern's guidance).
    fixes = [e for e in ledger(record) if e["tool_id"] == "codex" and e["attempt"] == 2]
    assert fixes and all(e["pattern"] == "RP-broken v1.0" for e in fixes)
    store.close()


async def test_the_kill_switch_applies_nothing(
    client: Client,
    settings: Settings,
    make_repo,
    fake_tools: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With UET_DISABLE_LEARNING=1 an active pattern is neither applied nor told to the AI;
    the run goes the long way (a fix attempt), and nothing is recorded."""
    repo: Path = make_repo({"README.md": "lint me\n"})
    from conftest import build_worker  # type: ignore[attr-defined]

    async with build_worker(client, settings):
        for n in range(3):
            await run(client, settings, lint_phase([f"k{n}"]), repo)
    store = database(settings)
    with store.session() as session:
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        assert pattern.state == "active"
    monkeypatch.setenv("UET_DISABLE_LEARNING", "1")
    async with build_worker(client, settings):
        before = codex_calls(fake_tools)
        record = await run(client, settings, lint_phase(["off"]), repo)
    assert codex_calls(fake_tools) - before == 2
    kinds = [e["type"] for e in events(record)]
    assert "RECOVERY_STARTED" not in kinds and "RECOVERY_APPLIED" not in kinds
    assert all(e["pattern"] is None for e in ledger(record))
    with store.session() as session:
        assert session.scalars(select(PatternUse)).all() == []
        assert len(session.scalars(select(Resolution)).all()) == 3
    store.close()


async def test_a_phase_recovery_rule_heals_the_first_occurrence(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    """`recoveries:` in the phase needs no history: the first lint failure is fixed by the
    rule's command, and the AI tool runs once."""
    repo: Path = make_repo({"README.md": "lint me\n"})
    spec = lint_phase(
        ["r1"], recoveries=[{"match": {"category": "lint"}, "command": "ruff check --fix ."}]
    )
    record = await run(client, settings, spec, repo)
    assert codex_calls(fake_tools) == 1
    (kept,) = [e for e in ledger(record) if e["state"] == "committed"]
    assert (kept["tool_id"], kept["pattern"]) == ("recovery", "rule:lint")
