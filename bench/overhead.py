"""What uet adds on top of the work itself.

    python bench/overhead.py [--workstreams 200] [--sandboxed 50] [--artifacts-url URL]

N trivial `patch` workstreams (each adds one small file), run by uet at max_parallel 1 and 8 on
a local dev server, against a plain shell loop doing the same `git apply` + `git commit`.
Prints uet's time per workstream, the loop's, the ratio, and the Temporal round trips (workflow
and activity tasks) one workstream costs, counted in the histories.

Then what the sandbox costs a tool run: ``--sandboxed`` `shell` workstreams (one file written,
one gate) at max_parallel 4 with ``sandbox: {mode: none}`` and ``{mode: bwrap}``: ms per
workstream each and the ratio (two sandboxed processes per workstream: the tool, the gate).

``--artifacts-url`` puts the artifacts where ``UET_ARTIFACTS_URL`` would (default: the local
folder): a path, a ``postgresql+psycopg://`` URL, or ``postgres`` for a temporary PostgreSQL
server of the bench's own (Debian's binaries, started as the tests start theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import local_server  # noqa: E402
from helpers import phase, run_input, run_phase  # noqa: E402
from pg_server import postgres_bin, running_postgres  # noqa: E402

from activities.lib.artifacts import open_artifact_store  # noqa: E402
from runtime.plugin import build_worker  # noqa: E402
from runtime.settings import Settings  # noqa: E402


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "commit", "-q", "--allow-empty", "-m", "base")
    return path


def patch_for(i: int) -> bytes:
    return (
        f"diff --git a/f{i:04d}.txt b/f{i:04d}.txt\nnew file mode 100644\n"
        f"--- /dev/null\n+++ b/f{i:04d}.txt\n@@ -0,0 +1 @@\n+file {i}\n"
    ).encode()


def shell_loop(root: Path, n: int) -> float:
    """The same work without uet: apply each patch and commit it, one after another."""
    repo = make_repo(root / "loop")
    patches = root / "patches"
    patches.mkdir()
    for i in range(n):
        (patches / f"{i}.diff").write_bytes(patch_for(i))
    script = (
        f"for i in $(seq 0 {n - 1}); do git apply --index {patches}/$i.diff && "
        'git -c user.name=b -c user.email=b@b commit -q -m "ws $i"; done'
    )
    started = time.monotonic()
    subprocess.run(["sh", "-c", script], cwd=repo, check=True)
    return time.monotonic() - started


async def round_trips(client, workflow_id: str, n: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(workflow tasks, activity tasks, local activities) per workstream, over the phase and
    all its children."""
    ids = [workflow_id]
    async for execution in client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}/"'):
        ids.append(execution.id)
    wft = act = local = 0
    for wf_id in ids:
        history = await client.get_workflow_handle(wf_id).fetch_history()
        for event in history.events:
            wft += event.HasField("workflow_task_completed_event_attributes")
            act += event.HasField("activity_task_completed_event_attributes")
            local += event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    return wft / n, act / n, local / n


async def main(n: int, sandboxed: int, artifacts_url: str) -> None:
    with contextlib.ExitStack() as stack:
        if artifacts_url == "postgres":
            bindir = postgres_bin()
            if bindir is None:
                sys.exit("--artifacts-url postgres: no PostgreSQL (apt-get install postgresql)")
            artifacts_url = stack.enter_context(running_postgres(bindir)).create_database("bench")
        if artifacts_url:
            # Read by the worker's state dir when it is built, as a deployment's would be.
            os.environ["UET_ARTIFACTS_URL"] = artifacts_url
        await _bench(n, sandboxed)


async def _bench(n: int, sandboxed: int) -> None:
    env = await local_server.start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loop_s = shell_loop(root, n)
        print(
            f"shell loop: {n} x (git apply + git commit) in {loop_s:.2f}s = "
            f"{1000 * loop_s / n:.1f} ms per workstream",
            flush=True,
        )
        settings = Settings(home=root / "home", task_queue="bench", ui_port=0)
        store = open_artifact_store(settings.home)
        print(f"artifacts: {type(store).__name__} at {store.location}", flush=True)
        refs = {f"ws-{i:04d}": store.put_bytes(patch_for(i), "text/x-diff") for i in range(n)}
        async with build_worker(env.client, settings):
            for parallel in (1, 8):
                spec = phase(
                    max_parallel=parallel,
                    workstreams=[
                        {
                            "workstream_id": ws,
                            "execution_request": {"tool_id": "patch", "patch_file": f"{ws}.diff"},
                        }
                        for ws in refs
                    ],
                )
                input = run_input(spec, make_repo(root / f"repo-{parallel}"))
                input.patch_files = refs
                started = time.monotonic()
                record = await run_phase(env.client, settings, input)
                uet_s = time.monotonic() - started
                assert record.status == "completed", record.reason
                wft, act, local = await round_trips(env.client, record.workflow_id, n)
                per_ws = 1000 * uet_s / n
                print(
                    f"uet max_parallel {parallel}: {uet_s:.2f}s = {per_ws:.1f} ms per workstream"
                    f" ({per_ws / (1000 * loop_s / n):.1f}x the loop; overhead "
                    f"{per_ws - 1000 * loop_s / n:.1f} ms); {wft:.1f} workflow tasks and "
                    f"{act:.1f} activities (+{local:.1f} local) per workstream",
                    flush=True,
                )
            timed: dict[str, float] = {}
            for mode in ("none", "bwrap") if sandboxed else ():
                spec = phase(
                    max_parallel=4,
                    defaults={"workspace": {"sandbox": {"mode": mode}}, "review": "never"},
                    workstreams=[
                        {
                            "workstream_id": f"ws-{i:04d}",
                            "execution_request": {"command": f"echo {i} > f{i}.txt"},
                            "acceptance_criteria": {
                                "gates": [{"gate_id": "g", "command": f"test -f f{i}.txt"}]
                            },
                        }
                        for i in range(sandboxed)
                    ],
                )
                input = run_input(spec, make_repo(root / f"repo-{mode}"))
                started = time.monotonic()
                record = await run_phase(env.client, settings, input)
                timed[mode] = 1000 * (time.monotonic() - started) / sandboxed
                assert record.status == "completed", record.reason
                print(f"shell + gate, sandbox {mode}: {timed[mode]:.1f} ms per workstream")
            if timed:
                print(
                    f"sandbox bwrap / none: {timed['bwrap'] / timed['none']:.2f}x "
                    f"(+{timed['bwrap'] - timed['none']:.1f} ms per workstream)",
                    flush=True,
                )
    await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workstreams", type=int, default=200)
    parser.add_argument("--sandboxed", type=int, default=50, help="0: skip the sandbox's part")
    parser.add_argument(
        "--artifacts-url",
        default="",
        metavar="URL",
        help="where artifacts go: a path, a postgresql+psycopg:// URL, or postgres (a temporary "
        "server); default: the local folder",
    )
    args = parser.parse_args()
    asyncio.run(main(args.workstreams, args.sandboxed, args.artifacts_url))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalization under the Temporal core's threads
