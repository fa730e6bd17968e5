"""A worker killed mid-phase loses nothing: a new worker on the same queue finishes the run,
and every workstream lands on the integration branch exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import git_out, phase, record_of, run_input
from temporalio.client import Client, WorkflowExecutionStatus

from runtime.plugin import build_worker
from runtime.settings import Settings
from schemas.refs import workflow_id
from schemas.run import PhaseState, WorkstreamState
from workflows.phase import PhaseWorkflow


def start_worker_process(client: Client, settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "UET_TASK_QUEUE": settings.task_queue,
        "UET_HOME": str(settings.home),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, cwd=Path(__file__).parent.parent
    )


async def test_worker_sigkilled_mid_tool_then_replaced(
    client: Client, settings: Settings, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    runs = tmp_path / "tool-runs.log"  # outside the repo: counts how often each tool ran

    def slow_tool(ws_id: str) -> str:
        return f"echo {ws_id} >> {runs} && sleep 1.5 && echo {ws_id} > {ws_id}.txt"

    spec = phase(
        max_parallel=2,
        # One attempt for the tools' own errors: a killed worker must not spend it.
        defaults={"resilience_policy": {"max_attempts": 1}},
        workstreams=[
            {"workstream_id": "ws-a", "execution_request": {"command": slow_tool("ws-a")}},
            {"workstream_id": "ws-b", "execution_request": {"command": slow_tool("ws-b")}},
            {
                "workstream_id": "ws-c",
                "dependencies": ["ws-a"],
                "execution_request": {"command": slow_tool("ws-c")},
            },
            {
                "workstream_id": "ws-d",
                "dependencies": ["ws-b", "ws-c"],
                "execution_request": {"command": "cat ws-a.txt ws-b.txt ws-c.txt > ws-d.txt"},
            },
        ],
    )
    input = run_input(spec, repo, heartbeat_timeout_s=2)
    doomed = start_worker_process(client, settings)
    try:
        handle = await client.start_workflow(
            PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
        )
        # Kill the worker while wave 1's tools are running (they log their start). A worker
        # process starting on a loaded machine (CI runs four test processes on two cores)
        # can take many seconds: this waits for the tools, with a limit only for a hang.
        deadline = asyncio.get_running_loop().time() + 60
        while not (runs.exists() and len(runs.read_text().split()) >= 2):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the worker process never started the wave-1 tools")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()

    interrupted = Counter(runs.read_text().split())
    assert interrupted == {"ws-a": 1, "ws-b": 1}, "killed mid-tool, before any tool finished"
    async with build_worker(client, settings):
        record = await record_of(handle)

    assert record.status == PhaseState.COMPLETED, record.reason
    assert all(s.status == WorkstreamState.COMPLETED for s in record.workstreams.values())
    # The interrupted tools ran again (at-least-once work), the rest once ...
    assert Counter(runs.read_text().split()) == {"ws-a": 2, "ws-b": 2, "ws-c": 1}
    # ... but each workstream is committed and integrated exactly once.
    trailers = git_out(
        repo, "log", "--format=%(trailers:key=Uet-Workstream,valueonly)", record.head_sha or ""
    ).split()
    assert Counter(trailers) == {"ws-a": 1, "ws-b": 1, "ws-c": 1, "ws-d": 1}
    assert git_out(repo, "show", f"{record.head_sha}:ws-d.txt").split() == ["ws-a", "ws-b", "ws-c"]


async def test_cancelling_a_run_kills_the_running_tool(
    client: Client, settings: Settings, make_repo, tmp_path: Path
) -> None:
    repo: Path = make_repo({"base.txt": "base\n"})
    started, finished = tmp_path / "started", tmp_path / "finished"
    spec = phase(
        workstreams=[
            {
                "workstream_id": "ws-slow",
                "execution_request": {"command": f"touch {started} && sleep 4 && touch {finished}"},
            }
        ],
    )
    input = run_input(spec, repo, heartbeat_timeout_s=1)
    async with build_worker(client, settings):
        handle = await client.start_workflow(
            PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
        )
        for _ in range(200):
            if started.exists():
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        child = client.get_workflow_handle(f"{workflow_id(input.run_id)}/ws/ws-slow")
        for _ in range(100):
            if (await child.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED
        for _ in range(100):  # the phase compensates before it ends
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        await asyncio.sleep(5)  # longer than the tool would have needed
    assert started.exists() and not finished.exists(), "the tool outlived its cancelled run"
