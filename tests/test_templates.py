"""Workstream templates: a workstream says `template: NAME` and `with: {var: value}` and gets
the template's tool, prompt, scope, gates and policy; mistakes are one line each, naming the
template and the use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import record_of, run_input, show, start_phase
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from runtime.specfile import load_spec
from schemas.run import PhaseState

ROOT = Path(__file__).resolve().parent.parent

TEMPLATED = """phase_id: PH-TPL
defaults:
  resilience_policy: {max_attempts: 2}
templates:
  page:
    description: one documentation page, written by a command
    variables: {name: null, words: 3, seconds: 30}
    workstream:
      title: "Write docs/{{ name }}.md"
      execution_request:
        tool_id: shell
        command: "mkdir -p docs && echo '{{name}} page' > docs/{{name}}.md"
      constraints: {file_scope: {allowed_paths: ["docs/{{ name }}.md"]}}
      resilience_policy: {timeout_s: "{{ seconds }}"}
      acceptance_criteria:
        gates: [{gate_id: exists, command: "test -s docs/{{name}}.md"}]
workstreams:
  - {workstream_id: ws-api, template: page, with: {name: api}}
  - workstream_id: ws-cli
    template: page
    with: {name: cli, seconds: 90}
    title: The CLI page                      # its own value wins
"""


def uet(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UET_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_template_fills_in_workstreams(tmp_path: Path) -> None:
    spec_file = tmp_path / "phase.yaml"
    spec_file.write_text(TEMPLATED)
    spec = load_spec(spec_file).spec
    api, cli = spec.workstream("ws-api"), spec.workstream("ws-cli")
    assert api.title == "Write docs/api.md" and cli.title == "The CLI page"
    assert api.execution_request.command == "mkdir -p docs && echo 'api page' > docs/api.md"
    assert cli.constraints.file_scope.allowed_paths == ["docs/cli.md"]
    assert api.resilience_policy.timeout_s == 30 and cli.resilience_policy.timeout_s == 90
    assert api.resilience_policy.max_attempts == 2  # the phase defaults go under both
    assert [g.command for g in cli.acceptance_criteria.gates] == ["test -s docs/cli.md"]
    assert (api.template, api.with_) == ("page", {"name": "api"})
    checked = uet("validate", str(spec_file), home=tmp_path)
    assert checked.returncode == 0, checked.stderr


async def test_a_templated_phase_runs(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    spec_file = tmp_path / "phase.yaml"
    spec_file.write_text(TEMPLATED)
    repo: Path = make_repo({"README.md": "r\n"})
    spec = load_spec(spec_file).spec
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert show(repo, record.head_sha or "", "docs/cli.md") == "cli page"


def problems(text: str, tmp_path: Path) -> str:
    spec_file = tmp_path / "phase.yaml"
    spec_file.write_text(text)
    result = uet("validate", str(spec_file), home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_template_mistakes_are_one_line_each(tmp_path: Path) -> None:
    base = TEMPLATED.split("workstreams:\n")[0]
    unknown = problems(
        base + "workstreams:\n  - {workstream_id: a, template: pages, with: {name: x}}\n", tmp_path
    )
    assert (
        "$.workstreams[0].template: unknown template 'pages' (did you mean 'page'?); templates: page"
        in unknown
    )
    missing = problems(base + "workstreams:\n  - {workstream_id: a, template: page}\n", tmp_path)
    assert "$.workstreams[0].with: template 'page' needs 'name': add with: {name: …}" in missing
    extra = problems(
        base + "workstreams:\n  - {workstream_id: a, template: page, with: {name: x, nmae: y}}\n",
        tmp_path,
    )
    assert (
        "$.workstreams[0].with.nmae: template 'page' has no variable 'nmae' (did you mean 'name'?)"
        in extra
    )
    lonely = problems(
        "phase_id: P\nworkstreams:\n  - {workstream_id: a, with: {x: 1}, execution_request: {command: 'true'}}\n",
        tmp_path,
    )
    assert "$.workstreams[0].with: with: needs a template" in lonely
    undeclared = problems(
        base.replace("{{name}} page", "{{ nam }} page")
        + "workstreams:\n  - {workstream_id: a, template: page, with: {name: x}}\n",
        tmp_path,
    )
    assert "{{ nam }} is not a variable of template 'page' (did you mean 'name'?)" in undeclared
    own_id = problems(
        base.replace("      title:", "      workstream_id: nope\n      title:")
        + "workstreams:\n  - {workstream_id: a, template: page, with: {name: x}}\n",
        tmp_path,
    )
    assert "a template cannot set 'workstream_id'" in own_id
    bad_tool = problems(
        base.replace("tool_id: shell", "tool_id: bash")
        + "workstreams:\n  - {workstream_id: a, template: page, with: {name: x}}\n",
        tmp_path,
    )
    assert (
        "$.workstreams[0].execution_request.tool_id: unknown tool 'bash' (did you mean 'shell'?)"
        in bad_tool
    )
    assert "(from template 'page')" in bad_tool
    assert all(line.startswith("uet: ") for line in bad_tool.splitlines())
