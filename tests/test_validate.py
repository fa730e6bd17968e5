"""`uet validate`: every problem, one line each, with where it is; exit 2; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli import main

VALID = """\
phase_id: PH-OK
workstreams:
  - workstream_id: ws-a
    execution_request: {command: "true"}
  - workstream_id: ws-b
    dependencies: [ws-a]
    execution_request: {command: "true"}
"""


def validate(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], name: str = "phase.yaml"
):
    spec = tmp_path / name
    spec.write_text(text)
    code = main(["validate", str(spec)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, [line for line in err.splitlines() if line]


def test_valid_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = validate(tmp_path, VALID, capsys)
    assert code == 0 and not err
    assert "ok — phase PH-OK, 2 workstreams in 2 waves" in out


CATALOG = [
    pytest.param(
        "phase_id: P\nworkstreams:\n  - {workstream_id: a, execution_request: {comand: x}}\n",
        [
            "phase.yaml:3: $.workstreams[0].execution_request: unknown field 'comand' "
            "(did you mean 'command'?)"
        ],
        id="unknown-field-typo",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n  - {workstream_id: a, execution_request: {command: x}}\n"
        "  - {workstream_id: a, execution_request: {command: x}}\n",
        [
            "phase.yaml:4: $.workstreams[1].workstream_id: duplicate workstream id 'a' "
            "(first at $.workstreams[0])"
        ],
        id="duplicate-id",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n"
        "  - {workstream_id: ws-a, dependencies: [ws-b], execution_request: {command: x}}\n"
        "  - {workstream_id: ws-b, dependencies: [ws-a], execution_request: {command: x}}\n",
        ["phase.yaml:3: $.workstreams[0].dependencies: dependency cycle: ws-a -> ws-b -> ws-a"],
        id="cycle",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n"
        "  - {workstream_id: a, dependencies: [a, nope], execution_request: {command: x}}\n",
        [
            "phase.yaml:3: $.workstreams[0].dependencies[0]: 'a' depends on itself",
            "phase.yaml:3: $.workstreams[0].dependencies[1]: unknown dependency 'nope'",
        ],
        id="self-and-unknown-dependency",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n  - workstream_id: a\n    execution_request:\n"
        "      tool_id: aidr\n",
        [
            "phase.yaml:5: $.workstreams[0].execution_request.tool_id: unknown tool 'aidr' "
            "(did you mean 'aider'?); available: shell, patch, aider, claude, codex, auto"
        ],
        id="unknown-tool",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n  - workstream_id: a\n    execution_request: {command: x}\n"
        "    acceptance_criteria:\n      gates:\n"
        "        - {gate_id: unit, command: pytest, after: [lnt]}\n"
        "        - {gate_id: lint, command: ruff}\n",
        [
            "phase.yaml:7: $.workstreams[0].acceptance_criteria.gates[0].after[0]: gate 'unit' "
            "runs after unknown gate 'lnt' (did you mean 'lint'?)"
        ],
        id="gate-after-unknown",
    ),
    pytest.param(
        "phase_id: P\nworkstreams:\n  - workstream_id: a\n    execution_request: {command: x}\n"
        "    constraints: {file_scope: {allowed_paths: [/etc/passwd], forbidden_paths: [src/../..]}}\n",
        [
            "phase.yaml:5: $.workstreams[0].constraints.file_scope.allowed_paths[0]: '/etc/passwd' "
            "is absolute; scopes are relative to the repository root",
            "phase.yaml:5: $.workstreams[0].constraints.file_scope.forbidden_paths[0]: 'src/../..' "
            "contains '..'; scopes cannot leave the repository",
        ],
        id="scope-escapes",
    ),
    pytest.param(
        "phase_id: P\nworkstreams: []\n",
        ["phase.yaml:2: $.workstreams: [] should be non-empty"],
        id="empty-phase",
    ),
    pytest.param(
        "phase_id: 'bad id!'\nmax_parallel: zero\nworkstreams:\n  - {workstream_id: a}\n",
        [
            "phase.yaml:2: $.max_parallel: 'zero' is not of type 'integer'",
            "phase.yaml:1: $.phase_id: 'bad id!' is not a valid name (letters, digits, '.', '_', '-')",
        ],
        id="wrong-types",
    ),
    pytest.param(
        "phase_id: P\nphase_id: Q\nworkstreams: []\n",
        ["phase.yaml:2:1: invalid YAML: duplicate key 'phase_id' (first on line 1)"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "phase_id: P\nworkstreams: [\n",
        ["phase.yaml:3:1: invalid YAML: expected the node content, but found '<stream end>'"],
        id="malformed-yaml",
    ),
    pytest.param(
        "",
        ["phase.yaml: the phase file is empty; it needs phase_id and workstreams"],
        id="empty-file",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CATALOG)
def test_error_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    code, _, err = validate(tmp_path, text, capsys)
    assert code == 2
    assert [line.removeprefix("uet: ").replace(str(tmp_path) + "/", "") for line in err] == expected


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "phase_id: P\nworkstreams:\n"
        "  - {workstream_id: a, dependencies: [zz], execution_request: {tool_id: nope}}\n"
        "  - {workstream_id: a, execution_request: {command: x}}\n"
        "  - {workstream_id: b, dependencies: [c], execution_request: {command: x}}\n"
        "  - {workstream_id: c, dependencies: [b], execution_request: {command: x}}\n"
    )
    code, _, err = validate(tmp_path, text, capsys)
    assert code == 2
    assert len(err) == 4, err  # duplicate id, unknown dependency, unknown tool, cycle


def test_json_spec_errors_have_line_and_column(tmp_path: Path, capsys) -> None:
    code, _, err = validate(tmp_path, '{"phase_id": "P",\n "workstreams": [}', capsys, "p.json")
    assert code == 2
    assert err == [f"uet: {tmp_path}/p.json:2:18: invalid JSON: Expecting value"]


def test_missing_patch_file_and_missing_spec(tmp_path: Path, capsys) -> None:
    text = (
        "phase_id: P\nworkstreams:\n  - workstream_id: a\n    execution_request:\n"
        "      {tool_id: patch, patch_file: nope.diff}\n"
    )
    code, _, err = validate(tmp_path, text, capsys)
    assert code == 2 and "patch file 'nope.diff' not found" in err[0]
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_phase_larger_than_uet_can_load_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemas import spec_check

    # The limit is 10,000; a phase of 10,001 takes 15 s to parse and check, so: 5.
    monkeypatch.setattr(spec_check, "MAX_WORKSTREAMS", 5)
    n = spec_check.MAX_WORKSTREAMS + 1
    lines = [
        f"  - {{workstream_id: w{i}, execution_request: {{command: 'true'}}}}" for i in range(n)
    ]
    code, _, err = validate(
        tmp_path, "phase_id: P\nworkstreams:\n" + "\n".join(lines) + "\n", capsys
    )
    assert code == 2
    (line,) = err  # one line, at the list's own line in the file
    assert f"phase.yaml:3: $.workstreams: {n:,} workstreams: a phase holds at most" in line
