"""The patch-first pipeline end to end: validation, quarantine, fix loop, ledger, events, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import jsonschema
from helpers import git_out, phase, run_input, run_phase, show
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from runtime.plugin import WORKFLOWS
from runtime.settings import Settings
from schemas.export import SCHEMA_DIR
from schemas.ledger import PatchState, is_legal_history
from schemas.run import PhaseState, WorkstreamState
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent

FIX_TOOL = (
    # Broken at first; with feedback from the failed gate it writes the fix, and keeps a
    # copy of the feedback so the test can read what the tool was told.
    'mkdir -p fix; if [ -n "$UET_FEEDBACK_FILE" ]; then cp "$UET_FEEDBACK_FILE" fix/feedback.md; '
    "echo ok > fix/state.txt; else echo broken > fix/state.txt; fi"
)
OSCILLATING_TOOL = (
    # A on attempt 1, B on attempt 2, A again on attempt 3: going round in circles.
    'if [ "$UET_ATTEMPT" = 2 ]; then echo B > osc.txt; else echo A > osc.txt; fi'
)


def schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text())


async def test_pipeline_quarantine_fix_loop_and_ledger(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"README.md": "readme\n", "src/scope/keep.txt": "k\n"})
    spec = phase(
        max_parallel=4,
        defaults={"review": "never"},  # failures fail here; tests/test_review.py asks people
        workstreams=[
            {
                "workstream_id": "ws-scope",
                "execution_request": {"command": "echo x > src/scope/a.txt && echo y >> README.md"},
                "constraints": {"file_scope": {"allowed_paths": ["src/scope/**"]}},
            },
            {
                "workstream_id": "ws-scope-child",
                "dependencies": ["ws-scope"],
                "execution_request": {"command": "touch child.txt"},
            },
            {
                "workstream_id": "ws-big",
                "execution_request": {"command": "seq 1 50 > big.txt"},
                "patch_policy": {"max_lines_changed": 10},
            },
            {
                "workstream_id": "ws-fix",
                "execution_request": {"command": FIX_TOOL},
                "constraints": {"file_scope": {"allowed_paths": ["fix/**"]}},
                "acceptance_criteria": {
                    "gates": [
                        {
                            "gate_id": "unit",
                            "kind": "unit",
                            "command": "echo 'expected ok, got:'; cat fix/state.txt; grep -qx ok fix/state.txt",
                        },
                    ]
                },
            },
            {
                "workstream_id": "ws-osc",
                "execution_request": {"command": OSCILLATING_TOOL},
                "resilience_policy": {"max_fix_attempts": 3},
                "acceptance_criteria": {"gates": [{"gate_id": "never", "command": "exit 1"}]},
            },
            {"workstream_id": "ws-ok", "execution_request": {"command": "echo fine > ok.txt"}},
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))

    states = {w: s.status for w, s in record.workstreams.items()}
    assert states == {
        "ws-scope": WorkstreamState.FAILED,
        "ws-scope-child": WorkstreamState.BLOCKED,
        "ws-big": WorkstreamState.FAILED,
        "ws-fix": WorkstreamState.COMPLETED,
        "ws-osc": WorkstreamState.FAILED,
        "ws-ok": WorkstreamState.COMPLETED,
    }
    assert record.status == PhaseState.FAILED
    reasons = {w: s.reason or "" for w, s in record.workstreams.items()}
    assert reasons["ws-scope"].startswith("patch quarantined: out_of_scope: README.md")
    assert reasons["ws-big"].startswith("patch quarantined: too_many_lines: 50 lines changed")
    assert reasons["ws-osc"].startswith(
        "patch quarantined: oscillation: repeats attempt 1 exactly; it was fixing gate never"
    )

    # Patches refused by policy were never applied: no branch for ws-scope or ws-big (ws-osc's
    # first attempts were applied to run their gates); none of it is on the integration head.
    branches = git_out(
        repo, "for-each-ref", "--format=%(refname:short)", f"refs/heads/uet/{record.run_id}/ws"
    )
    assert sorted(b.rsplit("/", 1)[1] for b in branches.splitlines()) == [
        "ws-fix",
        "ws-ok",
        "ws-osc",
    ]
    head = record.head_sha or ""
    tree = git_out(repo, "ls-tree", "-r", "--name-only", head).splitlines()
    assert "big.txt" not in tree and "src/scope/a.txt" not in tree and "osc.txt" not in tree
    assert show(repo, head, "fix/state.txt") == "ok"
    feedback = show(repo, head, "fix/feedback.md")
    assert "failed acceptance gate `unit`" in feedback
    assert "exit code: 1" in feedback and "expected ok, got:\nbroken" in feedback

    # The ledger: every entry valid against the committed schema, every history legal.
    folder = Path(record.report_dir or "")
    entries = [json.loads(line) for line in (folder / "ledger.jsonl").read_text().splitlines()]
    for entry in entries:
        jsonschema.validate(entry, schema("patch_ledger_entry.v1.json"))
        assert is_legal_history([PatchState(h["state"]) for h in entry["state_history"]]), entry
    by_ws = defaultdict(list)
    for entry in entries:
        by_ws[entry["workstream_id"]].append(entry)
    first, second = sorted(by_ws["ws-fix"], key=lambda e: e["attempt"])
    assert [h["state"] for h in first["state_history"]] == [
        "created",
        "validated",
        "queued",
        "applied",
        "dropped",
    ]
    assert [h["state"] for h in second["state_history"]] == [
        "created",
        "validated",
        "queued",
        "applied",
        "verified",
        "committed",
    ]
    assert second["replaces"] == first["patch_id"]
    assert second["validation"]["tests_ran"] and second["validation"]["tests_passed"]
    assert second["commit"] == record.workstreams["ws-fix"].commit
    assert [e["state"] for e in by_ws["ws-scope"]] == ["quarantined"]
    assert by_ws["ws-scope"][0]["validation"]["scope_ok"] is False
    assert [e["state"] for e in by_ws["ws-big"]] == ["quarantined"]
    assert by_ws["ws-big"][0]["validation"]["constraints_ok"] is False
    osc = sorted(by_ws["ws-osc"], key=lambda e: e["attempt"])
    assert [e["state"] for e in osc] == ["dropped", "dropped", "quarantined"]
    assert osc[2]["validation"]["errors"] == ["oscillation: repeats attempt 1 exactly"]
    assert [e["state"] for e in by_ws["ws-ok"]] == ["committed"]
    assert "ws-scope-child" not in by_ws

    # Events: valid, ordered, and telling the story.
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    for event in events:
        jsonschema.validate(event, schema("run_event.v1.json"))
    assert [e["event_id"] for e in events] == sorted(e["event_id"] for e in events)
    kinds = [e["type"] for e in events]
    for kind in (
        "RUN_STARTED",
        "PATCH_CREATED",
        "PATCH_VALIDATED",
        "PATCH_QUARANTINED",
        "PATCH_APPLIED",
        "GATE_FAILED",
        "FIX_ATTEMPT",
        "GATE_PASSED",
        "PATCH_COMMITTED",
        "WORKSTREAM_BLOCKED",
        "WAVE_INTEGRATED",
        "RUN_FAILED",
    ):
        assert kind in kinds, kind
    assert kinds.count("FIX_ATTEMPT") == 1 + 2  # ws-fix once, ws-osc twice
    jsonschema.validate(json.loads((folder / "run.json").read_text()), schema("run_record.v1.json"))

    # Quarantined patches are kept, raw, with the reason.
    kept = sorted(
        p.relative_to(folder / "quarantine").as_posix() for p in (folder / "quarantine").rglob("*")
    )
    assert [k for k in kept if k.endswith(".diff")] == [
        f"ws-big/01-{by_ws['ws-big'][0]['patch_id']}.diff",
        f"ws-osc/03-{osc[2]['patch_id']}.diff",
        f"ws-scope/01-{by_ws['ws-scope'][0]['patch_id']}.diff",
    ]
    report = json.loads(
        (
            folder
            / "quarantine"
            / "ws-scope"
            / f"01-{by_ws['ws-scope'][0]['patch_id']}.report.json"
        ).read_text()
    )
    assert report["validation"]["errors"][0]["code"] == "out_of_scope"
    raw = folder / "quarantine" / "ws-big" / f"01-{by_ws['ws-big'][0]['patch_id']}.diff"
    assert raw.read_bytes().startswith(b"diff --git a/big.txt b/big.txt\n")

    # The phase answers its ledger query with the same entries.
    live = await client.get_workflow_handle_for(PhaseWorkflow.run, record.workflow_id).query(
        PhaseWorkflow.ledger
    )
    assert sorted(e.patch_id for e in live) == sorted(e["patch_id"] for e in entries)

    # And the CLI shows it to people.
    env = {
        **os.environ,
        "UET_HOME": str(settings.home),
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
    }

    def uet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "starter", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = uet("ledger", record.run_id, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == entries
    table = uet("ledger", record.run_id)
    assert table.returncode == 0 and "ws-fix" in table.stdout and "replaces" in table.stdout
    shown = uet("show", record.run_id, "ws-big")
    assert shown.returncode == 0, shown.stderr
    assert "too_many_lines: 50 lines changed" in shown.stdout
    assert "+++ b/big.txt" in shown.stdout and "quarantined in" in shown.stdout
    shown = uet("show", record.run_id, "ws-fix")
    assert "gate unit: failed (exited with 1)" in shown.stdout  # attempt 1, with its output
    assert "    | broken" in shown.stdout
    assert "gate unit: passed" in shown.stdout and "replaces" in shown.stdout
    unknown = uet("show", record.run_id, "ws-nope")
    assert unknown.returncode == 2 and "has no workstream 'ws-nope'" in unknown.stderr

    # Fix loop, quarantine and oscillation histories replay with the current code.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=client.data_converter)
    for wf_id in [
        record.workflow_id,
        *(f"{record.workflow_id}/ws/{w}" for w in ("ws-fix", "ws-osc", "ws-scope", "ws-big")),
    ]:
        await replayer.replay_workflow(await client.get_workflow_handle(wf_id).fetch_history())


async def test_undoing_an_integrated_patch_is_oscillation(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"config.txt": "mode = safe\n"})
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws-set",
                "execution_request": {"command": "echo 'mode = fast' > config.txt"},
            },
            {
                "workstream_id": "ws-undo",
                "dependencies": ["ws-set"],
                "execution_request": {"command": "echo 'mode = safe' > config.txt"},
            },
            {
                "workstream_id": "ws-other",
                "dependencies": ["ws-set"],
                "execution_request": {"command": "echo 'extra' > other.txt"},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    set_patch = next(
        json.loads(line)["patch_id"]
        for line in (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
        if json.loads(line)["workstream_id"] == "ws-set"
    )
    assert record.workstreams["ws-other"].status == WorkstreamState.COMPLETED
    assert record.workstreams["ws-undo"].status == WorkstreamState.FAILED
    assert record.workstreams["ws-undo"].reason == (
        f"patch quarantined: oscillation: exactly reverses patch {set_patch}, already integrated"
    )
    assert show(repo, record.head_sha or "", "config.txt") == "mode = fast"
