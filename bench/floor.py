"""uet's cost per workstream beside the floor: what Temporal itself needs for one child
workflow and one activity.

    python bench/floor.py [--workstreams 100] [--chain 40] [--repeat 2] [--default-journal]

In one run, on this machine:
- **floor**: a parent starting bare children one after another, each running one activity
  that does nothing (bench/floor_workflows.py), on an in-memory dev server with uet's
  task-queue settings (runtime/devserver.py DYNAMIC_CONFIG);
- **uet**: N trivial `patch` workstreams at `max_parallel: 1` (flat), and a dependency chain
  of `--chain` workstreams in eager mode (each step: a workstream and its integration), timed
  from the phase workflow's own start and close, on the same in-memory server and on the
  embedded server's SQLite file with uet's pragmas (WAL, synchronous=normal) — and with
  ``--default-journal`` also on SQLite's defaults, the embedded server before issue 20.

Prints ms per workstream (per chain step) for each, the ratios to the floor and the targets
(flat ≤ 1.5x, chain step ≤ 2.0x). Each figure is the best of ``--repeat`` runs: this VM's
speed varies by ±30 % from one run to the next, and the best is the least disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from floor_workflows import FloorChild, FloorParent, nothing  # noqa: E402
from helpers import phase, run_input  # noqa: E402
from overhead import make_repo, patch_for  # noqa: E402
from scale import free_port  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.lib.artifacts import open_artifact_store  # noqa: E402
from runtime.connect import Target, connect  # noqa: E402
from runtime.devserver import SQLITE_PRAGMAS, headless_server_args  # noqa: E402
from runtime.plugin import build_worker  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from schemas.refs import workflow_id  # noqa: E402
from workflows.phase import PhaseWorkflow  # noqa: E402

TARGET_FLAT, TARGET_CHAIN = 1.5, 2.0


@contextlib.asynccontextmanager
async def server(root: Path, storage: str) -> AsyncIterator[Client]:
    """A dev server process: ``memory``, ``wal`` (uet's SQLite pragmas) or ``default``
    (SQLite's own journal and synchronous=FULL)."""
    port = free_port()
    db = None if storage == "memory" else root / f"{storage}-{uuid.uuid4().hex[:6]}.db"
    args = headless_server_args(port, db)
    if storage == "default":
        pragmas = {f"{k}={v}" for k, v in SQLITE_PRAGMAS.items()}
        args = [a for a in args if a != "--sqlite-pragma" and a not in pragmas]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                client = await connect(Target(f"127.0.0.1:{port}", "default", {}), timeout_s=2)
                break
            except Exception:
                await asyncio.sleep(0.25)
        else:
            raise SystemExit(f"the {storage} dev server did not start")
        yield client
    finally:
        process.terminate()
        process.wait(timeout=30)


async def span_ms(client: Client, wf_id: str) -> float:
    """The workflow's own start to close (the parent's, every execution of it)."""
    description = await client.get_workflow_handle(wf_id).describe()
    assert description.close_time is not None and description.start_time is not None
    first = description.start_time
    async for execution in client.list_workflows(f'WorkflowId = "{wf_id}"'):
        first = min(first, execution.start_time)
    return (description.close_time - first).total_seconds() * 1000


async def floor_ms(client: Client, n: int) -> float:
    queue = f"floor-{uuid.uuid4().hex[:6]}"
    async with Worker(
        client, task_queue=queue, workflows=[FloorParent, FloorChild], activities=[nothing]
    ):
        wf_id = f"floor-{uuid.uuid4().hex[:8]}"
        await client.execute_workflow(FloorParent.run, n, id=wf_id, task_queue=queue)
        return await span_ms(client, wf_id) / n


async def uet_ms(client: Client, root: Path, n: int, chain: bool) -> float:
    tag = uuid.uuid4().hex[:6]
    settings = Settings(home=root / f"home-{tag}", task_queue=f"uet-{tag}", ui_port=0)
    store = open_artifact_store(settings.home)
    ids = [f"ws-{i:04d}" for i in range(n)]
    refs = {ws: store.put_bytes(patch_for(i), "text/x-diff") for i, ws in enumerate(ids)}
    spec = phase(
        max_parallel=1,
        scheduling="eager" if chain else "waves",
        workstreams=[
            {
                "workstream_id": ws,
                "dependencies": [ids[i - 1]] if chain and i else [],
                "execution_request": {"tool_id": "patch", "patch_file": f"{ws}.diff"},
            }
            for i, ws in enumerate(ids)
        ],
    )
    input = run_input(spec, make_repo(root / f"repo-{tag}"))
    input.patch_files = refs
    async with build_worker(client, settings):
        handle = await client.start_workflow(
            PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
        )
        record = await handle.result()
    assert record.status == "completed", record.reason
    return await span_ms(client, handle.id) / n


async def main(n: int, chain: int, repeat: int, default_journal: bool) -> int:
    storages = ["memory", "wal"] + (["default"] if default_journal else [])
    best: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        best[key] = min(best.get(key, value), value)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for _ in range(repeat):
            for storage in storages:
                async with server(root, storage) as client:
                    await floor_ms(client, 5)  # warm: the first tasks of a queue cost more
                    keep(f"floor {storage}", await floor_ms(client, n))
                    keep(f"flat {storage}", await uet_ms(client, root, n, chain=False))
                    keep(f"chain {storage}", await uet_ms(client, root, chain, chain=True))
                print(
                    f"  {storage}: floor {best[f'floor {storage}']:.1f} ms, uet flat "
                    f"{best[f'flat {storage}']:.1f} ms, chain step {best[f'chain {storage}']:.1f}"
                    " ms (best so far)",
                    flush=True,
                )
    floor = best["floor memory"]
    print(f"\nfloor (bare child + activity, in-memory server): {floor:.1f} ms")
    print(f"{'server':<26}{'floor':>9}{'flat':>9}{'xfloor':>8}{'chain':>9}{'xfloor':>8}")
    for storage in storages:
        name = {"memory": "in memory", "wal": "SQLite, WAL (uet)", "default": "SQLite defaults"}
        flat, step = best[f"flat {storage}"], best[f"chain {storage}"]
        print(
            f"{name[storage]:<26}{best[f'floor {storage}']:>9.1f}{flat:>9.1f}{flat / floor:>7.2f}x"
            f"{step:>9.1f}{step / floor:>7.2f}x"
        )
    flat, step = best["flat wal"] / floor, best["chain wal"] / floor
    ok = flat <= TARGET_FLAT and step <= TARGET_CHAIN
    print(
        f"summary: {'PASS' if ok else 'FAIL'}: on the embedded server's storage uet costs "
        f"{flat:.2f}x the floor per workstream (target {TARGET_FLAT}x) and {step:.2f}x per "
        f"chain step (target {TARGET_CHAIN}x)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workstreams", type=int, default=100, help="flat: how many")
    parser.add_argument("--chain", type=int, default=40, help="chain: how many steps")
    parser.add_argument("--repeat", type=int, default=2, help="runs; the best is kept")
    parser.add_argument(
        "--default-journal", action="store_true", help="also SQLite's defaults (before)"
    )
    args = parser.parse_args()
    code = asyncio.run(main(args.workstreams, args.chain, args.repeat, args.default_journal))
    sys.stdout.flush()
    os._exit(code)  # skip interpreter finalization under the Temporal core's threads
