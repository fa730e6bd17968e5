#!/usr/bin/env python3
"""Chaos run: a phase under random SIGKILLs of its worker and its Temporal dev server.

    python scripts/chaos.py [--worker-kills 30] [--server-kills 5] [--seed N]
                            [--spec examples/demo/phase.yaml] [--keep DIR]

Builds the demo's sample repository twice, runs the spec once uninterrupted and once under
chaos, and compares: the integration trees must be equal, every workstream must appear exactly
once on the integration branch (its ``Uet-Workstream`` trailer) and the ledger must hold exactly
one ``committed`` entry per workstream. Exit 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
# Gates run `python3 -m pytest`: this interpreter's bin dir comes first for the worker.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

from chaos.runner import DEMO_SPEC, ChaosReport, Kill, chaos_run, make_demo_repo, with_tool_delay  # noqa: E402


def check(clean: ChaosReport, chaos: ChaosReport) -> list[str]:
    problems = []
    for name, report in (("uninterrupted", clean), ("chaos", chaos)):
        status = report.record.status if report.record else None
        if report.error:
            problems.append(f"{name}: {report.error}")
        if status != "completed":
            problems.append(f"{name}: status {status}")
        if not report.exactly_once:
            problems.append(f"{name}: trailers {dict(report.trailers)} (want each exactly once)")
        if not report.ledger_complete:
            problems.append(f"{name}: ledger {report.ledger_problems}")
    if clean.tree is None or clean.tree != chaos.tree:
        problems.append(f"trees differ: uninterrupted {clean.tree} vs chaos {chaos.tree}")
    return problems


async def main(args: argparse.Namespace) -> int:
    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="uet-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        spec = Path(args.spec).resolve()
        if args.tool_delay:
            spec = with_tool_delay(spec, work / "spec" / spec.name, args.tool_delay)
        print(
            f"spec {spec}  tool delay {args.tool_delay:g}s  seed {args.seed}  work dir {work}",
            flush=True,
        )
        clean = await chaos_run(
            spec,
            make_demo_repo(work / "repo-clean"),
            worker_kills=0,
            server_kills=0,
            seed=args.seed,
            home=work / "home-clean",
            heartbeat_timeout_s=args.heartbeat_timeout,
        )
        print("uninterrupted:\n" + clean.summary(), flush=True)

        def shout(kill: Kill) -> None:
            print(f"  ... kill {kill.kind} at {kill.at_s:.1f}s: {kill.moment}", flush=True)

        chaos = await chaos_run(
            spec,
            make_demo_repo(work / "repo-chaos"),
            worker_kills=args.worker_kills,
            server_kills=args.server_kills,
            seed=args.seed,
            home=work / "home-chaos",
            heartbeat_timeout_s=args.heartbeat_timeout,
            deadline_s=args.deadline,
            stall_s=args.stall,
            on_kill=shout,
        )
        print("chaos:\n" + chaos.summary(), flush=True)
        problems = check(clean, chaos)
        print(
            f"\nSUMMARY seed={args.seed} kills: worker {chaos.worker_kills}/{args.worker_kills} "
            f"server {chaos.server_kills}/{args.server_kills}; wall: uninterrupted "
            f"{clean.wall_s:.1f}s, chaos {chaos.wall_s:.1f}s; trees "
            f"{'equal' if clean.tree == chaos.tree else 'DIFFER'}; "
            f"result: {'OK' if not problems else 'FAIL'}"
        )
        for problem in problems:
            print(f"  MISMATCH {problem}")
        if problems:
            print(f"logs and state kept in {work}")
        return 1 if problems else 0
    finally:
        if not args.keep and "problems" in locals() and not problems:
            shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-kills", type=int, default=30)
    parser.add_argument("--server-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 31))
    parser.add_argument("--spec", default=str(DEMO_SPEC))
    parser.add_argument("--heartbeat-timeout", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=1800, help="seconds after the last kill")
    parser.add_argument(
        "--stall", type=float, default=60, help="fail when nothing moves for this many seconds"
    )
    parser.add_argument(
        "--tool-delay",
        type=float,
        default=0,
        help="make every shell tool sleep this long first: a longer run, more kills mid-tool",
    )
    parser.add_argument("--keep", help="work in this directory and keep it")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
