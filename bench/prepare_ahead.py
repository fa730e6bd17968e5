"""What starting workstreams ahead of their slot saves when a checkout takes time to ready.

    python bench/prepare_ahead.py [--workstreams 12] [--tool-s 2] [--setup-s 1] [--runs 2]
                                  [--ahead N]

``--workstreams`` independent `shell` workstreams, each a ``sleep --tool-s``, whose workspace
runs a setup of ``sleep --setup-s`` in every checkout (what ``npm ci`` or ``pip install`` is to
a real project, without a cache), at max_parallel 4 on a local dev server: once with
``prepare_ahead: 0`` (each workstream readies its checkout in its slot) and once with the
default or ``--ahead`` (the next ones ready theirs while the slots are busy, and start their
tools the moment a slot frees). Runs alternate, so both see the same machine. Prints each
makespan, the bound with and without the setup in the slot (``ceil(n / 4)`` turns), and the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import local_server  # noqa: E402
from dag_efficiency import SLOTS, make_repo  # noqa: E402
from helpers import phase, run_input, run_phase  # noqa: E402

from runtime.plugin import build_worker  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from schemas.spec import PhaseSpec  # noqa: E402


def spec(workstreams: int, tool_s: float, setup_s: float, ahead: int | None) -> PhaseSpec:
    return phase(
        max_parallel=SLOTS,
        **({} if ahead is None else {"prepare_ahead": ahead}),
        defaults={
            "resilience_policy": {"max_fix_attempts": 0},
            "workspace": {"setup": [f"sleep {setup_s:g}"]},
        },
        workstreams=[
            {
                "workstream_id": f"ws-{n:02d}",
                "execution_request": {"command": f"sleep {tool_s:g}; echo {n} > f{n}.txt"},
            }
            for n in range(workstreams)
        ],
    )


async def main(
    workstreams: int, tool_s: float, setup_s: float, runs: int, ahead: int | None
) -> None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = await local_server.start()
    default = spec(workstreams, tool_s, setup_s, ahead).ahead_places
    times: dict[str, list[float]] = {"prepare_ahead 0": [], f"prepare_ahead {default}": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp) / "home", task_queue="bench", ui_port=0)
            async with build_worker(env.client, settings):
                for k in range(runs + 1):  # the first pair warms the worker
                    for label, places in zip(times, (0, ahead), strict=True):
                        repo = make_repo(Path(tmp) / f"repo-{k}-{label[-1]}")
                        the_spec = spec(workstreams, tool_s, setup_s, places)
                        started = time.monotonic()
                        record = await run_phase(env.client, settings, run_input(the_spec, repo))
                        assert record.status == "completed", record.reason
                        if k:
                            times[label].append(time.monotonic() - started)
    finally:
        await env.shutdown()
    turns = math.ceil(workstreams / SLOTS)
    tools_only = turns * tool_s
    in_slot = turns * (tool_s + setup_s)
    print(
        f"{workstreams} workstreams, tool {tool_s:g}s, setup {setup_s:g}s, {SLOTS} slots: "
        f"bound {tools_only:.1f}s with setups out of the slots ({turns} turns), "
        f"{in_slot:.1f}s with each in its slot"
    )
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:18} makespan {median:6.2f}s (runs {', '.join(f'{v:.2f}' for v in values)})"
            f"  {median / tools_only:.2f}x the bound"
        )
    before, after = (statistics.median(v) for v in times.values())
    print(
        f"summary: starting ahead takes the makespan from {before:.2f}s to {after:.2f}s "
        f"({before / after:.2f}x faster)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workstreams", type=int, default=12)
    parser.add_argument("--tool-s", type=float, default=2.0)
    parser.add_argument("--setup-s", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=2, help="pairs of runs after a warm-up pair")
    parser.add_argument("--ahead", type=int, help="prepare_ahead against 0 (default: its own)")
    args = parser.parse_args()
    asyncio.run(main(args.workstreams, args.tool_s, args.setup_s, args.runs, args.ahead))
