"""`uet convert`: the legacy → phase spec mapping (pure), the command, and the samples in
examples/legacy converted, validated and run on the demo repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_input, run_phase, show
from temporalio.client import Client
from temporalio.worker import Worker

from activities.lib.artifacts import LocalArtifactStore
from runtime.cli.phase_files import convert as convert_command
from runtime.errors import UserError
from runtime.legacy import DEFAULT_PHASE_ID, LegacyFormatError, Unmapped, convert
from runtime.legacy.model import is_identifier, normalize_id
from runtime.settings import Settings
from runtime.specfile import import_patch_files, load_spec
from schemas.run import PhaseState, WorkstreamState
from schemas.spec_check import check_spec

ROOT = Path(__file__).resolve().parent.parent
LEGACY = ROOT / "examples" / "legacy"
DEMO = ROOT / "examples" / "demo"


def one(ws: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], list[Unmapped]]:
    """Convert a single legacy workstream; its uet form and the notes."""
    result = convert([("a.json", ws)], **kwargs)
    [converted] = result.phase["workstreams"]
    return converted, result.unmapped


def notes(unmapped: list[Unmapped]) -> dict[str, str]:
    return {u.json_path: u.why for u in unmapped}


# -- the mapping, field by field ---------------------------------------------------------------


def test_every_field_of_a_workstream_maps() -> None:
    ws, unmapped = one(
        {
            "id": "ws-models",
            "title": "Add the models",
            "tool": "shell",
            "command": "python tools/add_models.py",
            "model": "m-1",
            "env": {"LEVEL": "2"},
            "files_scope": {
                "include": ["src/models/**", "./tests/test_models.py"],
                "exclude": ["src/models/legacy.py"],
            },
            "tasks": ["Write the models", "Test them"],
            "acceptance_tests": [
                "ruff check src",
                {"name": "unit", "cmd": "pytest -q", "type": "pytest", "timeout": "5m"},
            ],
            "depends_on": [],
            "circuit_breaker": {"max_failures": 2, "timeout_seconds": 90, "max_fixes": 0},
            "estimated_minutes": 2.5,
        }
    )
    assert unmapped == []
    assert ws == {
        "workstream_id": "ws-models",
        "title": "Add the models",
        "execution_request": {
            "tool_id": "shell",
            "command": "python tools/add_models.py",
            "model": "m-1",
            "env": {"LEVEL": "2"},
            "prompt": "1. Write the models\n2. Test them",
        },
        "constraints": {
            "file_scope": {
                "allowed_paths": ["src/models/**", "tests/test_models.py"],
                "forbidden_paths": ["src/models/legacy.py"],
            }
        },
        "acceptance_criteria": {
            "gates": [
                {"gate_id": "test-1", "kind": "unit", "command": "ruff check src"},
                {"gate_id": "unit", "kind": "unit", "command": "pytest -q", "timeout_s": 300},
            ]
        },
        "resilience_policy": {"max_attempts": 2, "max_fix_attempts": 0, "timeout_s": 90},
        "estimated_duration_s": 150,
    }


def test_only_what_the_legacy_file_says_is_written() -> None:
    ws, unmapped = one({"id": "ws-a", "command": "true"})
    assert ws == {
        "workstream_id": "ws-a",
        "execution_request": {"tool_id": "shell", "command": "true"},
    }
    assert unmapped == []


@pytest.mark.parametrize(
    ("legacy", "tool"),
    [
        ("aider", "aider"),
        ("claude", "claude"),
        ("claude-code", "claude"),
        ("Claude_Code", "claude"),
        ("codex", "codex"),
        ("shell", "shell"),
        ("sh", "shell"),
        ("cmd", "shell"),
        ("patch", "patch"),
    ],
)
def test_legacy_tool_names(legacy: str, tool: str) -> None:
    ws, unmapped = one({"id": "ws-a", "tool": legacy, "tasks": "do it"})
    assert ws["execution_request"]["tool_id"] == tool
    assert unmapped == []


def test_bash_commands_keep_running_under_bash() -> None:
    ws, _ = one({"id": "ws-a", "tool": "bash", "command": "[[ -n x ]] && touch y"})
    assert ws["execution_request"] == {
        "tool_id": "shell",
        "command": ["bash", "-c", "[[ -n x ]] && touch y"],
    }
    ws, _ = one({"id": "ws-a", "tool": "bash", "cmd": ["make", "all"]})
    assert ws["execution_request"] == {"tool_id": "shell", "command": ["make", "all"]}


def test_tool_inferred_when_missing() -> None:
    assert one({"id": "a", "cmd": "make"})[0]["execution_request"]["tool_id"] == "shell"
    assert one({"id": "a", "patch_file": "x.diff"})[0]["execution_request"] == {
        "tool_id": "patch",
        "patch_file": "x.diff",
    }
    assert "execution_request" not in one({"id": "a"})[0]


def test_patch_files_are_rebased_by_the_caller() -> None:
    seen = []

    def rebase(source: str, path: str) -> str:
        seen.append((source, path))
        return f"../legacy/{path}"

    ws, _ = one({"id": "a", "tool": "patch", "patch_file": "p.diff"}, rebase_path=rebase)
    assert ws["execution_request"]["patch_file"] == "../legacy/p.diff"
    assert seen == [("a.json", "p.diff")]


def test_unknown_tools_are_kept_and_reported() -> None:
    ws, unmapped = one({"id": "ws-a", "tool": "gpt-pilot", "tasks": "x"})
    assert ws["execution_request"]["tool_id"] == "gpt-pilot"
    [note] = unmapped
    assert (note.json_path, note.value, note.kind) == ("$.tool", "gpt-pilot", "kept")
    known = re.fullmatch(
        r"uet has no tool 'gpt-pilot' \(it knows ([a-z, ]+)\); kept as "
        r"tool_id, so validation reports it",
        note.why,
    )
    assert known and {"aider", "claude", "codex", "patch", "shell"} <= set(known[1].split(", "))
    result = check_spec(convert([("a.json", {"id": "ws-a", "tool": "gpt-pilot"})]).phase)
    assert result.problems[0].message.startswith("unknown tool 'gpt-pilot'")


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (["src/**"], {"allowed_paths": ["src/**"]}),
        ("docs/", {"allowed_paths": ["docs/"]}),
        ({"exclude": ["secrets/**"]}, {"forbidden_paths": ["secrets/**"]}),
        ({"include": "././a.py"}, {"allowed_paths": ["a.py"]}),
    ],
)
def test_files_scope_forms(scope: Any, expected: dict[str, Any]) -> None:
    ws, unmapped = one({"id": "a", "command": "true", "files_scope": scope})
    assert ws["constraints"] == {"file_scope": expected}
    assert unmapped == []


def test_files_scope_problems_are_reported() -> None:
    ws, unmapped = one({"id": "a", "files_scope": {"include": ["a"], "only": ["b"]}})
    assert ws["constraints"] == {"file_scope": {"allowed_paths": ["a"]}}
    assert notes(unmapped) == {"$.files_scope.only": "files_scope takes include and exclude only"}
    ws, unmapped = one({"id": "a", "files_scope": 7})
    assert "constraints" not in ws and list(notes(unmapped)) == ["$.files_scope"]


def test_tasks_become_one_prompt() -> None:
    def prompt(tasks: Any) -> Any:
        return one({"id": "a", "tasks": tasks})[0].get("execution_request")

    assert prompt("  Fix it  ") == {"prompt": "Fix it"}
    assert prompt(["Only this"]) == {"prompt": "Only this"}
    assert prompt(["One", "", "Two", "Three"]) == {"prompt": "1. One\n2. Two\n3. Three"}
    ws, unmapped = one({"id": "a", "tasks": [1, 2]})
    assert "execution_request" not in ws and list(notes(unmapped)) == ["$.tasks"]


def test_acceptance_test_objects() -> None:
    ws, unmapped = one(
        {
            "id": "a",
            "command": "true",
            "acceptance_tests": [
                {"name": "Unit tests", "command": "pytest", "type": "pytest"},
                {
                    "id": "unit-tests",
                    "cmd": ["ruff", "check"],
                    "kind": "Lint",
                    "timeout_seconds": 30,
                },
                {"name": "e2e", "command": "./e2e.sh", "type": "e2e", "timeout": "1h"},
                {"command": "bandit -r .", "type": "sast"},
                {"name": "perf", "command": "./bench", "type": "benchmark", "retries": 3},
                {"name": "no command"},
                "   ",
                42,
            ],
        }
    )
    assert ws["acceptance_criteria"]["gates"] == [
        {"gate_id": "unit-tests", "kind": "unit", "command": "pytest"},
        {"gate_id": "unit-tests-2", "kind": "lint", "command": ["ruff", "check"], "timeout_s": 30},
        {"gate_id": "e2e", "kind": "integration", "command": "./e2e.sh", "timeout_s": 3600},
        {"gate_id": "test-4", "kind": "security", "command": "bandit -r ."},
        {"gate_id": "perf", "kind": "custom", "command": "./bench"},
    ]
    assert notes(unmapped) == {
        "$.acceptance_tests[4].type": "no such gate kind in uet (custom, integration, lint, "
        "security, unit); the gate is 'custom'",
        "$.acceptance_tests[4].retries": "no gate field in uet (a gate has a name, kind, command "
        "and timeout)",
        "$.acceptance_tests[5].command": "a test needs a command; this test was left out",
        "$.acceptance_tests[6]": "an empty test command",
        "$.acceptance_tests[7]": "not a test command or a test object",
    }


def test_dependencies_follow_renamed_ids_across_files() -> None:
    result = convert(
        [
            ("one.json", {"id": "WS 1: Models!", "command": "true"}),
            (
                "two.json",
                [
                    {"id": "ws-2", "command": "true", "depends_on": "WS 1: Models!"},
                    {
                        "id": "ws-3",
                        "command": "true",
                        "depends_on": ["ws-2", "WS 1: Models!", "ws 2", "nowhere"],
                    },
                ],
            ),
        ]
    )
    streams = result.phase["workstreams"]
    assert [ws["workstream_id"] for ws in streams] == ["ws-1-models", "ws-2", "ws-3"]
    assert streams[1]["dependencies"] == ["ws-1-models"]
    # exact legacy id, renamed id; a near miss matched by its normal form; unknown kept as is
    assert streams[2]["dependencies"] == ["ws-2", "ws-1-models", "ws-2", "nowhere"]
    assert result.renamed_ids == {"WS 1: Models!": "ws-1-models"}
    assert [(u.source, u.json_path, u.kind) for u in result.unmapped] == [
        ("one.json", "$.id", "renamed"),
        ("two.json", "$[1].depends_on[2]", "renamed"),
    ]
    assert result.unmapped[0].why == (
        "not a valid uet id; renamed to 'ws-1-models' (dependencies on it too)"
    )
    problems = [p.message for p in check_spec(result.phase).problems]
    assert problems == ["dependency 'ws-2' is listed twice", "unknown dependency 'nowhere'"]


@pytest.mark.parametrize(
    ("legacy", "normal"),
    [
        ("WS-001 Models", "ws-001-models"),
        ("  Add   Models ", "add-models"),
        ("RELEASE NOTES (v0.2)", "release-notes-v0.2"),
        ("_hidden..x.", "hidden.x"),
        ("db.lock", "db-lock"),
        ("über/größe", "bergre"),
        ("a @{b}", "a-b"),
        ("!!!", ""),
    ],
)
def test_normalize_id(legacy: str, normal: str) -> None:
    assert normalize_id(legacy) == normal
    assert normal == "" or is_identifier(normal)


def test_ids_valid_as_written_are_kept_and_collisions_get_a_suffix() -> None:
    result = convert(
        [
            (
                "a.json",
                [
                    {"id": "WS_Upper.1", "command": "true"},
                    {"id": "add models", "command": "true"},
                    {"id": "Add Models", "command": "true"},
                    {"id": "add-models-2", "command": "true"},
                    {"title": "No id here", "command": "true"},
                    {"command": "true"},
                    {"id": 7, "command": "true"},
                    {"id": "ws-x", "command": "true", "depends_on": ["Add Models", 7]},
                ],
            )
        ]
    )
    ids = [ws["workstream_id"] for ws in result.phase["workstreams"]]
    assert ids == [
        "WS_Upper.1",
        "add-models",
        "add-models-3",
        "add-models-2",
        "no-id-here",
        "ws-6",
        "7",
        "ws-x",
    ]
    assert result.phase["workstreams"][-1]["dependencies"] == ["add-models-3", "7"]
    assert {u.json_path: u.why for u in result.unmapped} == {
        "$[1].id": "not a valid uet id; renamed to 'add-models' (dependencies on it too)",
        "$[2].id": "not a valid uet id; renamed to 'add-models-3' (dependencies on it too)",
        "$[4]": "no id; named 'no-id-here'",
        "$[5]": "no id; named 'ws-6'",
    }
    assert check_spec(result.phase).ok


def test_circuit_breaker() -> None:
    ws, unmapped = one(
        {
            "id": "a",
            "command": "x",
            "circuit_breaker": {
                "max_attempts": 4,
                "max_failures": 9,
                "timeout": "30m",
                "fix_attempts": 1,
                "reset_after": 60,
            },
        }
    )
    assert ws["resilience_policy"] == {"max_attempts": 4, "max_fix_attempts": 1, "timeout_s": 1800}
    assert notes(unmapped) == {
        "$.circuit_breaker.max_failures": "max_attempts already set by another field",
        "$.circuit_breaker.reset_after": "no resilience setting in uet (max_attempts, timeout_s, "
        "max_fix_attempts)",
    }
    ws, unmapped = one(
        {"id": "a", "circuit_breaker": {"max_failures": 0, "timeout": "soon", "max_fixes": -1}}
    )
    assert "resilience_policy" not in ws
    assert notes(unmapped) == {
        "$.circuit_breaker.max_failures": "not a whole number ≥ 1",
        "$.circuit_breaker.timeout": "not a positive duration (seconds, or like '90s', '5m')",
        "$.circuit_breaker.max_fixes": "not a whole number ≥ 0",
    }


def test_everything_else_is_reported_with_a_reason() -> None:
    ws, unmapped = one(
        {
            "id": "a",
            "command": "x",
            "priority": "P1",
            "owner": "al",
            "slack_channel": "#x",
            "estimated_minutes": -3,
            "description": "d",
        }
    )
    assert set(ws) == {"workstream_id", "execution_request"}
    assert [(u.json_path, u.value, u.kind) for u in unmapped] == [
        ("$.estimated_minutes", -3, "unmapped"),
        ("$.priority", "P1", "unmapped"),
        ("$.owner", "al", "unmapped"),
        ("$.slack_channel", "#x", "unmapped"),
        ("$.description", "d", "unmapped"),
    ]
    assert notes(unmapped)["$.priority"].startswith("uet has no priorities")
    assert notes(unmapped)["$.slack_channel"] == "no workstream field in uet"
    assert unmapped[1].line() == (
        'a.json: $.priority: "P1" — uet has no priorities: dependencies decide the order '
        "(waves), max_parallel the concurrency"
    )


# -- file shapes and the phase ---------------------------------------------------------------


def test_bundle_phase_fields_and_paths() -> None:
    result = convert(
        [
            (
                "b.json",
                {
                    "name": "Sprint 3",
                    "description": "long text",
                    "owner": "team",
                    "acceptance_tests": ["pytest -q"],
                    "workstreams": [{"id": "ws-a", "command": "x", "labels": []}, "oops"],
                },
            ),
            ("c.json", {"phase_id": "PH-OTHER", "workstreams": [{"id": "ws-b", "command": "y"}]}),
        ]
    )
    phase = result.phase
    assert (phase["phase_id"], phase["title"]) == ("sprint-3", "Sprint 3")
    assert phase["gates"] == [{"gate_id": "test-1", "kind": "unit", "command": "pytest -q"}]
    assert result.origins == ["b.json $.workstreams[0]", "c.json $.workstreams[0]"]
    assert [(u.source, u.json_path) for u in result.unmapped] == [
        ("b.json", "$.description"),
        ("b.json", "$.owner"),
        ("b.json", "$.name"),
        ("b.json", "$.workstreams[0].labels"),
        ("b.json", "$.workstreams[1]"),
        ("c.json", "$.phase_id"),
    ]
    why = notes(result.unmapped)
    assert why["$.name"] == "not a valid uet id; the phase id is 'sprint-3'"
    assert why["$.phase_id"] == "the phase's phase id was already taken from b.json"
    assert why["$.workstreams[1]"] == "not a workstream object; skipped"


def test_given_phase_id_and_title_win_and_are_reported() -> None:
    bundle = {"phase_id": "PH-FILE", "title": "From file", "workstreams": [{"id": "a"}]}
    result = convert([("b.json", bundle)], "PH-CLI", "From CLI")
    assert (result.phase["phase_id"], result.phase["title"]) == ("PH-CLI", "From CLI")
    assert notes(result.unmapped) == {
        "$.phase_id": "replaced by the phase id given to uet convert",
        "$.title": "replaced by the title given to uet convert",
    }
    plain = convert([("a.json", [{"id": "a"}])])
    assert plain.phase == {"phase_id": DEFAULT_PHASE_ID, "workstreams": [{"workstream_id": "a"}]}


@pytest.mark.parametrize("data", [42, "text", None, {"workstreams": {"a": {}}}])
def test_files_of_another_shape_are_refused(data: Any) -> None:
    with pytest.raises(LegacyFormatError, match=r"^x.json: \$"):
        convert([("x.json", data)])


# -- the command ------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


LINE = re.compile(r"^\S+\.json: \$\S*: .+ — .+$")


def test_command_writes_yaml_with_a_header_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "legacy"
    write_json(
        legacy / "b.json",
        [
            {
                "id": "ws b",
                "tool": "patch",
                "patch_file": "p/fix.diff",
                "depends_on": ["ws-a"],
                "owner": "bo",
            }
        ],
    )
    write_json(
        legacy / "a.json",
        {"id": "ws-a", "tool": "bash", "command": "echo 'a\nb' > x", "tasks": ["one", "two"]},
    )
    (legacy / "notes.txt").write_text("not json")
    (legacy / "p").mkdir()
    (legacy / "p" / "fix.diff").write_text("diff --git a/x b/x\n")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "phase.yaml"

    code = convert_command([str(legacy)], str(out), "PH-X", "Converted")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = out.read_text()
    assert text.startswith(
        "# Converted by `uet convert` from legacy workstream files:\n"
        f"#   {legacy / 'a.json'}\n#   {legacy / 'b.json'}\n"
        "# Not converted as written (uet convert printed these too):\n"
        f"#   {legacy / 'b.json'}: $[0].id: \"ws b\" — not a valid uet id; renamed to 'ws-b'"
    )
    assert f'#   {legacy / "b.json"}: $[0].owner: "bo" — uet does not track owners' in text
    assert "  # from " + str(legacy / "a.json") + " $\n  - workstream_id: ws-a\n" in text
    assert "      prompt: |-\n        1. one\n        2. two\n" in text
    spec = yaml.safe_load(text)
    assert spec["workstreams"][1]["execution_request"] == {
        "tool_id": "patch",
        "patch_file": "../legacy/p/fix.diff",
    }
    assert spec["workstreams"][1]["dependencies"] == ["ws-a"]
    loaded = load_spec(out)  # the patch file is found relative to the output
    assert [ws.workstream_id for ws in loaded.spec.workstreams] == ["ws-a", "ws-b"]
    assert loaded.spec.workstreams[0].execution_request.command == ["bash", "-c", "echo 'a\nb' > x"]
    err = captured.err.splitlines()
    assert len(err) == 2 and all(LINE.match(line) for line in err), err
    assert captured.out.splitlines() == [
        f"wrote {out}: phase PH-X, 2 workstreams from 2 legacy files; 2 fields were not "
        "converted as written (listed above and in the file's header)",
        f"{out}: ok — phase PH-X, 2 workstreams",
    ]

    with pytest.raises(UserError, match="exists; pass --force to replace it"):
        convert_command([str(legacy)], str(out), None, None)
    assert convert_command([str(legacy / "a.json")], str(out), None, None, force=True) == 0
    assert yaml.safe_load(out.read_text())["phase_id"] == DEFAULT_PHASE_ID


def test_command_reports_an_invalid_result_and_keeps_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_json(
        tmp_path / "l.json",
        [
            {"id": "a", "tool": "gpt-pilot", "tasks": "x"},
            {"id": "b", "command": "true", "depends_on": "zz"},
        ],
    )
    out = tmp_path / "phase.yml"
    assert convert_command([str(src)], str(out), None, None) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{src}: $[0].tool: \"gpt-pilot\" — uet has no tool 'gpt-pilot'")
    assert f"uet: {out}:" in err[1] and "unknown tool 'gpt-pilot'" in err[1]
    assert any("unknown dependency 'zz'" in line for line in err)
    assert err[-1] == (
        f"uet: {out} was written but is not a valid phase spec; fix the legacy "
        "files and convert again (--force), or edit the YAML"
    )
    assert out.exists()


def test_command_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"id": "a",\n   "tool": shell}\n]\n')
    with pytest.raises(UserError) as caught:
        convert_command([str(bad)], str(tmp_path / "o.yaml"), None, None)
    assert caught.value.lines == [f"{bad}:3:12: invalid JSON: Expecting value"]
    assert not (tmp_path / "o.yaml").exists()

    cases = [
        ([str(tmp_path / "missing.json")], "o.yaml", "no such file or directory"),
        ([str(tmp_path)], "o.yaml", "invalid JSON"),  # the directory holds bad.json
        ([str(write_json(tmp_path / "e" / "x.json", 3))], "o.yaml", "a legacy file is a"),
        ([str(write_json(tmp_path / "f" / "x.json", []))], "o.yaml", "no workstreams found"),
        ([str(write_json(tmp_path / "g" / "x.json", {"id": "a"}))], "o.json", "*.yaml or *.yml"),
        ([str(tmp_path / "g" / "x.json")], "nowhere/o.yaml", "does not exist"),
    ]
    (tmp_path / "empty").mkdir()
    cases.append(([str(tmp_path / "empty")], "o.yaml", "no *.json files"))
    for paths, output, message in cases:
        with pytest.raises(UserError, match=re.escape(message)):
            convert_command(paths, str(tmp_path / output), None, None)


# -- the samples in examples/legacy -------------------------------------------------------------


SAMPLE_REPORT = [
    ("01-models.json", "$.id", "renamed to 'ws-001-models'"),
    ("01-models.json", "$.priority", "uet has no priorities"),
    ("01-models.json", "$.owner", "uet does not track owners"),
    ("02-stock.json", "$[0].circuit_breaker.cooldown_seconds", "router.circuit_breaker.cooldown_s"),
    ("02-stock.json", "$[0].slack_channel", "no workstream field in uet"),
    ("02-stock.json", "$[1].retries_backoff", "no workstream field in uet"),
    ("03-reporting.json", "$.description", "a phase has one id and one title"),
    ("03-reporting.json", "$.owner", "uet does not track owners"),
    ("03-reporting.json", "$.slack_channel", "no phase-level field in uet"),
    ("03-reporting.json", "$.name", "the phase id is 'inventory-sprint-3'"),
    ("03-reporting.json", "$.workstreams[0].id", "renamed to 'stock-value'"),
    ("03-reporting.json", "$.workstreams[0].priority", "uet has no priorities"),
    ("03-reporting.json", "$.workstreams[1].acceptance_tests[0].retries", "no gate field in uet"),
    ("03-reporting.json", "$.workstreams[1].labels", "no workstream field in uet"),
    ("03-reporting.json", "$.workstreams[2].id", "renamed to 'release-notes-v0.2'"),
]


def convert_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, list[str]]:
    out = tmp_path / "phase.yaml"
    code = convert_command([str(LEGACY)], str(out), None, None)
    err = capsys.readouterr().err.splitlines()
    assert code == 0, "\n".join(err)
    return out, err


def test_samples_convert_report_and_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = convert_samples(tmp_path, capsys)
    assert len(err) == len(SAMPLE_REPORT), err
    for line, (name, path, why) in zip(err, SAMPLE_REPORT, strict=True):
        assert line.startswith(f"{LEGACY / name}: {path}: ") and why in line, line
        assert LINE.match(line)
    spec = load_spec(out).spec
    assert spec.phase_id == "inventory-sprint-3"
    assert [g.command for g in spec.gates] == ["python3 -m pytest -q"]
    deps = {ws.workstream_id: ws.dependencies for ws in spec.workstreams}
    assert deps == {
        "ws-001-models": [],
        "stock_totals": [],
        "catalog-api": ["ws-001-models"],  # across files, to a renamed id
        "stock-value": ["ws-001-models", "stock_totals"],
        "restock": ["stock_totals"],
        "release-notes-v0.2": ["catalog-api", "stock-value", "restock"],
    }
    assert {ws.execution_request.tool_id for ws in spec.workstreams} == {"shell"}
    models = spec.workstream("ws-001-models")
    assert models.resilience_policy.timeout_s == 120 and models.estimated_duration_s == 300


def test_ai_sample_converts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the conversion is checked: AI tools need their adapters (and keys) to validate."""
    out = tmp_path / "ai.yaml"
    convert_command([str(LEGACY / "ai")], str(out), "PH-AI", None)
    err = capsys.readouterr().err.splitlines()
    # Validation may refuse aider while its adapter is missing: those lines start with "uet: ".
    assert [line for line in err if not line.startswith("uet: ")] == [
        f'{LEGACY / "ai" / "docstrings.json"}: $.reviewer: "bob" — reviewers are the phase\'s '
        "allowed_reviewers (a workstream asks for review with review: always)"
    ]
    [ws] = yaml.safe_load(out.read_text())["workstreams"]
    assert ws["execution_request"] == {
        "tool_id": "aider",
        "model": "gpt-4o",
        "prompt": "1. Give every public function in inventory/ a one-line docstring\n"
        "2. Do not change any behaviour; keep the tests passing",
    }
    assert ws["resilience_policy"] == {"max_attempts": 2, "max_fix_attempts": 2, "timeout_s": 900}


async def test_converted_samples_run_on_the_demo_repo(
    client: Client,
    settings: Settings,
    worker: Worker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = convert_samples(tmp_path, capsys)
    repo = tmp_path / "demo-repo"
    subprocess.run(
        [sys.executable, str(DEMO / "make_repo.py"), str(repo)], check=True, capture_output=True
    )
    loaded = load_spec(out)
    for ws in loaded.spec.workstreams:
        ws.review = "never"  # a broken sample fails the run at once instead of awaiting a review
    input = run_input(loaded.spec, repo)
    input.patch_files = import_patch_files(loaded, LocalArtifactStore(settings.home / "artifacts"))

    record = await run_phase(client, settings, input)

    assert record.status == PhaseState.COMPLETED, record.reason
    assert {w: s.status for w, s in record.workstreams.items()} == {
        w: WorkstreamState.COMPLETED
        for w in [
            "ws-001-models",
            "stock_totals",
            "catalog-api",
            "stock-value",
            "restock",
            "release-notes-v0.2",
        ]
    }
    assert record.waves == [
        ["stock_totals", "ws-001-models"],
        ["catalog-api", "restock", "stock-value"],
        ["release-notes-v0.2"],
    ]
    assert record.phase_gates and {g.status for g in record.phase_gates} == {"passed"}
    head = record.head_sha or ""
    core = show(repo, head, "inventory/core.py")
    assert "def total_units(stock: Stock) -> int:" in core and "def restock_to(" in core
    changelog = show(repo, head, "CHANGELOG.md").splitlines()
    assert changelog[0] == "# Changes in 0.2"
    assert "- `stock_value` (inventory/valuation.py)" in changelog
    assert "- `restock_to` (inventory/core.py)" in changelog
