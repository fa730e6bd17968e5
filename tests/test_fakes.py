"""The fake AI coding CLIs in tests/fakes behave like the real tools (shapes, streams, codes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

FAKES = Path(__file__).resolve().parent / "fakes"

AIDER_FLAGS = [
    "--yes-always",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-gitignore",
    "--no-analytics",
    "--no-check-update",
    "--no-show-release-notes",
    "--no-pretty",
    "--no-stream",
]
CLAUDE_FLAGS = [
    "-p",
    "--output-format",
    "json",
    "--permission-mode",
    "acceptEdits",
    "--allowedTools",
    "Read,Edit,Write,Glob,Grep",
    "--max-turns",
    "5",
]
CODEX_FLAGS = ["exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check"]
PROMPT = "Please change things.\nWRITE src/new.py: print('hi')\nAPPEND README.md: more\n"


def env_with(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("UET_FAKE_")}
    env["PATH"] = f"{FAKES}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


def run(
    argv: list[str], cwd: Path, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env_with(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        check=False,
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def status(repo: Path) -> set[str]:
    return set(git(repo, "status", "--porcelain", "--untracked-files=all").splitlines())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@example.com")
    (path / "README.md").write_text("hello\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "init")
    return path


def aider(
    repo: Path, tmp_path: Path, prompt: str = PROMPT, *more: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    message = tmp_path / "message.txt"
    message.write_text(prompt)
    argv = [
        "aider",
        "--message-file",
        str(message),
        *AIDER_FLAGS,
        "--chat-history-file",
        str(tmp_path / "chat.md"),
        "--input-history-file",
        str(tmp_path / "input.history"),
        "--model",
        "gpt-4o",
        *more,
    ]
    return run(argv, repo, **extra)


# --------------------------------------------------------------------------- aider


def test_aider_success_edits_reports_cost_and_writes_its_private_files(
    repo: Path, tmp_path: Path
) -> None:
    done = aider(repo, tmp_path, PROMPT, "README.md")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (repo / "src/new.py").read_text() == "print('hi')\n"
    assert (repo / "README.md").read_text() == "hello\nmore\n"
    lines = done.stdout.splitlines()
    usage = [line for line in lines if line.startswith("Tokens: ")]
    assert len(usage) == 2
    assert all(" received. Cost: $" in line and line.endswith(" session.") for line in usage)
    first_session = float(usage[0].split("$")[-1].split(" ")[0])
    last_session = float(usage[1].split("$")[-1].split(" ")[0])
    assert last_session > first_session > 0
    # Real aider reports usage before applying the edits.
    assert lines.index(usage[0]) < lines.index("Applied edit to src/new.py")
    assert "Applied edit to README.md" in lines
    assert "Added README.md to the chat." in lines
    cache = repo / ".aider.tags.cache.v4"
    assert cache.is_dir() and any(cache.iterdir())
    assert "#### WRITE src/new.py: print('hi')" in (tmp_path / "chat.md").read_text()
    assert status(repo) == {" M README.md", "?? src/new.py", "?? .aider.tags.cache.v4/cache.db"}


def test_aider_api_error_prints_litellm_error_and_still_exits_zero(
    repo: Path, tmp_path: Path
) -> None:
    done = aider(repo, tmp_path, UET_FAKE_SCENARIO="api_error")
    assert done.returncode == 0
    assert "litellm.AuthenticationError: " in done.stdout
    assert "Tokens:" not in done.stdout
    assert not (repo / "src/new.py").exists()


def test_aider_no_cost_prints_tokens_without_cost(repo: Path, tmp_path: Path) -> None:
    done = aider(repo, tmp_path, UET_FAKE_SCENARIO="no_cost")
    assert done.returncode == 0
    usage = [line for line in done.stdout.splitlines() if line.startswith("Tokens:")]
    assert usage and all("Cost:" not in line for line in usage)
    assert (repo / "src/new.py").exists()


@pytest.mark.parametrize("scenario", ["no_change", "tool_calls_fail", "permission_denied"])
def test_aider_scenarios_without_edits(repo: Path, tmp_path: Path, scenario: str) -> None:
    done = aider(repo, tmp_path, UET_FAKE_SCENARIO=scenario)
    assert done.returncode == 0
    assert "Applied edit" not in done.stdout
    assert status(repo) == {"?? .aider.tags.cache.v4/cache.db"}


def test_aider_without_yes_always_skips_new_files(repo: Path, tmp_path: Path) -> None:
    message = tmp_path / "m.txt"
    message.write_text(PROMPT)
    done = run(
        [
            "aider",
            "--message-file",
            str(message),
            "--no-auto-commits",
            "--no-gitignore",
            "--chat-history-file",
            str(tmp_path / "c.md"),
        ],
        repo,
    )
    assert done.returncode == 0
    assert "Skipping edits to src/new.py" in done.stdout
    assert not (repo / "src/new.py").exists()


def test_aider_auto_commits_unless_told_not_to(repo: Path, tmp_path: Path) -> None:
    message = tmp_path / "m.txt"
    message.write_text("WRITE a.txt: x\n")
    done = run(
        [
            "aider",
            "--message-file",
            str(message),
            "--yes-always",
            "--no-gitignore",
            "--chat-history-file",
            str(tmp_path / "c.md"),
        ],
        repo,
    )
    assert done.returncode == 0
    assert "(aider)" in git(repo, "log", "-1", "--format=%an")


def test_aider_usage_errors(repo: Path, tmp_path: Path) -> None:
    done = aider(repo, tmp_path, PROMPT, "--bogus")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: aider ")
    assert done.stderr.endswith("aider: error: unrecognized arguments: --bogus\n")
    missing = run(
        [
            "aider",
            "--message-file",
            str(tmp_path / "nope.txt"),
            "--yes-always",
            "--chat-history-file",
            str(tmp_path / "c.md"),
        ],
        repo,
    )
    assert missing.returncode == 1
    assert "Message file not found" in missing.stdout
    version = run(["aider", "--version"], repo)
    assert (version.returncode, version.stdout.startswith("aider 0.")) == (0, True)


# --------------------------------------------------------------------------- claude


def claude(
    repo: Path, prompt: str = PROMPT, *more: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return run(["claude", *CLAUDE_FLAGS, *more], repo, prompt, **extra)


def test_claude_success_prints_one_result_object(repo: Path) -> None:
    done = claude(repo, PROMPT, "--model", "sonnet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["type"] == "result"
    assert (result["subtype"], result["is_error"]) == ("success", False)
    assert result["total_cost_usd"] > 0
    assert set(result["usage"]) >= {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    }
    assert list(result["modelUsage"]) == ["claude-sonnet-4-5-20250929"]
    assert result["permission_denials"] == []
    for key in ("duration_ms", "duration_api_ms", "num_turns", "result", "session_id"):
        assert key in result
    # Claude writes nothing in the worktree but the edits.
    assert status(repo) == {" M README.md", "?? src/new.py"}


def test_claude_verbose_prints_an_array_ending_in_the_result(repo: Path) -> None:
    done = claude(repo, PROMPT, "--verbose")
    messages = json.loads(done.stdout)
    assert isinstance(messages, list)
    assert messages[0]["type"] == "system" and messages[-1]["type"] == "result"


def test_claude_api_error_is_success_subtype_with_is_error_and_exit_1(repo: Path) -> None:
    done = claude(repo, UET_FAKE_SCENARIO="api_error")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert (result["subtype"], result["is_error"]) == ("success", True)
    assert result["result"].startswith("API Error: 401 ")
    assert status(repo) == set()


def test_claude_max_turns(repo: Path) -> None:
    done = claude(repo, UET_FAKE_SCENARIO="max_turns")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert (result["subtype"], result["is_error"]) == ("error_max_turns", True)
    assert result["errors"] == ["Reached maximum number of turns (5)"]
    assert "total_cost_usd" in result


def test_claude_no_cost_keeps_the_field_at_zero(repo: Path) -> None:
    result = json.loads(claude(repo, UET_FAKE_SCENARIO="no_cost").stdout)
    assert result["total_cost_usd"] == 0


@pytest.mark.parametrize(
    ("scenario", "tools"), [("tool_calls_fail", {"Bash"}), ("permission_denied", {"Write", "Edit"})]
)
def test_claude_denials_are_no_error(repo: Path, scenario: str, tools: set[str]) -> None:
    done = claude(repo, UET_FAKE_SCENARIO=scenario)
    assert done.returncode == 0
    result = json.loads(done.stdout)
    assert result["is_error"] is False
    assert result["permission_denials"]
    assert {denial["tool_name"] for denial in result["permission_denials"]} == tools
    assert status(repo) == set()


def test_claude_without_accept_edits_is_denied_the_write(repo: Path) -> None:
    done = run(["claude", "-p", "--output-format", "json"], repo, "WRITE a.txt: x\n")
    result = json.loads(done.stdout)
    assert result["permission_denials"][0]["tool_name"] == "Write"
    assert not (repo / "a.txt").exists()


def test_claude_usage_errors_like_commander(repo: Path) -> None:
    done = claude(repo, PROMPT, "--bogus")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: unknown option '--bogus'\n",
    )
    # The variadic --allowedTools swallows a positional prompt, as in the real CLI.
    swallowed = run(["claude", "-p", "--allowedTools", "Read", "WRITE a.txt: x"], repo)
    assert swallowed.returncode == 1
    assert "Input must be provided" in swallowed.stderr
    version = run(["claude", "--version"], repo)
    assert version.stdout.endswith(" (Claude Code)\n")


def test_claude_takes_a_positional_prompt(repo: Path) -> None:
    done = run(
        [
            "claude",
            "-p",
            "WRITE a.txt: x",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
        ],
        repo,
    )
    assert done.returncode == 0
    assert (repo / "a.txt").read_text() == "x\n"


# --------------------------------------------------------------------------- codex


def codex(
    repo: Path, prompt: str = PROMPT, *more: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return run(["codex", *CODEX_FLAGS, *more, "-"], repo, prompt, **extra)


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_codex_success_streams_thread_events(repo: Path) -> None:
    done = codex(repo, PROMPT, "-m", "gpt-5-codex", "-C", str(repo))
    assert done.returncode == 0, done.stderr
    stream = events(done.stdout)
    assert stream[0]["type"] == "thread.started" and "thread_id" in stream[0]
    assert stream[1] == {"type": "turn.started"}
    changes = [
        e["item"]
        for e in stream
        if e["type"] == "item.completed" and e["item"]["type"] == "file_change"
    ]
    assert [(c["changes"], c["status"]) for c in changes] == [
        ([{"path": str(repo / "src/new.py"), "kind": "add"}], "completed"),
        ([{"path": str(repo / "README.md"), "kind": "update"}], "completed"),
    ]
    assert any(
        e["type"] == "item.completed" and e["item"]["type"] == "agent_message" for e in stream
    )
    assert stream[-1]["type"] == "turn.completed"
    assert set(stream[-1]["usage"]) == {"input_tokens", "cached_input_tokens", "output_tokens"}
    assert status(repo) == {" M README.md", "?? src/new.py"}


def test_codex_api_error_fails_the_turn_with_exit_1(repo: Path) -> None:
    done = codex(repo, UET_FAKE_SCENARIO="api_error")
    assert done.returncode == 1
    stream = events(done.stdout)
    assert stream[-2]["type"] == "error"
    assert stream[-1]["type"] == "turn.failed" and stream[-1]["error"]["message"]
    assert status(repo) == set()


def test_codex_failed_tool_calls_still_complete_the_turn(repo: Path) -> None:
    done = codex(repo, UET_FAKE_SCENARIO="tool_calls_fail")
    assert done.returncode == 0
    stream = events(done.stdout)
    commands = [
        e["item"]
        for e in stream
        if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"
    ]
    assert commands and all(c["status"] == "failed" and c["exit_code"] != 0 for c in commands)
    assert stream[-1]["type"] == "turn.completed"
    assert status(repo) == set()


def test_codex_default_sandbox_is_read_only(repo: Path) -> None:
    done = run(["codex", "exec", "--json", "-"], repo, "WRITE a.txt: x\n")
    assert done.returncode == 0
    failed = [
        e
        for e in events(done.stdout)
        if e["type"] == "item.completed" and e["item"]["type"] == "file_change"
    ]
    assert failed[0]["item"]["status"] == "failed"
    assert not (repo / "a.txt").exists()


def test_codex_usage_errors_like_clap(repo: Path, tmp_path: Path) -> None:
    done = codex(repo, PROMPT, "--bogus")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: unexpected argument '--bogus' found\n")
    assert done.stderr.endswith("For more information, try '--help'.\n")
    outside = tmp_path / "plain"
    outside.mkdir()
    untrusted = run(["codex", "exec", "--json", "-"], outside, "hi")
    assert untrusted.returncode == 1
    assert "--skip-git-repo-check" in untrusted.stderr
    empty = run(["codex", "exec", "--json", "--skip-git-repo-check", "-"], repo, "")
    assert (empty.returncode, empty.stderr) == (1, "No prompt provided via stdin.\n")
    assert run(["codex", "--version"], repo).stdout.startswith("codex-cli ")


def test_codex_takes_a_positional_prompt(repo: Path) -> None:
    done = run(["codex", *CODEX_FLAGS, "WRITE a.txt: x"], repo)
    assert done.returncode == 0
    assert (repo / "a.txt").read_text() == "x\n"


# --------------------------------------------------------------------------- common machinery


@pytest.mark.parametrize("tool", ["aider", "claude", "codex"])
def test_transient_api_errors_look_retryable(repo: Path, tmp_path: Path, tool: str) -> None:
    if tool == "aider":
        done = aider(repo, tmp_path, UET_FAKE_SCENARIO="api_error_transient")
        assert done.returncode == 0
        assert "litellm.RateLimitError" in done.stdout and "Retrying in" in done.stdout
    elif tool == "claude":
        done = claude(repo, UET_FAKE_SCENARIO="api_error_transient")
        result = json.loads(done.stdout)
        assert (done.returncode, result["is_error"], result["api_error_status"]) == (1, True, 529)
        assert "overloaded" in result["result"]
    else:
        done = codex(repo, UET_FAKE_SCENARIO="api_error_transient")
        assert done.returncode == 1
        failed = events(done.stdout)[-1]
        assert failed["type"] == "turn.failed" and "429" in failed["error"]["message"]
    assert status(repo) == ({"?? .aider.tags.cache.v4/cache.db"} if tool == "aider" else set())


def test_scenario_file_is_consumed_one_line_per_run_and_the_last_repeats(
    repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "scenarios"
    script.write_text("api_error\nsuccess\n")
    codes = [
        codex(repo, "WRITE a.txt: x\n", UET_FAKE_SCENARIO_FILE=str(script)).returncode
        for _ in range(3)
    ]
    assert codes == [1, 0, 0]
    assert script.read_text() == "success\n"


def test_unknown_scenario_fails_loudly(repo: Path) -> None:
    done = claude(repo, UET_FAKE_SCENARIO="nonsense")
    assert done.returncode == 70
    assert "unknown scenario" in done.stderr


def test_every_run_is_logged_with_its_exact_argv(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    claude(repo, PROMPT, UET_FAKE_LOG=str(log))
    codex(repo, PROMPT, UET_FAKE_LOG=str(log))
    lines = log.read_text().splitlines()
    assert lines == [
        f"claude {json.dumps(CLAUDE_FLAGS)}",
        f"codex {json.dumps([*CODEX_FLAGS, '-'])}",
    ]


@pytest.mark.parametrize("tool", ["aider", "claude", "codex"])
def test_echo_feedback_writes_the_prompt(repo: Path, tmp_path: Path, tool: str) -> None:
    echo = tmp_path / "echo.txt"
    prompt = f"Fix it.\nECHO-FEEDBACK {echo}\n"
    if tool == "aider":
        aider(repo, tmp_path, prompt)
    elif tool == "claude":
        claude(repo, prompt)
    else:
        codex(repo, prompt)
    assert echo.read_text() == prompt


def hang_argv(tool: str, tmp_path: Path) -> list[str]:
    if tool == "aider":
        (tmp_path / "m.txt").write_text("WRITE a.txt: x\n")
        return [
            "aider",
            "--message-file",
            str(tmp_path / "m.txt"),
            *AIDER_FLAGS,
            "--chat-history-file",
            str(tmp_path / "c.md"),
        ]
    if tool == "claude":
        return ["claude", *CLAUDE_FLAGS, "WRITE a.txt: x"]
    return ["codex", *CODEX_FLAGS, "WRITE a.txt: x"]


@pytest.mark.parametrize("tool", ["aider", "claude", "codex"])
@pytest.mark.parametrize(("mode", "code"), [("exit", 143), ("signal", -signal.SIGTERM)])
def test_hang_waits_until_sigterm(
    repo: Path, tmp_path: Path, tool: str, mode: str, code: int
) -> None:
    extra = {"UET_FAKE_SCENARIO": "hang", "UET_FAKE_SIGTERM": mode}
    with subprocess.Popen(
        hang_argv(tool, tmp_path),
        cwd=repo,
        env=env_with(**extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        time.sleep(1.0)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == code
    assert not (repo / "a.txt").exists()
