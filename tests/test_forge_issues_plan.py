"""`uet plan --from-issues`: the open issues of a (fake) GitHub repository become a phase that
validates — "blocked by" / "depends on" / task lists as dependencies, tool: and kind: labels,
a fenced uet block's fields — and what cannot be a dependency is said, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes.forges.github import FakeGitHub
from helpers import cli
from temporalio.client import Client

from activities.lib.forges.issues_plan import dependencies_of
from runtime.settings import Settings
from runtime.specfile import load_spec

TOKEN = "ghp_plan0123456789abcdefghijklmnopqrstuvw"


def test_the_ways_an_issue_says_what_it_waits_for() -> None:
    body = (
        "Blocked by #3, #4 and #5.\nAlso depends on: #9\n"
        "- [ ] #11 first part\n- [x] #12 done part\nmentions #99 in passing\n"
    )
    assert dependencies_of(body) == [3, 4, 5, 9, 11, 12]


async def test_open_issues_become_a_valid_phase_with_their_dependencies(
    client: Client, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGitHub() as fake:
        fake.add_token(TOKEN)
        fake.add_repo("acme/app")
        add: Any = lambda *a, **k: fake.add_issue("acme/app", *a, **k)  # noqa: E731
        models = add("Item model", "Add the Item dataclass.", labels=["uet", "tool:claude"])
        api = add("Catalog API", f"Blocked by #{models}.", labels=["uet"])
        old = add("Old work", "", state="closed", labels=["uet"])
        cli_ws = add("CLI", f"Depends on #{api} and #{old}.", labels=["uet", "kind:refactor"])
        loop_a = add("Loop A", "placeholder", labels=["uet"])
        loop_b = add("Loop B", f"blocked by #{loop_a}", labels=["uet"])
        fake.repo("acme/app").issues[loop_a]["body"] = f"blocked by #{loop_b}"
        add(
            "Docs",
            "Write the docs.\n\n```uet\nconstraints:\n  file_scope:\n    allowed_paths: "
            "[docs/**]\nacceptance_criteria:\n  gates:\n    - {gate_id: md, command: 'test -d docs'}\n"
            "```\n",
            labels=["uet"],
        )
        add("Unrelated", "not for uet", labels=["question"])
        monkeypatch.setenv("UET_TEST_PLAN_TOKEN", TOKEN)
        out = tmp_path / "phase.yaml"
        done = await cli(client, settings)(
            "plan", "--from-issues", "acme/app", "--label", "uet", "--forge", "github",
            "--api-url", fake.url, "--token-env", "UET_TEST_PLAN_TOKEN", "-o", str(out),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    phase = load_spec(str(out)).spec  # it validates
    ws = {w.workstream_id: w for w in phase.workstreams}
    assert set(ws) == {f"issue-{n}" for n in (models, api, cli_ws, loop_a, loop_b, 7)}
    assert ws[f"issue-{api}"].dependencies == [f"issue-{models}"]
    assert ws[f"issue-{api}"].issue == api  # for the comment after the run
    # Its run publishes where the issues are.
    assert phase.forge is not None
    assert (phase.forge.kind, phase.forge.repository) == ("github", "acme/app")
    assert (phase.forge.api_url, phase.forge.token_env) == (fake.url, "UET_TEST_PLAN_TOKEN")
    assert ws[f"issue-{cli_ws}"].dependencies == [f"issue-{api}"]
    assert ws[f"issue-{cli_ws}"].task_kind == "refactor"
    assert ws[f"issue-{models}"].execution_request.tool_id == "claude"
    assert not ws[f"issue-{loop_a}"].dependencies and not ws[f"issue-{loop_b}"].dependencies
    docs = ws["issue-7"]
    assert docs.constraints.file_scope.allowed_paths == ["docs/**"]
    assert [g.gate_id for g in docs.acceptance_criteria.gates] == ["md"]
    assert "```uet" not in (docs.execution_request.prompt or "")
    assert f"#{cli_ws} waits for #{old}, which is closed: done already" in done.stderr
    assert f"dependency cycle #{loop_a} → #{loop_b} → #{loop_a}" in done.stderr or (
        f"dependency cycle #{loop_b} → #{loop_a} → #{loop_b}" in done.stderr
    )
