"""The phase's Web UI summary: every workstream in small phases, what matters in large ones."""

from __future__ import annotations

from schemas.run import RunRecord, WorkstreamState, WorkstreamStatus
from workflows.details import TABLE_ROWS, Tally, render


def status(states: list[str]) -> RunRecord:
    return RunRecord(
        run_id="RUN",
        workflow_id="uet-RUN",
        phase_id="PH",
        integration_branch="uet/RUN/integration",
        current_wave=2,
        waves=[["a"], ["b"]],
        workstreams={
            f"ws-{i:03d}": WorkstreamStatus(status=s, wave=1) for i, s in enumerate(states)
        },
    )


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ws-")]


def test_a_small_phase_lists_every_workstream() -> None:
    text = render("PH", status(["completed", "running", "pending"]), [])
    assert text.startswith("**PH** — running, wave 2/2")
    assert len(rows(text)) == 3


def test_a_large_phase_counts_and_lists_only_what_matters() -> None:
    states = ["completed"] * 90 + ["running"] * 5 + ["failed"] * 3 + ["pending"] * 2
    text = render("PH", status(states), [])
    assert "90 completed, 3 failed, 2 pending, 5 running" in text
    assert sorted({line.split(" | ")[2] for line in rows(text)}) == ["failed", "running"]
    assert len(rows(text)) == 8 and "more" not in text


def test_the_table_stays_bounded() -> None:
    text = render("PH", status(["running"] * 100), [])
    assert len(rows(text)) == TABLE_ROWS
    assert f"… and {100 - TABLE_ROWS} more: `uet status RUN`" in text


def test_an_eager_phase_counts_steps() -> None:
    record = status(["completed", "running"])
    record.scheduling = "eager"
    record.current_wave = 5  # steps outnumber the plan's two waves
    record.workstreams["ws-000"].commit = "a" * 40
    record.workstreams["ws-000"].step = 5
    text = render("PH", record, [])
    assert text.startswith("**PH** — running, step 5") and "wave 5/2" not in text
    assert "aaaaaaaaaa (step 5)" in text


def test_a_tally_kept_one_change_at_a_time_renders_as_a_full_count() -> None:
    """The board tells its tally each workstream it changes; rendering from it must read
    exactly as counting the record afresh, however the states moved."""
    record = status(["pending"] * 120)
    tally = Tally(record)
    moves = ["running", "completed", "failed", "blocked", "running", "pending", "completed"]
    for step, state in enumerate(moves * 30):
        ws_id = f"ws-{(step * 37) % 120:03d}"
        record.workstreams[ws_id].status = WorkstreamState(state)
        tally.saw(ws_id)
        assert render("PH", record, [], tally) == render("PH", record, [])
    assert sum(tally.counts.values()) == 120
