"""No false success (issue 15): a gate's ``expect:`` is ground truth beyond its exit code, an AI
tool that changed nothing fails its workstream (unless ``allow_no_change``), and
``patch_policy.oscillation`` says what a patch that undoes integrated work gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import phase, record_of, run_input, run_phase, show, start_phase, wait_for_status
from temporalio.client import Client
from temporalio.worker import Worker

from activities.lib.expectations import read_output, unmet_expectation
from runtime.cli import main
from runtime.settings import Settings
from schemas.review import ReviewDecision
from schemas.run import PhaseState, WorkstreamState
from schemas.spec import GateExpect
from workflows.phase import PhaseWorkflow

# -- expectations, the pure function ---------------------------------------------------------


def unmet(tree: Path, output: str = "", code: int | None = 0, **expect: object) -> str | None:
    return unmet_expectation(GateExpect.model_validate(expect), code, output, tree)


def test_exit_code(tmp_path: Path) -> None:
    assert unmet(tmp_path) is None  # an empty expect: exit 0, nothing else
    assert unmet(tmp_path, code=1) == "expected exit code 0, got 1"
    assert unmet(tmp_path, code=3, exit_code=3) is None
    assert unmet(tmp_path, code=0, exit_code=3) == "expected exit code 3, got 0"


def test_stdout_contains(tmp_path: Path) -> None:
    out = "===== test session starts =====\ncollected 12 items\n\n12 passed in 0.1s\n"
    assert unmet(tmp_path, out, stdout_contains="collected 12 items") is None
    assert (
        unmet(tmp_path, "collected 0 items\n", stdout_contains="collected 12 items")
        == "expected stdout to contain 'collected 12 items'"
    )


def test_stdout_matches_is_a_regex_search_over_lines(tmp_path: Path) -> None:
    out = "collected 12 items\n12 passed in 0.31s\n"
    assert unmet(tmp_path, out, stdout_matches=r"^\d+ passed") is None  # ^ at any line
    assert unmet(tmp_path, out, stdout_matches=r"passed in \d+\.\d+s$") is None
    assert unmet(tmp_path, out, stdout_matches=r"[1-9]\d* failed") == (
        "expected stdout to match '[1-9]\\\\d* failed'"
    )


def test_files_exist_and_absent(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.js").write_text("x")
    assert unmet(tmp_path, file_exists="dist/app.js") is None
    assert unmet(tmp_path, file_exists="dist/app.min.js") == (
        "expected file dist/app.min.js to exist"
    )
    assert unmet(tmp_path, file_absent="dist/debug.log") is None
    assert unmet(tmp_path, file_absent="dist/app.js") == "expected file dist/app.js to be absent"
    # Every expectation must hold; the first that does not is the reason.
    assert (
        unmet(tmp_path, "ok\n", stdout_contains="ok", file_exists="dist/app.js", file_absent="dist")
        == "expected file dist to be absent"
    )


def test_paths_never_leave_the_checkout(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (tree / "link").symlink_to(tmp_path)
    # Spec validation rejects these; the check itself does not look outside either.
    assert "contains '..'" in (unmet(tree, file_exists="../outside.txt") or "")
    assert "is absolute" in (unmet(tree, file_exists=str(tmp_path / "outside.txt")) or "")
    assert "through a symlink out of the checkout" in (
        unmet(tree, file_exists="link/outside.txt") or ""
    )


def test_the_output_is_the_whole_log(tmp_path: Path) -> None:
    log = tmp_path / "gate.log"
    log.write_bytes(b"stdout line\nstderr line \xff\n")
    assert read_output(log) == "stdout line\nstderr line \ufffd\n"
    assert read_output(tmp_path / "missing.log") == ""


# -- uet validate ------------------------------------------------------------------------------

SPEC = """\
phase_id: P
workstreams:
  - workstream_id: a
    execution_request: {{command: "true"}}
    acceptance_criteria:
      gates:
        - {{gate_id: build, command: "true", expect: {expect}}}
"""


@pytest.mark.parametrize(
    ("expect", "line"),
    [
        pytest.param(
            "{file_exists: ../secret}",
            "$.workstreams[0].acceptance_criteria.gates[0].expect.file_exists: '../secret' "
            "contains '..'; expect paths cannot leave the checkout",
            id="parent",
        ),
        pytest.param(
            "{file_absent: /etc/passwd}",
            "$.workstreams[0].acceptance_criteria.gates[0].expect.file_absent: '/etc/passwd' "
            "is absolute; expect paths are relative to the checkout",
            id="absolute",
        ),
        pytest.param(
            "{stdout_matches: 'collected (\\d+ items'}",
            "$.workstreams[0].acceptance_criteria.gates[0].expect.stdout_matches: not a regular "
            "expression: missing ), unterminated subpattern at position 10",
            id="regex",
        ),
    ],
)
def test_validate_rejects_unusable_expectations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: str, line: str
) -> None:
    spec = tmp_path / "phase.yaml"
    spec.write_text(SPEC.format(expect=expect))
    code = main(["validate", str(spec)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [x for x in err.splitlines() if x]
    assert code == 2
    assert len(lines) == 1 and lines[0].endswith(line), lines


def test_validate_accepts_paths_inside_the_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "phase.yaml"
    spec.write_text(SPEC.format(expect="{file_exists: dist/app.js, stdout_matches: '^ok$'}"))
    assert main(["validate", str(spec)]) == 0, capsys.readouterr()


# -- through the real dev server --------------------------------------------------------------


def events(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def ledger(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def marker_gate(path: Path) -> dict:
    """A gate that leaves a file behind when it runs."""
    return {"gates": [{"gate_id": "unit", "command": f"touch {path}"}]}


async def test_an_ai_tool_that_changes_nothing_fails_the_workstream(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    fake_tools: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("UET_FAKE_SCENARIO", "no_change")
    repo: Path = make_repo({"a.txt": "a\n"})
    ran = tmp_path / "gate-ran"
    spec = phase(
        workstreams=[  # review: on_failure (the default), and still nobody is asked
            {
                "workstream_id": "a",
                "execution_request": {"tool_id": "codex", "prompt": "WRITE a.txt: b"},
                "acceptance_criteria": marker_gate(ran),
            },
            {
                "workstream_id": "b",
                "dependencies": ["a"],
                "execution_request": {"command": "echo b > b.txt"},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.FAILED
    a = record.workstreams["a"]
    assert a.status == WorkstreamState.FAILED
    assert a.reason == (
        "codex changed nothing (no_change); set allow_no_change: true if that can be right"
    )
    assert record.workstreams["b"].status == WorkstreamState.BLOCKED
    assert not ran.exists(), "no gates ran on the base"
    assert not record.reviews
    kinds = [e["type"] for e in events(record)]
    assert "NO_CHANGE" in kinds
    assert "GATE_PASSED" not in kinds and "GATE_FAILED" not in kinds
    assert len(fake_tools.read_text().splitlines()) == 1, "one tool run, no fix attempt"


async def test_allow_no_change_and_plain_commands_complete(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    fake_tools: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("UET_FAKE_SCENARIO", "no_change")
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ai",
                "execution_request": {"tool_id": "claude", "prompt": "WRITE a.txt: b"},
                "allow_no_change": True,
                "acceptance_criteria": marker_gate(tmp_path / "ai-gate"),
            },
            {
                "workstream_id": "sh",
                "execution_request": {"command": "true"},
                "acceptance_criteria": marker_gate(tmp_path / "sh-gate"),
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    for ws_id in ("ai", "sh"):
        ws = record.workstreams[ws_id]
        assert ws.status == WorkstreamState.COMPLETED and ws.commit is None
        assert (tmp_path / f"{ws_id}-gate").exists(), "its gates ran, on the base"
    no_change = [e["workstream_id"] for e in events(record) if e["type"] == "NO_CHANGE"]
    assert sorted(no_change) == ["ai", "sh"]
    assert not ledger(record)


async def test_a_gate_that_exits_0_without_its_expectation_fails_and_gets_a_fix_attempt(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    tool = (  # the bundle only with the feedback of a failed gate
        'mkdir -p dist; if [ -n "$UET_FEEDBACK_FILE" ]; then echo ready > dist/app.js; '
        "else echo todo > dist/app.js; fi"
    )
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "build",
                "execution_request": {"command": tool},
                "acceptance_criteria": {
                    "gates": [
                        {
                            "gate_id": "bundle",
                            "command": "cat dist/app.js",  # exits 0 either way
                            "expect": {"stdout_contains": "ready", "file_exists": "dist/app.js"},
                        }
                    ]
                },
            }
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert show(repo, record.head_sha or "", "dist/app.js") == "ready"
    failed = [e for e in events(record) if e["type"] == "GATE_FAILED"]
    assert [e["message"] for e in failed] == [
        "build: gate bundle failed (expectation not met: expected stdout to contain 'ready')"
    ]
    assert failed[0]["data"]["exit_code"] == 0
    assert [e["type"] for e in events(record)].count("FIX_ATTEMPT") == 1
    first, second = ledger(record)
    assert first["state"] == "dropped" and second["state"] == "committed"
    (gate,) = first["gates"]
    assert gate["status"] == "failed" and gate["signature"], gate


async def test_a_gate_that_should_fail_with_a_code_passes_with_it(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws",
                "execution_request": {"command": "echo b > a.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {
                    "gates": [
                        {
                            "gate_id": "refuses",
                            "command": "echo 'usage: x'; exit 2",
                            "expect": {"exit_code": 2, "stdout_matches": "^usage:"},
                        },
                        {
                            "gate_id": "wrong",
                            "after": ["refuses"],
                            "command": "true",
                            "expect": {"exit_code": 2},
                        },
                    ]
                },
            }
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    ws = record.workstreams["ws"]
    assert ws.status == WorkstreamState.FAILED
    assert (ws.reason or "").startswith("gate wrong exited with 0 (expected 2)"), ws.reason
    (entry,) = ledger(record)
    assert [(g["gate_id"], g["status"]) for g in entry["gates"]] == [
        ("refuses", "passed"),
        ("wrong", "failed"),
    ]


def undo_phase(oscillation: str, review: str = "never"):  # type: ignore[no-untyped-def]
    return phase(
        defaults={"review": review},
        workstreams=[
            {"workstream_id": "set", "execution_request": {"command": "echo fast > mode.txt"}},
            {
                "workstream_id": "undo",
                "dependencies": ["set"],
                "execution_request": {"command": "echo safe > mode.txt"},
                "patch_policy": {"oscillation": oscillation},
            },
        ],
    )


def patch_of(record, ws_id: str) -> dict:  # type: ignore[no-untyped-def]
    return next(e for e in ledger(record) if e["workstream_id"] == ws_id)


async def test_oscillation_allow_lets_a_revert_through_and_says_so(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"mode.txt": "safe\n"})
    record = await run_phase(client, settings, run_input(undo_phase("allow"), repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert show(repo, record.head_sha or "", "mode.txt") == "safe"
    set_id = patch_of(record, "set")["patch_id"]
    undo = patch_of(record, "undo")
    assert undo["state"] == "committed"
    warning = f"oscillation (allowed): exactly reverses patch {set_id}, already integrated"
    assert undo["validation"]["errors"] == [warning]
    assert undo["validation"]["constraints_ok"] is True
    validated = next(h for h in undo["state_history"] if h["state"] == "validated")
    assert validated["reason"].endswith(f"; {warning}")


async def test_oscillation_refuse_is_the_default(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"mode.txt": "safe\n"})
    record = await run_phase(client, settings, run_input(undo_phase("refuse"), repo))
    undo = record.workstreams["undo"]
    set_id = patch_of(record, "set")["patch_id"]
    assert undo.status == WorkstreamState.FAILED
    assert undo.reason == (
        f"patch quarantined: oscillation: exactly reverses patch {set_id}, already integrated"
    )
    assert show(repo, record.head_sha or "", "mode.txt") == "fast"
    assert not record.reviews


async def test_oscillation_review_asks_a_person_even_with_review_never(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"mode.txt": "safe\n"})
    handle = await start_phase(client, settings, run_input(undo_phase("review"), repo))
    await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    assert (request.workstream_id, request.reason) == ("undo", "quarantined")
    assert "patch_policy.oscillation is review: a person decides" in request.summary
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        ReviewDecision(review_id=request.review_id, decision="approve", reviewer="alice"),
    )
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert show(repo, record.head_sha or "", "mode.txt") == "safe"


async def test_oscillation_review_in_an_unattended_run_fails(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"mode.txt": "safe\n"})
    record = await run_phase(
        client, settings, run_input(undo_phase("review", review="on_failure"), repo, no_review=True)
    )
    undo = record.workstreams["undo"]
    assert undo.status == WorkstreamState.FAILED
    assert (undo.reason or "").startswith("patch quarantined: oscillation: exactly reverses")
    assert (undo.reason or "").endswith(
        "patch_policy.oscillation is review: nobody reviews this run"
    )
    assert not record.reviews
