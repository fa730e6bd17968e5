"""What a step's process sees of the worker's environment: the safe base, uet's own, its
adapter's and what the workstream passes through — never the worker's other secrets."""

from __future__ import annotations

from activities.lib.adapters import ADAPTERS
from activities.lib.step_env import step_env

WORKER = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_TIME": "C",
    "HTTPS_PROXY": "http://proxy:3128",
    "UET_FAKE_SCENARIO": "success",
    "UET_DATABASE_URL": "postgresql://uet:hunter2@db/uet",
    "UET_HOME": "/var/lib/uet",
    "GIT_DIR": "/elsewhere/.git",
    "GITHUB_TOKEN": "ghp_worker_secret",
    "AWS_SECRET_ACCESS_KEY": "worker-aws-secret",
    "ANTHROPIC_API_KEY": "sk-ant-for-claude",
    "OPENAI_API_KEY": "sk-for-codex",
    "DATABASE_URL": "postgresql://app@db/test",
}


def test_a_shell_step_sees_the_safe_base_and_uets_own_only() -> None:
    env = step_env({"UET_RUN_ID": "r1"}, source=WORKER)
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root" and env["LC_TIME"] == "C"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["UET_FAKE_SCENARIO"] == "success" and env["UET_RUN_ID"] == "r1"
    for hidden in (
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "DATABASE_URL",
        "UET_DATABASE_URL",
        "UET_HOME",
        "GIT_DIR",
    ):
        assert hidden not in env, hidden
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["LC_ALL"] == "C"


def test_each_ai_tool_sees_its_own_key_and_not_the_others() -> None:
    claude = step_env(source=WORKER, needs=ADAPTERS["claude"].env_vars)
    codex = step_env(source=WORKER, needs=ADAPTERS["codex"].env_vars)
    assert claude["ANTHROPIC_API_KEY"] == "sk-ant-for-claude" and "OPENAI_API_KEY" not in claude
    assert codex["OPENAI_API_KEY"] == "sk-for-codex" and "ANTHROPIC_API_KEY" not in codex
    assert "GITHUB_TOKEN" not in claude and "GITHUB_TOKEN" not in codex


def test_passthrough_names_and_prefixes_and_extra_wins() -> None:
    env = step_env(
        {"DATABASE_URL": "postgresql://override@db/x"},
        source={**WORKER, "PGHOST": "db", "PGPORT": "5432"},
        passthrough=["PG*"],
    )
    assert (env["PGHOST"], env["PGPORT"]) == ("db", "5432")
    assert env["DATABASE_URL"] == "postgresql://override@db/x"  # the request's own env
    listed = step_env(source=WORKER, passthrough=["DATABASE_URL"])
    assert listed["DATABASE_URL"] == "postgresql://app@db/test"
    # A passthrough never reopens what is not for tools.
    assert "UET_DATABASE_URL" not in step_env(source=WORKER, passthrough=["UET_*"])


async def test_a_tool_and_its_gate_see_no_worker_secret_but_what_is_passed_through(
    client, settings, worker, make_repo, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from helpers import phase, run_input, run_phase, show

    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-3f9a0c2e77b14d21")
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://app@db/test")
    repo = make_repo({"README.md": "hi\n"})
    spec = phase(
        defaults={"review": "never", "workspace": {"env_passthrough": ["APP_*"]}},
        workstreams=[
            {
                "workstream_id": "ws",
                "execution_request": {"command": "env | cut -d= -f1 | sort > seen.txt"},
                "acceptance_criteria": {
                    "gates": [
                        {"gate_id": "no-token", "command": 'test -z "$MY_SERVICE_TOKEN"'},
                        {"gate_id": "db", "command": 'test -n "$APP_DATABASE_URL"'},
                    ]
                },
            }
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == "completed", record.reason
    seen = show(repo, record.head_sha or "", "seen.txt").split()
    assert "APP_DATABASE_URL" in seen and "UET_RUN_ID" in seen and "PATH" in seen
    assert "MY_SERVICE_TOKEN" not in seen
