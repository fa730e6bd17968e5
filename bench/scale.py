"""A 2,000-workstream phase on the embedded server.

    python bench/scale.py [--workstreams 2000] [--waves 20] [--max-parallel 8]

Trivial `patch` workstreams (each adds one file) in chains, one per column, so the plan has
exactly `--waves` waves. The server (log level warn, log kept) and a `python -m worker` run as
their own processes, like a real deployment. Prints the wall time, history events per
workstream, the largest single history (events and bytes), the worker's peak RSS, and every
history or payload size warning the server logged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import phase, record_of, run_input, start_phase  # noqa: E402
from overhead import make_repo, patch_for  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402

from activities.lib.artifacts import LocalArtifactStore  # noqa: E402
from activities.lib.parts import by_reference, whole_record  # noqa: E402
from runtime.connect import Target, connect  # noqa: E402
from runtime.devserver import headless_server_args  # noqa: E402
from runtime.settings import Settings  # noqa: E402

#: What the server says when a history or a payload passes its warning limit.
WARNING = re.compile(
    r"history size exceeds warn limit|history count exceeds warn limit|"
    r"[Bb]lob (data )?size exceeds",
    re.I,
)
#: The server's warning limits (Temporal defaults): 10,240 events and 10 MiB per history.
WARN_EVENTS, WARN_BYTES = 10_240, 10 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ws_id(i: int, width: int) -> str:
    return f"w{i // width:02d}-{i % width:04d}"


async def histories(client, workflow_id: str) -> tuple[list[tuple[int, int]], Counter[str]]:  # type: ignore[no-untyped-def]
    """(events, bytes) of every execution of the phase (each continue-as-new run) and its
    children; and the largest history's bytes by event type."""
    sizes = []
    largest: Counter[str] = Counter()
    query = f'WorkflowId = "{workflow_id}" OR WorkflowId STARTS_WITH "{workflow_id}/"'
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        sizes.append((len(history.events), sum(e.ByteSize() for e in history.events)))
        if sizes[-1][1] > sum(largest.values()):
            largest = Counter()
            for event in history.events:
                largest[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += (
                    event.ByteSize()
                )
    return sizes, largest


async def main(n: int, waves: int, parallel: int) -> int:
    width = n // waves
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        server_log = root / "server.log"
        server = subprocess.Popen(
            headless_server_args(port, log_level="warn"),
            stdout=server_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        settings = Settings(home=root / "home", task_queue="scale", ui_port=0)
        store = LocalArtifactStore(settings.home / "artifacts")
        refs = {ws_id(i, width): store.put_bytes(patch_for(i), "text/x-diff") for i in range(n)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        env.update(
            TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
            UET_HOME=str(settings.home),
            UET_TASK_QUEUE=settings.task_queue,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=ROOT,
            env=env,
            stdout=(root / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            client = None
            for _ in range(120):
                try:
                    client = await connect(Target(f"127.0.0.1:{port}", "default", {}), timeout_s=2)
                    break
                except Exception:
                    await asyncio.sleep(0.5)
            assert client is not None, "the dev server did not start"
            spec = phase(
                max_parallel=parallel,
                workstreams=[
                    {
                        "workstream_id": ws_id(i, width),
                        "dependencies": [ws_id(i - width, width)] if i >= width else [],
                        "execution_request": {"tool_id": "patch", "patch_file": f"{i}.diff"},
                    }
                    for i in range(n)
                ],
            )
            input = run_input(spec, make_repo(root / "repo"))
            input.patch_files = refs
            input = by_reference(input, store)  # as `uet run` sends it
            started = time.monotonic()
            carried = await record_of(await start_phase(client, settings, input))
            record = whole_record(carried, store)  # a large run returns it by reference
            wall = time.monotonic() - started
            rss = peak_rss_mib(worker.pid)
            sizes, by_type = await histories(client, record.workflow_id)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            server.terminate()
            server.wait(timeout=30)
        warnings = [
            line
            for line in server_log.read_text(errors="replace").splitlines()
            if WARNING.search(line)
        ]
        events = sum(e for e, _ in sizes)
        print(
            f"{n} workstreams in {len(record.waves)} waves, max_parallel {parallel}: "
            f"{record.status} in {wall:.1f}s ({1000 * wall / n:.1f} ms per workstream)"
        )
        print(
            f"histories: {len(sizes)}; {events / n:.1f} events per workstream; largest "
            f"{max(e for e, _ in sizes)} events (warn at {WARN_EVENTS}), "
            f"{max(b for _, b in sizes) / 2**20:.2f} MiB (warn at {WARN_BYTES / 2**20:.0f})"
        )
        print(
            "largest history by event type (KiB): "
            + ", ".join(f"{kind} {size / 1024:.0f}" for kind, size in by_type.most_common(6))
        )
        print(f"worker peak RSS: {rss:.0f} MiB; server warnings: {len(warnings)}")
        for line in warnings[:5]:
            fields = dict(re.findall(r"([\w-]+)=(\S+)", line))
            print(
                f"  {line.split('msg=')[-1].split(' service=')[0]} "
                f"{ {k: v for k, v in fields.items() if 'size' in k or 'count' in k} }"
            )
        ok = record.status == "completed" and not warnings and rss < 1024
        print(
            f"summary: {'PASS' if ok else 'FAIL'}: {n} workstreams in {wall:.0f}s, "
            f"{rss:.0f} MiB peak, {len(warnings)} warnings (targets: completes, 0, <1024 MiB)"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workstreams", type=int, default=2000)
    parser.add_argument("--waves", type=int, default=20)
    parser.add_argument("--max-parallel", type=int, default=8)
    args = parser.parse_args()
    code = asyncio.run(main(args.workstreams, args.waves, args.max_parallel))
    sys.stdout.flush()
    os._exit(code)  # skip interpreter finalization under the Temporal core's threads
