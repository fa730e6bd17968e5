"""The template detector, `uet templates`, and the suggestions `uet validate` and `uet plan`
print from the history of earlier runs (a SQLite telemetry database filled through the
Recorder; no Temporal server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.lib.telemetry import templates_detect as detect
from activities.lib.telemetry.recorder import ExecutionFact, Recorder, RunFact, now
from activities.lib.telemetry.shapes import shape_fact
from activities.lib.telemetry.store import Telemetry, database_url
from activities.lib.telemetry.suggestions import suggest
from runtime.specfile import load_spec
from schemas.spec import PhaseSpec, WorkstreamSpec

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("auth", "billing", "search")


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UET_DATABASE_URL", raising=False)
    monkeypatch.delenv("UET_DISABLE_LEARNING", raising=False)


def phase(workstreams: list[dict[str, Any]], **fields: Any) -> PhaseSpec:
    return PhaseSpec.model_validate({"phase_id": "PH-DOCS", **fields, "workstreams": workstreams})


def docs_ws(module: str, ws_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "workstream_id": ws_id or f"ws-{module}",
        "title": f"Docs for {module}",
        "task_kind": "docs",
        "execution_request": {
            "tool_id": "claude",
            "prompt": f"Document the {module} module in docs/{module}.md",
        },
        "constraints": {"file_scope": {"allowed_paths": [f"src/{module}/**", f"docs/{module}.md"]}},
        "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "pytest -q"}]},
        **fields,
    }


def record_plan(home: Path, run_id: str, spec: PhaseSpec) -> None:
    """What the plan activity writes for a run: the run and one shape per workstream."""
    Recorder(home).record(
        RunFact(run_id=run_id, phase_id=spec.phase_id, status="completed"),
        *(shape_fact(run_id, spec.phase_id, ws) for ws in spec.workstreams),
    )


def execution(run_id: str, ws_id: str, n: int, **fields: Any) -> ExecutionFact:
    base: dict[str, Any] = {"attempt": 1, "kind": "tool", "outcome": "changed", "at": now()}
    return ExecutionFact(
        key=f"t/{run_id}/{ws_id}/{n}", run_id=run_id, workstream_id=ws_id, **{**base, **fields}
    )


def docs_history(home: Path) -> None:
    """Three runs, each with one docs workstream of the same shape (and one other workstream
    that has a shape of its own)."""
    for i, module in enumerate(MODULES):
        other = {
            "workstream_id": "ws-lint",
            "execution_request": {"command": "ruff check ."},
        }
        record_plan(home, f"R{i}", phase([docs_ws(module), other], phase_id=f"PH-{i}"))


def the_proposal(home: Path) -> detect.Proposal:
    store = Telemetry.open(database_url(home))
    try:
        with store.session() as session:
            found = detect.proposals(session)
    finally:
        store.close()
    assert len(found) == 1, [p.id for p in found]
    return found[0]


def phase_from(proposal: detect.Proposal) -> str:
    """A phase file that uses the proposal: its template, and each member as a workstream."""
    return (
        "phase_id: PH-NEW\ntemplates:\n"
        + textwrap.indent(proposal.template_yaml(), "  ")
        + "workstreams:\n"
        + textwrap.indent(proposal.uses_yaml(), "  ")
    )


def same_work(a: WorkstreamSpec, b: WorkstreamSpec) -> None:
    assert a.execution_request == b.execution_request
    assert a.constraints == b.constraints
    assert [g.model_dump() for g in a.acceptance_criteria.gates] == [
        g.model_dump() for g in b.acceptance_criteria.gates
    ]
    assert (a.title, a.task_kind) == (b.title, b.task_kind)


# -- the detector ---------------------------------------------------------------------------------


def test_split_keeps_what_is_shared_at_word_boundaries() -> None:
    assert detect.split(["src/auth/**", "src/billing/**"]) == ("src/", ["auth", "billing"], "/**")
    assert detect.split(["src/auth/**", "src/auth2/**"]) == ("src/", ["auth", "auth2"], "/**")
    assert detect.split(["Fix the login page", "Fix the logout page"]) == (
        "Fix the ",
        ["login", "logout"],
        " page",
    )


def test_similar_workstreams_of_three_runs_make_a_proposal(tmp_path: Path) -> None:
    docs_history(tmp_path)
    proposal = the_proposal(tmp_path)
    key = ("claude", "docs", proposal.gate_set, "docs/<>,src/<>/**")
    assert proposal.key == key and proposal.id == detect.proposal_id(key)
    assert proposal.id.startswith("T-") and len(proposal.id) == 10
    assert (proposal.name, proposal.runs, proposal.variables) == ("docs", 3, ["module"])
    body = proposal.template["workstream"]
    assert body["title"] == "Docs for {{ module }}"
    assert body["execution_request"] == {
        "tool_id": "claude",
        "prompt": "Document the {{ module }} module in docs/{{ module }}.md",
    }
    assert body["constraints"]["file_scope"]["allowed_paths"] == [
        "src/{{ module }}/**",
        "docs/{{ module }}.md",
    ]
    assert proposal.template["variables"] == {"module": None}
    assert [(m.run_id, m.workstream_id, m.with_) for m in proposal.members] == [
        ("R0", "ws-auth", {"module": "auth"}),
        ("R1", "ws-billing", {"module": "billing"}),
        ("R2", "ws-search", {"module": "search"}),
    ]
    assert proposal.note is None
    # The same history, the same proposal, to the byte.
    assert json.dumps(the_proposal(tmp_path).to_json()) == json.dumps(proposal.to_json())


def test_the_proposal_is_a_template_that_validates_and_gives_the_same_work(
    tmp_path: Path,
) -> None:
    docs_history(tmp_path)
    spec_file = tmp_path / "new.yaml"
    spec_file.write_text(phase_from(the_proposal(tmp_path)))
    made = load_spec(spec_file).spec  # the checks of `uet validate`
    originals = phase([docs_ws(m) for m in MODULES])
    for ws in originals.workstreams:
        same_work(made.workstream(ws.workstream_id), ws)
        assert made.workstream(ws.workstream_id).template == "docs"


def test_differences_no_variable_carries_stay_with_the_member(tmp_path: Path) -> None:
    """A field only some members have, and a list of another length, stay the member's own."""
    specs = [
        docs_ws("auth", resilience_policy={"timeout_s": 60}),
        docs_ws("billing", execution_request={"tool_id": "claude", "prompt": "Do billing"}),
        docs_ws("search"),
    ]
    specs[2]["execution_request"]["model"] = "opus"
    for i, spec in enumerate(specs):
        record_plan(tmp_path, f"R{i}", phase([spec]))
    proposal = the_proposal(tmp_path)
    own = {m.workstream_id: m.own for m in proposal.members}
    assert own["ws-search"] == {"execution_request": {"model": "opus"}}
    assert own["ws-auth"] == {"resilience_policy": {"timeout_s": 60}}
    spec_file = tmp_path / "new.yaml"
    spec_file.write_text(phase_from(proposal))
    made = load_spec(spec_file).spec
    for ws in phase(specs).workstreams:
        same_work(made.workstream(ws.workstream_id), ws)
        assert made.workstream(ws.workstream_id).resilience_policy == ws.resilience_policy


def test_too_few_runs_or_identical_reruns_make_no_proposal(tmp_path: Path) -> None:
    reruns, two_runs = tmp_path / "reruns", tmp_path / "two-runs"
    for run in ("R1", "R2", "R3"):  # the same workstream again and again: nothing to vary
        record_plan(reruns, run, phase([docs_ws("auth")]))
    record_plan(two_runs, "R0", phase([docs_ws("auth")]))
    record_plan(two_runs, "R1", phase([docs_ws("billing"), docs_ws("search")]))
    for home in (reruns, two_runs):
        store = Telemetry.open(database_url(home))
        with store.session() as session:
            assert detect.proposals(session) == []
        store.close()


def test_members_that_use_a_template_are_counted_and_noted(tmp_path: Path) -> None:
    docs_history(tmp_path)
    template = {
        "variables": {"m": None},
        "workstream": {k: v for k, v in docs_ws("{{ m }}").items() if k != "workstream_id"},
    }
    spec = phase(
        [{"workstream_id": "ws-web", "template": "page", "with": {"m": "web"}}],
        templates={"page": template},
    )
    record_plan(tmp_path, "R3", spec)
    proposal = the_proposal(tmp_path)
    assert len(proposal.members) == 4 and proposal.uses_templates == ["page"]
    assert proposal.note == "1 of 4 already use a template (page)"
    assert "template" not in proposal.template["workstream"]


# -- the suggester --------------------------------------------------------------------------------


def test_a_workstream_that_fits_a_phase_template_or_a_proposal(tmp_path: Path) -> None:
    docs_history(tmp_path)
    template = {
        "variables": {"m": None},
        "workstream": {k: v for k, v in docs_ws("{{ m }}").items() if k != "workstream_id"},
    }
    with_template = phase(
        [docs_ws("web"), {"workstream_id": "ws-cli", "template": "page", "with": {"m": "cli"}}],
        templates={"page": template},
    )
    lines = suggest(with_template, tmp_path)
    assert lines[0].startswith("suggestion: ws-web: could use template 'page'"), lines
    assert not any(line.startswith("suggestion: ws-cli: could") for line in lines)
    proposal = the_proposal(tmp_path)
    lines = suggest(phase([docs_ws("web")]), tmp_path)
    assert lines[0] == (
        f"suggestion: ws-web: fits template proposal {proposal.id}; `uet templates show "
        f"{proposal.id}` prints it (3 similar workstreams in 3 runs)"
    )


def test_a_tool_that_fails_on_the_task_kind_and_the_one_that_does_better(tmp_path: Path) -> None:
    facts = [
        execution("R1", f"a{n}", n, tool_id="aider", task_kind="docs", outcome=outcome)
        for n, outcome in enumerate(["failed"] * 4 + ["changed"] * 2)
    ]
    facts += [execution("R1", f"c{n}", n, tool_id="claude", task_kind="docs") for n in range(5)]
    facts += [execution("R1", f"x{n}", n, tool_id="codex", task_kind="docs") for n in range(4)]
    Recorder(tmp_path).record(*facts)
    ws = docs_ws("web", execution_request={"tool_id": "aider", "prompt": "p"})
    lines = [line for line in suggest(phase([ws]), tmp_path) if "tool aider" in line]
    assert lines == [
        "suggestion: ws-web: tool aider fails 67% of docs tasks (4 of 6 runs); claude does "
        "better (100% of 5 runs): tool_id: claude"
    ]
    # Too few runs of a tool say nothing: codex has 4.
    ws = docs_ws("web", execution_request={"tool_id": "codex", "prompt": "p"})
    assert not [line for line in suggest(phase([ws]), tmp_path) if "tool " in line]


def test_a_gate_known_to_be_flaky(tmp_path: Path) -> None:
    record_plan(tmp_path, "R1", phase([docs_ws("auth")]))
    gate: dict[str, Any] = {"kind": "gate", "gate_id": "unit", "tree_sha": "t1"}
    Recorder(tmp_path).record(
        execution("R1", "ws-auth", 1, outcome="failed", **gate),
        execution("R1", "ws-auth", 2, outcome="passed", **{**gate, "attempt": 2}),
    )
    lines = [line for line in suggest(phase([docs_ws("web")]), tmp_path) if "flaky" in line]
    assert lines == [
        "suggestion: ws-web: gate unit is known to be flaky: set retry_flaky: true on it (or "
        "defaults.retry_flaky: true) (failed then passed on the same tree 1 time in 2 gate runs)"
    ]
    retried = docs_ws("web")
    retried["acceptance_criteria"]["gates"][0]["retry_flaky"] = True
    assert not [line for line in suggest(phase([retried]), tmp_path) if "flaky" in line]
    assert not [
        line
        for line in suggest(phase([docs_ws("web")], defaults={"retry_flaky": True}), tmp_path)
        if "flaky" in line
    ]
    other = docs_ws("web")
    other["acceptance_criteria"]["gates"][0]["command"] = "make test"  # the same id, not the gate
    assert not [line for line in suggest(phase([other]), tmp_path) if "flaky" in line]


def test_a_missing_duration_the_history_knows(tmp_path: Path) -> None:
    facts: list[Any] = []
    for n, seconds in enumerate([10.0, 20.0, 30.0]):
        run = f"R{n}"
        facts.append(RunFact(run_id=run, phase_id="PH-DOCS", status="completed"))
        facts.append(execution(run, "ws-auth", 1, duration_s=seconds))
        facts.append(execution(run, "ws-auth", 2, kind="gate", gate_id="unit", duration_s=5.0))
    Recorder(tmp_path).record(*facts)
    lines = [line for line in suggest(phase([docs_ws("auth")]), tmp_path) if "duration" in line]
    assert len(lines) == 1 and lines[0].startswith(
        "suggestion: ws-auth: add estimated_duration_s: 25 (median of"
    ), lines
    known = docs_ws("auth", estimated_duration_s=40)
    assert not [line for line in suggest(phase([known]), tmp_path) if "duration" in line]


def test_no_suggestions_without_history_or_with_learning_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = phase([docs_ws("web")])
    assert suggest(spec, tmp_path) == []
    assert not (tmp_path / "uet.db").exists()  # nothing created to find out
    docs_history(tmp_path)
    assert suggest(spec, tmp_path)
    assert suggest(phase([docs_ws("web")], learning={"mode": "off"}), tmp_path) == []
    monkeypatch.setenv("UET_DISABLE_LEARNING", "1")
    assert suggest(spec, tmp_path) == []


# -- the command line -----------------------------------------------------------------------------


def uet(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UET_HOME": str(home)}
    env.pop("UET_DATABASE_URL", None)
    env.pop("UET_DISABLE_LEARNING", None)
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_uet_templates_without_history(tmp_path: Path) -> None:
    listed = uet("templates", "list", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert "no history yet" in listed.stderr
    assert not (tmp_path / "uet.db").exists()
    spec_file = tmp_path / "phase.yaml"
    spec_file.write_text(yaml.safe_dump({"phase_id": "PH-DOCS", "workstreams": [docs_ws("web")]}))
    checked = uet("validate", str(spec_file), home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "suggestion:" not in checked.stdout + checked.stderr
    assert not (tmp_path / "uet.db").exists()


def test_uet_templates_list_and_show(tmp_path: Path) -> None:
    docs_history(tmp_path)
    listed = uet("templates", "list", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [summary] = json.loads(listed.stdout)
    proposal_id = summary["id"]
    assert summary["variables"] == ["module"] and summary["runs"] == 3
    assert [m["workstream_id"] for m in summary["members"]] == [
        "ws-auth",
        "ws-billing",
        "ws-search",
    ]

    shown = uet("templates", "show", proposal_id, "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["id"] == proposal_id and doc["template"]["variables"] == {"module": None}
    assert [m["with"] for m in doc["members"]] == [{"module": m} for m in MODULES]
    # The YAML it prints, with the members' uses, is a phase `uet validate` accepts.
    text = (
        "phase_id: PH-NEW\ntemplates:\n"
        + textwrap.indent(doc["yaml"], "  ")
        + "workstreams:\n"
        + textwrap.indent(yaml.safe_dump([m["use"] for m in doc["members"]], sort_keys=False), "  ")
    )
    spec_file = tmp_path / "new.yaml"
    spec_file.write_text(text)
    checked = uet("validate", str(spec_file), home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{spec_file}: ok — phase PH-NEW, 3 workstreams")

    human = uet("templates", "show", proposal_id, home=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "# paste under `templates:` in a phase file:\ndocs:\n" in human.stdout
    assert "src/{{ module }}/**" in human.stdout and "run R1, workstream ws-billing" in human.stdout

    missing = uet("templates", "show", "T-00000000", home=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("uet: no template proposal T-00000000;")


def test_uet_validate_and_plan_print_suggestions(tmp_path: Path) -> None:
    docs_history(tmp_path)
    spec_file = tmp_path / "phase.yaml"
    spec_file.write_text(yaml.safe_dump({"phase_id": "PH-DOCS", "workstreams": [docs_ws("web")]}))
    checked = uet("validate", str(spec_file), home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    ok, *suggestions = checked.stdout.splitlines()
    assert ok.startswith(f"{spec_file}: ok")
    assert suggestions and suggestions[0].startswith("suggestion: ws-web: fits template proposal")

    planned = uet("plan", str(spec_file), home=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[-1] == suggestions[-1]

    as_json = uet("plan", str(spec_file), "--json", home=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["suggestions"] == suggestions and doc["waves"] == [["ws-web"]]
