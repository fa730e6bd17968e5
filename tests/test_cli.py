"""`uet` as a user runs it: a subprocess, the embedded dev server started on demand, the demo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import git_out, make_demo_repo, snapshot, uet_process

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("uet-home")
    env = {
        **os.environ,
        "UET_HOME": str(home),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "UET_UI_PORT": str(free_port()),
        "UET_TASK_QUEUE": "uet-cli-test",
    }
    env.pop("TEMPORAL_NAMESPACE", None)
    yield env
    uet("server", "stop", env=env)


def uet(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return uet_process(*args, env=env, timeout=timeout)


def demo_repo(tmp_path: Path) -> Path:
    return make_demo_repo(tmp_path / "demo-repo")


def test_demo_runs_end_to_end_on_the_embedded_server(cli_env: dict[str, str], tmp_path: Path):
    repo = demo_repo(tmp_path)
    before = snapshot(repo)
    # As a user runs it: the sandbox as the worker finds it (bubblewrap here), not the tests'.
    as_a_user = {k: v for k, v in cli_env.items() if k != "UET_SANDBOX"}
    result = uet("run", str(DEMO / "phase.yaml"), "--repo", str(repo), "--json", env=as_a_user)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "completed"
    assert len(record["workstreams"]) >= 6 and len(record["waves"]) >= 3
    assert {w["status"] for w in record["workstreams"].values()} == {"completed"}
    assert all(w["commit"] for w in record["workstreams"].values())
    branch = record["integration_branch"]
    assert branch == f"uet/{record['run_id']}/integration"
    assert record["head_sha"] == git_out(repo, "rev-parse", branch)
    assert record["workflow_id"] == f"uet-{record['run_id']}"
    ui = f"http://localhost:{cli_env['UET_UI_PORT']}/namespaces/default/workflows/uet-"
    assert ui + record["run_id"] in result.stderr
    assert snapshot(repo) == before
    # The embedded server was left running in the background for inspection.
    assert (Path(cli_env["UET_HOME"]) / "server.pid").exists()
    assert (Path(cli_env["UET_HOME"]) / "temporal.db").exists()

    status = uet("status", record["run_id"], "--json", env=cli_env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == record


def test_detach_returns_at_once_and_a_background_worker_finishes(
    cli_env: dict[str, str], make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = repo.parent / "phase.yaml"
    spec.write_text(
        "phase_id: PH-DETACH\nworkstreams:\n"
        "  - {workstream_id: ws-1, execution_request: {command: 'echo one > one.txt'}}\n"
        "  - {workstream_id: ws-2, dependencies: [ws-1],"
        " execution_request: {command: 'cp one.txt two.txt'}}\n"
    )
    started = uet("run", str(spec), "--repo", str(repo), "--detach", env=cli_env)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    assert len(run_id) == 26  # a ULID
    deadline = time.monotonic() + 60
    while True:
        status = uet("status", run_id, "--json", env=cli_env)
        record = json.loads(status.stdout) if status.returncode in (0, 1) and status.stdout else {}
        if record.get("status") in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert record["status"] == "completed", status.stderr
    assert git_out(repo, "show", f"{record['head_sha']}:two.txt") == "one"


def test_failed_run_exit_code_and_reason(cli_env: dict[str, str], make_repo) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = repo.parent / "phase.yaml"
    spec.write_text(
        "phase_id: PH-FAIL\ndefaults: {review: never}\nworkstreams:\n"
        "  - workstream_id: ws-1\n    execution_request: {command: 'touch x'}\n"
        "    acceptance_criteria: {gates: [{gate_id: unit, command: 'echo 2 failed; exit 1'}]}\n"
    )
    result = uet("run", str(spec), "--repo", str(repo), "--json", env=cli_env)
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    # The command cannot react to feedback, so the fix loop's first attempt repeats the patch.
    reason = record["workstreams"]["ws-1"]["reason"]
    assert reason.startswith("patch quarantined: oscillation: repeats attempt 1 exactly")
    assert "it was fixing gate unit (exit 1)" in reason and "2 failed" in reason


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("not-git", 2, "is not a git repository"),
        ("no-commits", 2, "has no commits yet"),
        ("bad-base-ref", 2, "base_ref 'nope' does not name a commit"),
        ("bad-spec", 2, "unknown dependency 'ws-x'"),
        ("unreachable", 3, "Temporal at uet-nowhere.invalid:7233 is unreachable"),
    ],
)
def test_user_mistakes_get_one_line_and_an_exit_code(
    cli_env: dict[str, str], tmp_path: Path, make_repo, case: str, code: int, message: str
) -> None:
    env = dict(cli_env)
    repo = tmp_path / "plain"
    repo.mkdir()
    spec_text = (
        "phase_id: P\nworkstreams:\n  - {workstream_id: a, execution_request: {command: x}}\n"
    )
    if case == "no-commits":
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    elif case in ("bad-base-ref", "bad-spec", "unreachable"):
        repo = make_repo({"f": "x\n"}, name="real")
    if case == "bad-base-ref":
        spec_text = "base_ref: nope\n" + spec_text
    if case == "bad-spec":
        spec_text = spec_text.replace(
            "{workstream_id: a,", "{workstream_id: a, dependencies: [ws-x],"
        )
    if case == "unreachable":
        env["TEMPORAL_ADDRESS"] = "uet-nowhere.invalid:7233"
    spec = tmp_path / "phase.yaml"
    spec.write_text(spec_text)
    result = uet("run", str(spec), "--repo", str(repo), env=env, timeout=60)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0]
