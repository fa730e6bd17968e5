"""Workers anywhere: hosts simulated on one machine with nothing on disk in common.

Two worker processes with their own ``UET_HOME`` and a CLI with a third; the repository served
by a real ``git daemon`` on loopback and given by URL; artifacts and telemetry in a real
PostgreSQL. What must hold: the demo phase completes on the URL with the same tree as a local
run, even when one worker is SIGKILLed mid-run; a tool only one host has runs there; a tool no
host has makes the workstream wait and say so — and go on once a host offering it joins.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import git_out, make_demo_repo, uet_process
from temporalio.client import Client

from schemas.refs import workflow_id
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
FAKES = ROOT / "tests" / "fakes"
pytestmark = pytest.mark.timeout(420)


class Host:
    """One simulated host: its own state dir, its own PATH (the tools it has), a worker."""

    def __init__(self, name: str, root: Path, env: dict[str, str], tools: tuple[str, ...]):
        self.name = name
        self.home = root / name / "uet-home"
        self.home.mkdir(parents=True)
        self.fake_log = root / name / "fake-invocations.log"
        bin_dir = root / name / "bin"
        bin_dir.mkdir()
        for tool in tools:  # this host "has" these AI CLIs: the fakes, by their real names
            (bin_dir / tool).symlink_to(FAKES / tool)
        self.env = {
            **env,
            "UET_HOME": str(self.home),
            "UET_FAKE_LOG": str(self.fake_log),
            "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / name / "worker.log"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=self.home,  # not the source tree: nothing shared by path
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """As a host dies: no goodbye, no cleanup."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def database(postgres_url: str) -> str:
    """A database of the test's own on the session's PostgreSQL."""
    import psycopg

    name = f"uet_hosts_{uuid.uuid4().hex[:8]}"
    server = postgres_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def team(client: Client, database: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    """What every process of the deployment is given: the server, the queue, the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UET_", "TEMPORAL_"))}
    env.update(
        {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "UET_TASK_QUEUE": f"uet-hosts-{uuid.uuid4().hex[:8]}",
            "UET_DATABASE_URL": database,
            "UET_SANDBOX": "none",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
    )
    hosts: list[Host] = []

    def host(name: str, *tools: str) -> Host:
        made = Host(name, tmp_path, env, tools)
        hosts.append(made)
        made.start()
        return made

    yield {"env": env, "host": host, "root": tmp_path}
    for made in hosts:
        made.stop()


def cli_env(team: dict[str, object], name: str = "cli") -> dict[str, str]:
    home = Path(str(team["root"])) / name / "uet-home"
    home.mkdir(parents=True, exist_ok=True)
    return {**team["env"], "UET_HOME": str(home)}  # type: ignore[dict-item]


async def wait_for_workers(client: Client, queue: str, count: int) -> None:
    from activities.lib.pollers import live_pollers

    deadline = time.monotonic() + 60
    while len(await live_pollers(client, queue) or []) < count:
        assert time.monotonic() < deadline, f"{count} workers never polled {queue}"
        await asyncio.sleep(0.2)


async def status_until(client: Client, run_id: str, predicate, timeout_s: float = 120):  # type: ignore[no-untyped-def]
    handle = client.get_workflow_handle(workflow_id(run_id))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            record = await handle.query(PhaseWorkflow.status)
            if predicate(record):
                return record
        except Exception:  # not started yet, or between workflow tasks of a dead worker
            record = None
        assert time.monotonic() < deadline, f"never reached; last: {record}"
        await asyncio.sleep(0.3)


async def test_the_demo_on_a_url_survives_a_killed_worker_and_matches_a_local_run(
    client: Client, team: dict[str, object], git_daemon, tmp_path: Path
) -> None:
    repo = make_demo_repo(tmp_path / "demo")
    url: str = git_daemon(repo, "demo")
    env = cli_env(team)
    queue = env["UET_TASK_QUEUE"]
    a = team["host"]("host-a")  # type: ignore[operator]
    b = team["host"]("host-b")  # type: ignore[operator]
    await wait_for_workers(client, queue, 2)

    started = await asyncio.to_thread(
        uet_process, "run", str(DEMO / "phase.yaml"), "--repo", url, "--no-worker", "--detach",
        "--heartbeat-timeout", "5", env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    # Host A dies in the middle of a step it runs (what `uet workers` says it runs).
    from runtime.workers import worker_table

    deadline = time.monotonic() + 120
    while True:
        rows = {r.identity.split("@")[0]: r for r in await worker_table(client, queue)}
        busy = rows.get(str(a.process.pid))  # type: ignore[union-attr]
        if busy is not None and busy.running:
            break
        assert time.monotonic() < deadline, "host A never ran anything"
        await asyncio.sleep(0.1)
    a.kill()
    lost = busy.running[0]
    record = await status_until(
        client, run_id, lambda r: r.status in ("completed", "failed"), timeout_s=300
    )
    assert record.status == "completed", f"{record.reason} (host A died running {lost})"
    assert {w.status for w in record.workstreams.values()} == {"completed"}

    # The same phase run locally, the way a user runs it on their own repository.
    local_repo = make_demo_repo(tmp_path / "demo-local")
    local_env = {**cli_env(team, "local"), "UET_TASK_QUEUE": f"local-{uuid.uuid4().hex[:6]}"}
    local_env["UET_DATABASE_URL"] = f"sqlite:///{tmp_path / 'local.db'}"
    done = await asyncio.to_thread(
        uet_process,
        "run",
        str(DEMO / "phase.yaml"),
        "--repo",
        str(local_repo),
        "--json",
        env=local_env,
    )
    assert done.returncode == 0, done.stderr
    local = json.loads(done.stdout)
    served = git_daemon.root / "demo.git"  # type: ignore[attr-defined]
    assert git_out(served, "rev-parse", f"{record.head_sha}^{{tree}}") == git_out(
        local_repo, "rev-parse", f"{local['head_sha']}^{{tree}}"
    )
    # No artifact crossed a disk: the CLI's home has none, the workers read PostgreSQL.
    # No artifact crossed a disk: the CLI stored the patch files in PostgreSQL, not at home.
    assert not list(Path(env["UET_HOME"]).glob("artifacts/sha256/*/*"))

    # The user's clone gets the result with `uet fetch`, nothing of theirs changes.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", url, str(clone)], check=True)
    before = git_out(clone, "rev-parse", "HEAD")
    fetched = await asyncio.to_thread(uet_process, "fetch", run_id, "--repo", str(clone), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert git_out(clone, "rev-parse", f"uet/{run_id}/integration") == record.head_sha
    assert git_out(clone, "rev-parse", "HEAD") == before
    assert git_out(clone, "status", "--porcelain") == ""
    b.stop()


async def test_tools_go_only_to_hosts_that_have_them_and_a_missing_one_waits(
    client: Client, team: dict[str, object], git_daemon, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"src/app.py": "VALUE = 1\n"})
    url: str = git_daemon(repo)
    env = cli_env(team)
    queue = env["UET_TASK_QUEUE"]
    with_claude = team["host"]("host-claude", "claude")  # type: ignore[operator]
    plain = team["host"]("host-plain")  # type: ignore[operator]
    await wait_for_workers(client, queue, 2)

    # A worker starts polling its queues one after another: ask until both are up on all.
    wanted = {
        str(with_claude.process.pid): ["shell", "patch", "claude"],  # type: ignore[union-attr]
        str(plain.process.pid): ["shell", "patch"],  # type: ignore[union-attr]
    }
    deadline = time.monotonic() + 60
    while True:
        listed = await asyncio.to_thread(uet_process, "workers", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        offers = {row["identity"].split("@")[0]: row for row in json.loads(listed.stdout)}
        if {pid: offers.get(pid, {}).get("tools") for pid in wanted} == wanted:
            break
        assert time.monotonic() < deadline, f"uet workers never showed {wanted}: {offers}"
        await asyncio.sleep(0.5)
    assert "python" in offers[str(plain.process.pid)]["labels"]  # type: ignore[union-attr]
    assert len({row["code"] for row in offers.values()}) == 1  # one version of uet's code

    spec = tmp_path / "phase.yaml"
    spec.write_text(
        "phase_id: PH-HOSTS\nworkstreams:\n"
        "  - workstream_id: ws-claude\n"
        '    execution_request: {tool_id: claude, prompt: "WRITE src/helper.py: X = 42"}\n'
        "  - workstream_id: ws-codex\n"
        '    execution_request: {tool_id: codex, prompt: "WRITE docs/usage.md: # Usage"}\n'
        "  - workstream_id: ws-shell\n"
        "    execution_request: {command: 'echo hi > hi.txt'}\n"
    )
    started = await asyncio.to_thread(
        uet_process, "run", str(spec), "--repo", url, "--no-worker", "--detach",
        "--heartbeat-timeout", "2", env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    record = await status_until(
        client,
        run_id,
        lambda r: (
            r.workstreams["ws-codex"].waiting == "no worker offers `codex`"
            and r.workstreams["ws-claude"].status == "completed"
        ),
    )
    assert record.workstreams["ws-shell"].status == "completed"
    shown = await asyncio.to_thread(uet_process, "status", run_id, env=env)
    assert "no worker offers `codex`" in shown.stdout + shown.stderr
    # Claude ran on the host that has it, and only there.
    assert "claude" in with_claude.fake_log.read_text()
    assert not plain.fake_log.exists()

    # A host with codex joins: the waiting workstream goes on there.
    joined = team["host"]("host-codex", "codex")  # type: ignore[operator]
    record = await status_until(client, run_id, lambda r: r.status in ("completed", "failed"))
    assert record.status == "completed", record.reason
    assert record.workstreams["ws-codex"].waiting is None
    assert "codex" in joined.fake_log.read_text()


def test_a_host_offers_the_tools_on_its_path_and_labels_its_toolchains(tmp_path: Path) -> None:
    from runtime.capabilities import detect, parse_identity
    from runtime.errors import UserError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(FAKES / "claude")
    (bin_dir / "node").write_text("#!/bin/sh\n")
    (bin_dir / "node").chmod(0o755)
    found = detect({"PATH": str(bin_dir), "UET_WORKER_LABELS": "gpu, Big-Disk"})
    assert found.tools == ("shell", "patch", "claude")
    assert found.labels == ("big-disk", "gpu", "node")
    who, labels, code = parse_identity(found.identity())
    assert who == f"{os.getpid()}@{__import__('socket').gethostname()}"
    assert labels == found.labels
    assert len(code) == 12 and code == found.code
    assert parse_identity("4242@elsewhere") == ("4242@elsewhere", (), "")
    # Declared tools win over what is installed; a tool uet has no adapter for is refused.
    assert detect({"PATH": str(bin_dir), "UET_WORKER_TOOLS": "codex,shell"}).tools == (
        "shell",
        "codex",
    )
    with pytest.raises(UserError, match="names cursor, which uet has no adapter for"):
        detect({"PATH": str(bin_dir), "UET_WORKER_TOOLS": "cursor"})
    with pytest.raises(UserError, match="is not a label"):
        detect({"PATH": str(bin_dir), "UET_WORKER_LABELS": "has space"})
