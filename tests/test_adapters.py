"""The AI adapters end to end in real phases, against faithful fake CLIs (tests/fakes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import phase, run_input, run_phase, show
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.run import PhaseState, WorkstreamState


@pytest.fixture(autouse=True)
def _fakes_on_path(fake_tools: Path) -> None:
    """Every test here runs the fake CLIs (see conftest.fake_tools)."""


def invocations(log: Path) -> list[tuple[str, list[str]]]:
    calls = []
    for line in log.read_text().splitlines():
        tool, _, argv = line.partition(" ")
        calls.append((tool, json.loads(argv)))
    return calls


def ai(ws_id: str, tool: str, prompt: str, **extra: object) -> dict:
    return {
        "workstream_id": ws_id,
        "execution_request": {"tool_id": tool, "prompt": prompt},
        "resilience_policy": {"max_fix_attempts": 0, "max_attempts": 2},
        **extra,
    }


def ledger(record) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = (Path(record.report_dir) / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_each_tool_changes_code_and_reports_its_cost(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    repo: Path = make_repo({"src/app.py": "VALUE = 1\n"})
    spec = phase(
        workstreams=[
            ai(
                "ws-aider",
                "aider",
                "Make VALUE two.\nWRITE src/app.py: VALUE = 2",
                constraints={"file_scope": {"allowed_paths": ["src/**"]}},
                acceptance_criteria={
                    "gates": [{"gate_id": "two", "command": "grep -q 'VALUE = 2' src/app.py"}]
                },
            ),
            ai(
                "ws-claude",
                "claude",
                "Add a helper.\nWRITE src/helper.py: def helper(): return 42",
                execution_request={
                    "tool_id": "claude",
                    "model": "claude-sonnet-4-5",
                    "max_turns": 5,
                    "prompt": "Add a helper.\nWRITE src/helper.py: def helper(): return 42",
                },
            ),
            ai("ws-codex", "codex", "Write docs.\nWRITE docs/usage.md: # Usage"),
        ]
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    head = record.head_sha or ""
    assert show(repo, head, "src/app.py") == "VALUE = 2"
    assert show(repo, head, "src/helper.py") == "def helper(): return 42"
    assert show(repo, head, "docs/usage.md") == "# Usage"
    # aider's repo-map cache and histories never reach the change.
    tree = show(repo, head, "")  # `git show <tree>:` lists the root
    assert ".aider" not in tree
    entries = {e["workstream_id"]: e for e in ledger(record)}
    aider_usage = entries["ws-aider"]["tool_usage"]
    claude_usage = entries["ws-claude"]["tool_usage"]
    codex_usage = entries["ws-codex"]["tool_usage"]
    assert aider_usage["cost_source"] == "reported" and aider_usage["cost_usd"] > 0
    assert claude_usage["cost_source"] == "reported" and claude_usage["cost_usd"] > 0
    assert claude_usage["input_tokens"] > 0 and claude_usage["output_tokens"] > 0
    assert codex_usage["cost_source"] == "price_table" and codex_usage["cost_usd"] > 0
    assert codex_usage["model"] == "gpt-5-codex"
    costs = {w: s.cost_usd for w, s in record.workstreams.items()}
    assert costs == {w: entries[w]["tool_usage"]["cost_usd"] for w in costs}
    assert record.cost_usd_total == pytest.approx(sum(costs.values()))

    calls = dict(invocations(fake_tools))
    assert calls["aider"][:2] == ["--message-file", calls["aider"][1]]
    assert "--no-auto-commits" in calls["aider"] and calls["aider"][-1] == "src/app.py"
    assert calls["claude"][1:3] == ["--output-format", "json"]
    assert calls["claude"][calls["claude"].index("--max-turns") + 1] == "5"
    assert calls["claude"][calls["claude"].index("--model") + 1] == "claude-sonnet-4-5"
    assert calls["codex"][:2] == ["exec", "--json"] and calls["codex"][-1] == "-"
    for argv in calls.values():  # prompts travel as files or stdin, never as arguments
        assert not any("WRITE" in arg for arg in argv)


@pytest.mark.parametrize(
    ("tool", "scenario", "reason"),
    [
        ("claude", "api_error", "claude API error"),
        ("claude", "max_turns", "tool stopped after"),
        ("claude", "permission_denied", "permission denied for Write"),
        ("codex", "api_error", "codex API error"),
        ("codex", "tool_calls_fail", "commands codex ran failed"),
        ("aider", "api_error", "aider API error: litellm."),
    ],
)
async def test_failures_are_classified_from_structured_output(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
    scenario: str,
    reason: str,
) -> None:
    monkeypatch.setenv("UET_FAKE_SCENARIO", scenario)
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(defaults={"review": "never"}, workstreams=[ai("ws-1", tool, "WRITE b.txt: b")])
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.workstreams["ws-1"].status == WorkstreamState.FAILED
    assert reason in (record.workstreams["ws-1"].reason or "")


async def test_transient_api_error_is_retried(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_tools: Path,
) -> None:
    script = tmp_path / "scenarios"
    script.write_text("api_error_transient\nsuccess\n")
    monkeypatch.setenv("UET_FAKE_SCENARIO_FILE", str(script))
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(workstreams=[ai("ws-1", "codex", "WRITE b.txt: b")])
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert [tool for tool, _ in invocations(fake_tools)] == ["codex", "codex"]


async def test_a_hanging_tool_times_out(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UET_FAKE_SCENARIO", "hang")
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            ai(
                "ws-1",
                "claude",
                "WRITE b.txt: b",
                resilience_policy={"timeout_s": 1, "max_fix_attempts": 0},
            )
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert "tool timed out after 1s" in (record.workstreams["ws-1"].reason or "")


async def test_fix_attempt_prompt_carries_the_feedback(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    prompt = "Fix it.\nWRITE out.txt: attempt\nECHO-FEEDBACK told.txt"
    spec = phase(
        workstreams=[
            ai(
                "ws-1",
                "claude",
                prompt,
                resilience_policy={"max_fix_attempts": 1},
                acceptance_criteria={
                    "gates": [
                        {"gate_id": "told", "command": "grep -q 'failed acceptance gate' told.txt"}
                    ]
                },
            ),
        ]
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    told = show(repo, record.head_sha or "", "told.txt")
    assert (
        told.startswith("Fix it.") and "The previous change failed acceptance gate `told`" in told
    )


async def test_context_check_fails_before_calling_the_tool(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_tools: Path,
) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("tiny-model: {context_tokens: 100}\n")
    monkeypatch.setenv("UET_MODELS_FILE", str(models))
    repo: Path = make_repo({"src/big.py": "x = 1\n" * 1000})
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                **ai("ws-1", "aider", "WRITE src/big.py: x = 2"),
                "execution_request": {
                    "tool_id": "aider",
                    "model": "tiny-model",
                    "prompt": "WRITE src/big.py: x",
                },
                "constraints": {"file_scope": {"allowed_paths": ["src/**"]}},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    reason = record.workstreams["ws-1"].reason or ""
    assert "more than tiny-model's 100" in reason and "narrow constraints.file_scope" in reason
    assert not fake_tools.exists(), "the tool was never called"


async def test_router_falls_back_and_the_circuit_breaker_opens(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_tools: Path,
) -> None:
    # Invocations in order: claude fails (wave 1), codex takes over; in wave 2 claude's
    # circuit is open, so codex is asked directly.
    script = tmp_path / "scenarios"
    script.write_text("api_error\nsuccess\nsuccess\n")
    monkeypatch.setenv("UET_FAKE_SCENARIO_FILE", str(script))
    repo: Path = make_repo({"docs/index.md": "# Docs\n"})
    auto = {"tool_id": "auto", "prompt": ""}
    spec = phase(
        router={
            "rules": [{"paths": ["docs/**"], "tools": ["claude", "codex"]}],
            "circuit_breaker": {"failure_threshold": 1, "cooldown_s": 3600},
        },
        defaults={"resilience_policy": {"max_attempts": 1, "max_fix_attempts": 0}},
        workstreams=[
            {
                "workstream_id": "ws-1",
                "execution_request": {**auto, "prompt": "WRITE docs/a.md: a"},
                "constraints": {"file_scope": {"allowed_paths": ["docs/**"]}},
            },
            {
                "workstream_id": "ws-2",
                "dependencies": ["ws-1"],
                "execution_request": {**auto, "prompt": "WRITE docs/b.md: b"},
                "constraints": {"file_scope": {"allowed_paths": ["docs/b.md"]}},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert [tool for tool, _ in invocations(fake_tools)] == ["claude", "codex", "codex"]
    entries = {e["workstream_id"]: e for e in ledger(record)}
    assert entries["ws-1"]["tool_id"] == "codex"
    assert entries["ws-1"]["tool_reason"].startswith(
        "codex: fallback after claude failed (api_error); router rule 1"
    )
    assert entries["ws-2"]["tool_id"] == "codex"
    assert entries["ws-2"]["tool_reason"] == "router rule 1; circuit open for claude"
    events = [
        json.loads(x)
        for x in (Path(record.report_dir or "") / "events.jsonl").read_text().splitlines()
    ]
    kinds = [e["type"] for e in events]
    assert "TOOL_FALLBACK" in kinds and "CIRCUIT_OPENED" in kinds
