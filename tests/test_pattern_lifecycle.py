"""Recovery patterns without a server: the confidence formula and its inputs, learning modes,
versions and rollback, quarantine and flagging by uses, export and import through the real
CLI, flaky gates re-run once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from activities.gates import GateActivities
from activities.lib.state_dir import StateDir
from activities.lib.telemetry import patterns
from activities.lib.telemetry.models import PatternVersion, RecoveryPattern
from activities.lib.telemetry.recorder import (
    ErrorFact,
    ExecutionFact,
    PatternUseFact,
    Recorder,
    ResolutionFact,
)
from activities.lib.telemetry.store import Telemetry
from schemas.gates import GateRunInput
from schemas.spec import GateSpec, Learning

ROOT = Path(__file__).resolve().parent.parent
SIG = "lint:0123456789abcdef"
FIX = "--- a/gen.py\n+++ b/gen.py\n@@ -1,2 +1 @@\n-import os\n print('hi')\n"
OTHER = "--- a/lib.py\n+++ b/lib.py\n@@ -3 +3 @@\n-x = compute(1)\n+x = compute(2)\n"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def resolve(
    recorder: Recorder,
    n: int,
    *,
    excerpt: str = FIX,
    files: list[str] | None = None,
    reproduced: str | None = "ruff check --fix .",
    learning: Learning | None = None,
) -> None:
    """One error of SIG in run R<n>, attempt 1, fixed by attempt 2."""
    at = T0 + timedelta(minutes=n)
    recorder.record(
        ErrorFact(
            key=f"gate/R{n}/w/1/c/lint",
            signature=SIG,
            category="lint",
            run_id=f"R{n}",
            workstream_id="w",
            attempt=1,
            source="gate:lint",
            at=at,
        ),
        ResolutionFact(
            run_id=f"R{n}",
            workstream_id="w",
            attempt=2,
            source="gate:lint",
            at=at,
            files=files or ["gen.py"],
            hunks=1,
            excerpt=excerpt,
            gates_ran=1,
            gates_total=1,
            reproduced_by=reproduced,
            learning=learning or Learning(),
        ),
    )


def use(recorder: Recorder, n: int, passed: bool, pattern_id: str) -> None:
    recorder.record(
        PatternUseFact(
            key=f"use/{n}",
            pattern_id=pattern_id,
            version="1.0",
            kind="recovery",
            run_id=f"U{n}",
            workstream_id="w",
            passed=passed,
            at=T0 + timedelta(hours=1, minutes=n),
        )
    )


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.delenv("UET_DISABLE_LEARNING", raising=False)
    monkeypatch.delenv("UET_DATABASE_URL", raising=False)
    return Recorder(tmp_path)


def db(recorder: Recorder) -> Telemetry:
    return Telemetry(f"sqlite:///{recorder.home / 'uet.db'}")


def test_three_identical_fixes_make_an_active_pattern_with_its_confidence(
    recorder: Recorder,
) -> None:
    resolve(recorder, 1)
    resolve(recorder, 2)
    with db(recorder).session() as session:
        assert session.scalars(select(RecoveryPattern)).all() == []  # 2 < min_resolutions
    resolve(recorder, 3)
    with db(recorder).session() as session:
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        assert (pattern.state, pattern.version) == ("active", "1.0")
        version = patterns.current_version(session, pattern)
        assert version is not None and version.recovery_command == "ruff check --fix ."
        assert version.inputs["resolutions"] == 3
        assert (version.inputs["similarity"], version.inputs["success_rate"]) == (1.0, 1.0)
        assert version.confidence == 1.0
        plan = patterns.lookup(session, SIG)
        assert plan.found and plan.command == "ruff check --fix ."
        assert "seen 3 times and fixed 3 times" in plan.guidance and "-import os" in plan.guidance


def test_unlike_fixes_score_lower_and_stay_a_draft(recorder: Recorder) -> None:
    resolve(recorder, 1, reproduced=None)
    resolve(recorder, 2, excerpt=OTHER, files=["lib.py"], reproduced=None)
    resolve(recorder, 3, excerpt=OTHER + "+y = 1\n", files=["lib.py", "y.py"], reproduced=None)
    with db(recorder).session() as session:
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        version = patterns.current_version(session, pattern)
        assert version is not None
        inputs = version.inputs
        expected = (
            0.4 * inputs["similarity"]
            + 0.3 * inputs["success_rate"]
            + 0.2 * inputs["test_coverage"]
            + 0.1 * inputs["schema_completeness"]
        )
        assert version.confidence == pytest.approx(expected, abs=0.002)
        assert inputs["similarity"] < 0.5 and version.confidence < 0.75
        assert pattern.state == "draft" and "< 0.75" in pattern.state_reason
        assert not patterns.lookup(session, SIG).found  # drafts are never applied


def test_review_mode_waits_for_a_person_and_off_learns_nothing(recorder: Recorder) -> None:
    for n in range(1, 4):
        resolve(recorder, n, learning=Learning(mode="review"))
    with db(recorder).session() as session:
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        assert pattern.state == "draft" and "review" in pattern.state_reason
        patterns.set_state(session, pattern.pattern_id, "active", "approved")
    with db(recorder).session() as session:
        assert patterns.lookup(session, SIG).found


def test_mode_off_learns_nothing(recorder: Recorder) -> None:
    for n in range(1, 5):
        resolve(recorder, n, learning=Learning(mode="off"))
    with db(recorder).session() as session:
        assert session.scalars(select(RecoveryPattern)).all() == []


def test_a_changed_fix_is_a_new_version_and_rollback_brings_one_back(recorder: Recorder) -> None:
    for n in range(1, 4):
        resolve(recorder, n)
    resolve(recorder, 4, excerpt=FIX.replace("print('hi')", "print('bye')"))
    with db(recorder).session() as session:
        (pattern,) = session.scalars(select(RecoveryPattern)).all()
        assert pattern.version == "1.1"
        pattern_id = pattern.pattern_id
        patterns.rollback(session, pattern_id, "1.0")
    with db(recorder).session() as session:
        pattern = patterns.get(session, pattern_id)
        history = patterns.versions(session, pattern_id)
        assert [v.version for v in history] == ["1.0", "1.1", "1.2"]
        assert (history[-1].origin, history[-1].guidance) == ("rollback", history[0].guidance)
        assert pattern.version == "1.2"
        with pytest.raises(patterns.PatternError, match=r"has no version v7\.0"):
            patterns.rollback(session, pattern_id, "7.0")


def test_failing_uses_quarantine_and_a_later_slip_flags(recorder: Recorder) -> None:
    for n in range(1, 4):
        resolve(recorder, n)
    with db(recorder).session() as session:
        pattern_id = session.scalars(select(RecoveryPattern.pattern_id)).one()
    # Probation: 3 of 10 failed (never above 40%) — stays active; the 11th failure takes it
    # to 64% healed, below 80%: flagged for improvement.
    for n, ok in enumerate([1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0], start=1):
        use(recorder, n, bool(ok), pattern_id)
        use(recorder, n, bool(ok), pattern_id)  # the same use again: counted once
    with db(recorder).session() as session:
        pattern = patterns.get(session, pattern_id)
        assert (pattern.uses, pattern.successes, pattern.state) == (12, 7, "active")
        assert pattern.flagged and "flagged for improvement" in pattern.state_reason
        patterns.set_state(session, pattern_id, "active", "fixed the fixer")
    for n, ok in enumerate([0, 1, 0], start=100):
        use(recorder, n, bool(ok), pattern_id)
    with db(recorder).session() as session:
        pattern = patterns.get(session, pattern_id)
        assert pattern.state == "quarantined"
        assert "2 of 3 uses failed (67% > 40% within the first 10 uses)" in pattern.state_reason
        assert not patterns.lookup(session, SIG).found


def test_the_kill_switch_reads_and_writes_nothing(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 4):
        resolve(recorder, n)
    monkeypatch.setenv("UET_DISABLE_LEARNING", "1")
    assert recorder.read(lambda s: patterns.lookup(s, SIG), None) is None
    resolve(recorder, 9, excerpt=OTHER)
    monkeypatch.delenv("UET_DISABLE_LEARNING")
    with db(recorder).session() as session:
        assert len(session.scalars(select(PatternVersion)).all()) == 1


def uet(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UET_DISABLE_LEARNING",)}
    env.pop("UET_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env={**env, "UET_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_export_and_import_round_trip_and_bad_files_get_one_line(
    recorder: Recorder, tmp_path: Path
) -> None:
    for n in range(1, 4):
        resolve(recorder, n)
    resolve(recorder, 4, excerpt=FIX.replace("'hi'", "'there'"))
    out = tmp_path / "exported"
    done = uet(recorder.home, "patterns", "export", str(out))
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.yaml")
    doc = yaml.safe_load(path.read_text())
    assert doc["version"] == "1.1" and [v["version"] for v in doc["history"]] == ["1.0"]
    assert doc["recovery_command"] == "ruff check --fix ."

    other = tmp_path / "other-home"
    imported = uet(other, "patterns", "import", str(out))
    assert imported.returncode == 0, imported.stderr
    listed = uet(other, "patterns", "list", "--json")
    (row,) = yaml.safe_load(listed.stdout)
    assert (row["pattern_id"], row["version"], row["state"]) == (doc["pattern_id"], "1.1", "active")
    again = uet(other, "patterns", "import", str(out))
    assert "(unchanged)" in again.stdout

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.yaml").write_text(yaml.safe_dump({**doc, "version": "one"}))
    refused = uet(other, "patterns", "import", str(bad))
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "p.yaml: version:" in line and "recovery_pattern.v1.json" in line

    unknown = uet(other, "patterns", "approve", "RP-nothing")
    assert unknown.returncode == 2 and "no pattern 'RP-nothing'" in unknown.stderr


async def test_a_flaky_gate_is_re_run_once_when_asked(
    tmp_path: Path, make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UET_DISABLE_LEARNING", raising=False)
    repo: Path = make_repo({"f.txt": "f\n"})
    from helpers import git_out

    head = git_out(repo, "rev-parse", "HEAD")
    state = StateDir(tmp_path / "home")
    counter = tmp_path / "runs"
    # Fails on its first run, passes after: the shape of a flaky test.
    flaky = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]"
    gate = GateSpec(gate_id="unit", command=flaky, retry_flaky=True)
    request = GateRunInput(
        repo_path=str(repo), run_id="R", label="w", commit_sha=head, attempt=1, gates=[gate]
    )
    gates = GateActivities(state)
    unknown = await gates.run_gates(request)  # not known as flaky: no second run
    assert not unknown.passed and unknown.results[0].retried is None
    counter.unlink()
    state.telemetry.record(
        *[
            ExecutionFact(
                key=f"seen/{outcome}",
                run_id="OLD",
                workstream_id="w",
                attempt=1,
                kind="gate",
                gate_id="unit",
                tree_sha="t" * 40,
                outcome=outcome,
                at=datetime.now(UTC) - timedelta(days=1),
            )
            for outcome in ("failed", "passed")
        ]
    )
    request.commit_sha = head
    request.attempt = 2
    retried = await gates.run_gates(request)
    assert retried.passed
    assert retried.results[0].retried is not None
    assert retried.results[0].retried.startswith("failed")
    counter.unlink()
    request.attempt = 3
    request.gates = [gate.model_copy(update={"retry_flaky": False})]
    assert not (await gates.run_gates(request)).passed
