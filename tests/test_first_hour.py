"""What a new user meets in the first hour (issue 11): no silent hangs, the truth after a
rollback, honest progress, and one clear line for every mistake.

Real Temporal dev server, real git, real `uet` processes; standard input is not a terminal
unless a test gives the process one (a pseudo-terminal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    cli,
    cli_env,
    git_out,
    phase,
    record_of,
    run_input,
    snapshot,
    start_phase,
    wait_for_status,
)
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.lib.process import ProcessResult, missing_program
from runtime.cli import parser
from runtime.plugin import build_worker
from runtime.settings import Settings
from schemas.run import PhaseState, RunOptions, WorkstreamState
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent
FAILING = {"gates": [{"gate_id": "unit", "command": "echo 'E assert 1 == 2'; exit 1"}]}


def awaiting(s) -> bool:  # type: ignore[no-untyped-def]
    return s.status == PhaseState.AWAITING_REVIEW


def write_spec(folder: Path, text: str) -> Path:
    spec = folder / "phase.yaml"
    spec.write_text(text)
    return spec


CHAIN = """phase_id: PH-CHAIN
workstreams:
  - {workstream_id: a, execution_request: {command: "echo a > a.txt"}}
  - {workstream_id: b, dependencies: [a], execution_request: {command: "echo b > b.txt"}}
  - {workstream_id: c, dependencies: [b], execution_request: {command: "echo c > c.txt"}}
"""

#: One workstream whose gate fails, no fix attempts: with the default review (on_failure) it
#: asks a person.
FAILING_SPEC = """phase_id: PH-FAILING
workstreams:
  - workstream_id: a
    execution_request: {command: "echo x > x.txt"}
    resilience_policy: {max_fix_attempts: 0}
    acceptance_criteria:
      gates: [{gate_id: unit, command: "echo 'E assert 1 == 2'; exit 1"}]
"""


# -- 1. a first failure never hangs a foreground run silently ----------------------------------


async def test_an_unattended_run_fails_instead_of_waiting_for_a_reviewer(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, FAILING_SPEC)
    uet = cli(client, settings)
    # Before: the run asked for a review and `uet run` waited for a person forever.
    result = await uet("run", str(spec), "--repo", str(repo), "--json", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "reviews: off (standard input is not a terminal" in result.stderr
    record = json.loads(result.stdout)
    assert record["reviews"] == []
    assert record["workstreams"]["a"]["status"] == "failed"
    assert record["workstreams"]["a"]["reason"].startswith("gate unit exited with 1")


async def test_review_timeout_from_the_command_line(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, FAILING_SPEC)
    uet = cli(client, settings)
    result = await uet(
        "run", str(spec), "--repo", str(repo), "--review-timeout", "2s", "--json", timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "the run waits up to 2s, then reject" in result.stderr
    assert "review needed: a (gates_failed)" in result.stderr
    assert "waits for a decision until" in result.stderr
    assert "review of a: reject (timed out) by uet" in result.stderr
    (review,) = json.loads(result.stdout)["reviews"]
    assert review["timed_out"] and review["decision"]["decision"] == "reject"


async def test_no_review_rejects_approvals_at_once_and_fails_failures(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "gated",
                "review": "always",
                "execution_request": {"command": "echo g > g.txt"},
            },
            {
                "workstream_id": "broken",
                "execution_request": {"command": "echo b > b.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING,
            },
        ]
    )
    input = run_input(spec, repo)
    input.options = RunOptions(heartbeat_timeout_s=5, no_review=True)
    record = await record_of(await start_phase(client, settings, input))
    assert record.workstreams["broken"].status == WorkstreamState.FAILED
    assert (record.workstreams["broken"].reason or "").startswith("gate unit exited with 1")
    assert record.workstreams["gated"].status == WorkstreamState.DROPPED
    (review,) = record.reviews
    assert review.request.workstream_id == "gated" and review.decision is not None
    assert (review.decision.decision, review.decision.reviewer) == ("reject", "uet")
    assert "--no-review" in review.decision.comment and not review.timed_out


async def test_on_a_terminal_the_run_says_it_waits_and_goes_on_when_answered(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, FAILING_SPEC)
    primary, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter",
        "run",
        str(spec),
        "--repo",
        str(repo),
        cwd=ROOT,
        env=cli_env(client, settings),
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    try:
        assert proc.stderr is not None
        seen = ""
        deadline = time.monotonic() + 60
        while "uet reject" not in seen:
            line = await asyncio.wait_for(proc.stderr.readline(), deadline - time.monotonic())
            assert line, seen
            seen += line.decode()
        assert "the run waits without a time limit" in seen
        assert "review needed: a (gates_failed)" in seen
        assert "without a time limit (review_timeout_s)" in seen
        run_id = re.search(r"run (\w{26}) of phase", seen).group(1)  # type: ignore[union-attr]
        approved = await cli(client, settings)("approve", run_id, "a", "--reviewer", "carol")
        assert approved.returncode == 0, approved.stderr
        _, rest = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, rest.decode()
        assert "review of a: approve by carol" in rest.decode()
    finally:
        os.close(primary)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- 2. a gate command that does not exist is an environment error -----------------------------


def _result(tail: str, code: int = 127) -> ProcessResult:
    return ProcessResult(code, False, code == 127, 0.0, tail, Path("/dev/null"))


@pytest.mark.parametrize(
    ("command", "tail", "program"),
    [
        ("pytestt -q", "/bin/sh: 1: pytestt: not found\n", "pytestt"),
        ("cd src && ruff check", "bash: line 1: ruff: command not found\n", "ruff"),
        ("/opt/none/bin/x", "sh: /opt/none/bin/x: not found", "/opt/none/bin/x"),
        ("./check.sh", "/bin/sh: 1: ./check.sh: not found\n", None),  # the change may add it
    ],
)
def test_missing_program(command: str, tail: str, program: str | None) -> None:
    assert missing_program(command, _result(tail)) == program


def test_missing_program_of_an_argv_command() -> None:
    missing = ProcessResult(None, False, True, 0.0, "No such file", Path("/dev/null"))
    assert missing_program(["pytestt", "-q"], missing) == "pytestt"
    assert missing_program(["pytest"], _result("1 failed", code=1)) is None


async def test_a_missing_gate_program_fails_at_once(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    runs = tmp_path / "tool-runs.log"
    spec = phase(
        gates=[{"gate_id": "all", "command": "pytestt -q"}],
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": f"echo >> {runs}; echo a > a.txt"},
                "resilience_policy": {"max_fix_attempts": 2},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "pytestt -q"}]},
            },
            {"workstream_id": "b", "execution_request": {"command": "echo b > b.txt"}},
        ],
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    a = record.workstreams["a"]
    assert a.status == WorkstreamState.FAILED
    assert a.reason and a.reason.startswith("gate_command_not_found: pytestt (gate unit)")
    assert "oscillation" not in a.reason
    assert runs.read_text().count("\n") == 1  # the tool ran once: no fix attempt
    assert record.reviews == []  # and nobody was asked
    states = [
        json.loads(line)
        for line in (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
    ]
    (entry,) = [e for e in states if e["workstream_id"] == "a"]
    held = [h for h in entry["state_history"] if h["state"] == "quarantined"]
    assert [h["reason"] for h in held] == ["gate unit: gate_command_not_found: pytestt"]
    # The phase gate's program is missing too: said the same way.
    assert record.reason and "phase gate all gate_command_not_found: pytestt" in record.reason


async def test_a_missing_script_in_the_checkout_still_gets_fix_attempts(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    runs = tmp_path / "tool-runs.log"
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": f"echo >> {runs}; echo a > a.txt"},
                "resilience_policy": {"max_fix_attempts": 1},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "./check.sh"}]},
            },
        ],
    )
    record = await record_of(await start_phase(client, settings, run_input(spec, repo)))
    assert runs.read_text().count("\n") == 2  # the tool may be the one to create it
    assert "gate_command_not_found" not in (record.workstreams["a"].reason or "")


# -- 3. status agrees with the repository after a rollback --------------------------------------


async def test_rollback_of_a_finished_run_without_a_worker_and_status_after_it(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN)
    uet = cli(client, settings)
    ran = await uet("run", str(spec), "--repo", str(repo), "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    run_id, base = record["run_id"], record["base_sha"]

    beyond = await uet("rollback", run_id, "--to-wave", "5")
    assert beyond.returncode == 2 and "it has only 3 waves in place" in beyond.stderr
    assert beyond.stderr.count("\n") == 1, beyond.stderr
    last = await uet("rollback", run_id, "--to-wave", "3")
    assert last.returncode == 2 and "nothing comes after it" in last.stderr
    assert json.loads((await uet("status", run_id, "--json")).stdout)["status"] == "completed"

    # No worker runs (the run's own was `uet run`'s): the rollback runs one of its own.
    back = await uet("rollback", run_id, "--to-wave", "1", timeout=60)
    assert back.returncode == 0, back.stderr
    assert "this process runs the rollback" in back.stderr
    wave_1 = git_out(repo, "rev-parse", f"refs/tags/uet/{run_id}/wave-1")
    status = await uet("status", run_id, "--json")
    after = json.loads(status.stdout)
    assert (after["status"], after["head_sha"]) == ("rolled_back", wave_1)
    assert git_out(repo, "rev-parse", after["integration_branch"]) == wave_1
    human = await uet("status", run_id)
    assert f"{run_id} rolled_back back to wave 1/3 head={wave_1}" in human.stdout

    everything = await uet("rollback", run_id, timeout=60)
    assert everything.returncode == 0, everything.stderr
    after = json.loads((await uet("status", run_id, "--json")).stdout)
    assert (after["status"], after["head_sha"]) == ("rolled_back", base)
    listed = await uet("runs", "--json")
    assert {"run_id": run_id, "status": "rolled_back"}.items() <= next(
        r for r in json.loads(listed.stdout) if r["run_id"] == run_id
    ).items()


async def test_cancel_without_a_worker_runs_one(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN)
    uet = cli(client, settings)
    started = await uet("run", str(spec), "--repo", str(repo), "--detach", "--no-worker")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    cancelled = await uet("cancel", run_id, timeout=60)  # before: waited forever
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{run_id} canceled" in cancelled.stdout
    assert "this process runs the cancellation" in cancelled.stderr


# -- 4. honest progress --------------------------------------------------------------------------


async def test_each_wave_header_comes_before_its_workstreams(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN)
    result = await cli(client, settings)("run", str(spec), "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    wave_of = {"a": 1, "b": 2, "c": 3}
    header = 0
    seen = []
    for line in result.stderr.splitlines():
        if match := re.match(r"wave (\d+)/3: ", line):
            header = int(match.group(1))
        elif match := re.match(r"  ([abc])\s+(running|completed)", line):
            seen.append(match.group(1))
            assert header == wave_of[match.group(1)], result.stderr
    assert sorted(set(seen)) == ["a", "b", "c"]


async def test_eager_runs_count_steps_not_waves(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN.replace("workstreams:", "scheduling: eager\nworkstreams:"))
    uet = cli(client, settings)
    result = await uet("run", str(spec), "--repo", str(repo), "--json")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"wave \d+/", result.stderr), result.stderr
    assert "each integration is a numbered step" in result.stderr
    steps = re.findall(r"  ([abc])\s+completed \w+  step (\d)", result.stderr)
    assert sorted(steps) == [("a", "1"), ("b", "2"), ("c", "3")], result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    status = await uet("status", run_id)
    assert f"{run_id} completed step 3 " in status.stdout
    assert "wave" not in status.stdout + status.stderr.replace("web ui", "")


async def test_fix_attempts_and_gate_failures_show_as_they_happen(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(
        repo.parent,
        """phase_id: PH-FIX
workstreams:
  - workstream_id: a
    execution_request:
      command: 'if [ -n "$UET_FEEDBACK_FILE" ]; then echo ok > s.txt; else echo no > s.txt; fi'
    acceptance_criteria: {gates: [{gate_id: ok, command: "grep -qx ok s.txt"}]}
""",
    )
    result = await cli(client, settings)("run", str(spec), "--repo", str(repo))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    failed = next(
        i for i, line in enumerate(lines) if "a  · gate ok failed (exited with 1)" in line
    )
    fixing = next(i for i, line in enumerate(lines) if "a  · fix attempt 1 of 2" in line)
    done = next(i for i, line in enumerate(lines) if re.match(r"  a\s+completed", line))
    assert failed < fixing < done, result.stderr


# -- 5. reviews: never "none" when it could not ask -------------------------------------------


async def test_reviews_without_a_worker_say_so_and_exit_1(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING,
            },
        ]
    )
    input = run_input(spec, repo)
    async with build_worker(client, settings):
        handle = await start_phase(client, settings, input)
        await wait_for_status(handle, awaiting)
    query = f'WorkflowId = "{handle.id}" AND UetStatus = "awaiting_review"'
    for _ in range(100):  # visibility catches up within moments
        if [w async for w in client.list_workflows(query)]:
            break
        await asyncio.sleep(0.1)
    uet = cli(client, settings)
    listed = await uet("reviews", "--json")
    assert listed.returncode == 1, listed.stderr
    assert input.run_id in listed.stderr and "no worker answers" in listed.stderr
    one = await uet("reviews", input.run_id)
    assert one.returncode == 1 and "no pending reviews" not in one.stdout
    assert f"could not ask {input.run_id} for pending reviews" in one.stderr
    # The run is still there, waiting: cancel it (this process runs the cancellation).
    assert (await uet("cancel", input.run_id, timeout=60)).returncode == 0


# -- 6. what is left running, and finding runs ---------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_start_status_stop_and_what_a_run_leaves_running(tmp_path: Path, make_repo) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN)
    env = {
        **os.environ,
        "UET_HOME": str(tmp_path / "home"),
        "UET_UI_PORT": str(_free_port()),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "UET_TASK_QUEUE": "uet-left",
    }

    def uet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "starter", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    try:
        started = uet("server", "start")
        assert started.returncode == 0, started.stderr
        pid = re.search(r"in the background \(pid (\d+), log (\S+)\)", started.stdout)
        assert pid, started.stdout
        assert Path(pid.group(2).rstrip(";")).is_file()
        assert "`uet server stop` ends it" in started.stdout
        assert "already running" in uet("server", "start").stdout
        status = uet("server", "status")
        assert f"background server: running (pid {pid.group(1)}" in status.stdout
        assert "answers" in status.stdout
        detached = uet("run", str(spec), "--repo", str(repo), "--detach")
        assert detached.returncode == 0, detached.stderr
        assert re.search(
            r"started a background worker \(pid \d+, log \S+worker.log\)", detached.stderr
        ), detached.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = json.loads(uet("runs", "--json").stdout)
            if listed and listed[0]["status"] == "completed":
                break
            time.sleep(0.5)
        assert listed[0]["run_id"] == detached.stdout.strip()
        assert listed[0]["phase_id"] == "PH-CHAIN" and listed[0]["ended"]
        none = uet("runs", "--status", "failed")
        assert none.returncode == 0 and "no runs with status failed" in none.stderr
    finally:
        stopped = uet("server", "stop")
    assert stopped.stdout.strip() == "stopped: worker, server"


async def test_a_run_that_starts_the_server_says_so(tmp_path: Path, make_repo) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(repo.parent, CHAIN)
    env = {
        **os.environ,
        "UET_HOME": str(tmp_path / "home"),
        "UET_UI_PORT": str(_free_port()),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "UET_TASK_QUEUE": "uet-says",
    }
    command = [sys.executable, "-m", "starter", "run", str(spec), "--repo", str(repo)]
    try:
        first = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert first.returncode == 0, first.stderr
        assert "started the embedded Temporal server in the background (pid" in first.stderr
        second = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert second.returncode == 0 and "started the embedded" not in second.stderr  # once
    finally:
        subprocess.run(
            [sys.executable, "-m", "starter", "server", "stop"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
        )


# -- 7. the work tree: left alone, and said so ---------------------------------------------------


async def test_a_dirty_work_tree_is_named_and_left_alone(
    client: Client, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n", "g.txt": "g\n"})
    spec = write_spec(repo.parent, CHAIN)
    (repo / "f.txt").write_text("edited, not committed\n")
    (repo / "scratch.txt").write_text("untracked\n")
    before = snapshot(repo)
    index = (repo / ".git" / "index").read_bytes()
    result = await cli(client, settings)("run", str(spec), "--repo", str(repo), "--json")
    assert result.returncode == 0, result.stderr
    assert f"note: {repo} has uncommitted changes (1 modified, 1 untracked)" in result.stderr
    assert "starts from the commit at HEAD and leaves them out" in result.stderr
    assert snapshot(repo) == before and (repo / ".git" / "index").read_bytes() == index
    head = json.loads(result.stdout)["head_sha"]
    assert git_out(repo, "show", f"{head}:f.txt") == "f"
    assert "scratch.txt" not in git_out(repo, "ls-tree", "--name-only", head)
    clean: Path = make_repo({"f.txt": "f\n"}, name="clean")
    quiet = await cli(client, settings)("run", str(spec), "--repo", str(clean))
    assert quiet.returncode == 0 and "uncommitted" not in quiet.stderr


# -- 8. help that helps ----------------------------------------------------------------------


def test_every_argument_has_help_and_every_command_examples() -> None:
    import argparse

    top = parser()
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) >= {"run", "runs", "status", "server", "reviews", "rollback"}
    for name, command in sub.choices.items():
        assert (command.epilog or "").startswith("examples:\n  uet"), name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    for action in top._actions:
        assert action.help, action.dest


def test_version_and_suggestions(tmp_path: Path) -> None:
    def uet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "starter", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    version = uet("--version")
    assert version.returncode == 0 and re.fullmatch(r"uet \d+\.\d+\.\d+\n", version.stdout)
    spec = tmp_path / "p.yaml"
    ws = "  - {workstream_id: a, execution_request: {tool_id: bash, command: x}}\n"
    spec.write_text(f"phase_id: PH-X\ntitle: typo\nmax_paralel: 2\nworkstreams:\n{ws}")
    checked = uet("validate", str(spec))
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    # The field's own line, not the mapping's (line 1).
    assert checked.stderr == (
        f"uet: {spec}:3: $: unknown field 'max_paralel' (did you mean 'max_parallel'?)\n"
    )
    spec.write_text(f"phase_id: PH-X\nworkstreams:\n{ws}")
    checked = uet("validate", str(spec))
    assert checked.returncode == 2
    assert "unknown tool 'bash' (did you mean 'shell'?)" in checked.stderr


def test_status_of_a_remote_server_does_not_suggest_the_embedded_one(tmp_path: Path) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": "uet-nowhere.invalid:7233", "UET_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "starter", "status", "01J00000000000000000000000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "check TEMPORAL_ADDRESS and that the server there is up" in result.stderr
    assert "uet server" not in result.stderr


async def test_ctrl_c_names_the_run(client: Client, settings: Settings, make_repo) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = write_spec(
        repo.parent,
        "phase_id: PH-SLOW\nworkstreams:\n"
        "  - {workstream_id: a, execution_request: {command: 'sleep 60'}}\n",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter",
        "run",
        str(spec),
        "--repo",
        str(repo),
        # The cancel below waits for the dead worker's tool to be given up on: not 30 s.
        "--heartbeat-timeout",
        "5",
        cwd=ROOT,
        env=cli_env(client, settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = ""
    while "  a  running" not in seen:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, seen
        seen += line.decode()
    run_id = re.search(r"run (\w{26}) of phase", seen).group(1)  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)
    _, rest = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130
    assert f"uet: interrupted; run {run_id} stays open in Temporal" in rest.decode()
    assert f"`uet cancel {run_id}` stops it" in rest.decode()
    assert "Traceback" not in rest.decode()
    assert (await cli(client, settings)("cancel", run_id, timeout=60)).returncode == 0


async def test_a_cancelled_runs_status_shows_no_stale_review(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING,
            },
        ]
    )
    input = run_input(spec, repo)
    handle = await start_phase(client, settings, input)
    await wait_for_status(handle, awaiting)
    uet = cli(client, settings)
    assert (await uet("cancel", input.run_id)).returncode == 0
    status = await uet("status", input.run_id)
    assert f"{input.run_id} canceled" in status.stdout
    assert "review needed" not in status.stderr and "uet approve" not in status.stderr


# -- 9. a bad signal is one log line -------------------------------------------------------------


async def test_a_bad_decision_is_one_line_for_signal_and_update(
    client: Client, settings: Settings, worker: Worker, make_repo, caplog: pytest.LogCaptureFixture
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "a",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING,
            },
        ]
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, awaiting)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    bad = {"review_id": request.review_id, "decision": "approved", "reviewer": "alice"}
    with caplog.at_level(logging.WARNING):
        await handle.signal("review_decision", bad)
        await handle.query(PhaseWorkflow.status)  # the signal is handled before this answers
        await asyncio.sleep(0.5)
    mine = [r for r in caplog.records if "review_decision" in r.getMessage()]
    assert len(mine) == 1, [r.getMessage() for r in caplog.records]
    (line,) = mine
    assert (
        "review_decision signal ignored: invalid review decision: decision: Input should be "
        "'approve', 'reject', 'adjust' or 'retry' (got 'approved')" in line.getMessage()
    )
    assert line.exc_info is None and "\n" not in line.getMessage()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("submit_review", bad)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message.startswith("invalid review decision: decision: Input should be")
    assert "\n" not in cause.message and "errors.pydantic.dev" not in cause.message
    # Still pending: neither changed anything.
    assert [r.review_id for r in await handle.query(PhaseWorkflow.pending_reviews)] == [
        request.review_id
    ]
    await handle.cancel()


async def test_a_worker_says_it_started(client: Client, settings: Settings) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter",
        "worker",
        cwd=ROOT,
        env=cli_env(client, settings),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        target = client.service_client.config.target_host
        assert f"worker started: task queue '{settings.task_queue}' on {target}" in line
    finally:
        proc.terminate()
        await proc.wait()


# -- 10. the Web UI tells uet's truth -------------------------------------------------------------


async def test_children_end_as_their_workstreams_did(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "gates",
                "execution_request": {"command": "echo x > x"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": FAILING,
            },
            {
                "workstream_id": "missing",
                "review": "never",
                "execution_request": {"command": ["uet-no-such-program", "x"]},
            },
            {"workstream_id": "fine", "execution_request": {"command": "echo y > y"}},
        ]
    )
    input = run_input(spec, repo)
    handle = await start_phase(client, settings, input)
    await wait_for_status(handle, awaiting)

    async def failure(ws: str) -> str:
        child = client.get_workflow_handle(f"{handle.id}/ws/{ws}")
        with pytest.raises(WorkflowFailureError) as failed:
            await child.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        return cause.message

    # Before: COMPLETED and green while its workstream waited for a review.
    assert (await failure("gates")).startswith("gates needs a review (gates_failed): gate unit")
    missing = await failure("missing")
    assert missing.startswith("missing: command not found") and "missing: missing:" not in missing
    assert await client.get_workflow_handle(f"{handle.id}/ws/fine").result()
    await handle.cancel()


# -- 11. the docs say what happens ------------------------------------------------------------


def test_the_readme_documents_every_command_and_the_new_messages() -> None:
    import argparse

    readme = (ROOT / "README.md").read_text()
    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name in sub.choices:
        assert (
            f"`uet {name}" in readme
            or f"uet approve\\|{name}" in readme
            or name in ("reject", "retry", "adjust")
        ), name
    for text in (
        "gate_command_not_found",
        "--no-review",
        "--review-timeout",
        "uet server start",
        "uet runs",
        "worker's environment",
    ):
        assert text in readme, text
    assert "about a minute" not in readme
    assert not re.search(r"\)\n [A-Z]", readme), "a stray line after an image"
