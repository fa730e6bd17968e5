"""The dashboard at scale: `python bench/ui.py` (add `--screenshots` for docs/dashboard-*.png).

1. A synthetic 2,000-workstream run (20 waves of 100, each workstream after two of the wave
   before, a ledger entry and events for each finished one): the run page's render time and
   size, through the app's own route.
2. The same run going on live at bench/scale.py's pace (about 8.5 workstreams finishing a
   second, 8 running at once), with several pages' event streams open on a real server:
   bytes per second per stream, and the queries the dashboard made per second.

Issue 18's budget: render under 2 s, live updates under 100 KB/s, one query per run per
second however many pages are open. `--screenshots` runs the browser test with screenshots on
(a real Temporal dev server, worker and run): docs/dashboard-run.png and dashboard-inbox.png.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.settings import Settings  # noqa: E402
from runtime.ui.app import create_app  # noqa: E402
from runtime.ui.data import Dashboard, Final, PlanInfo, Snapshot  # noqa: E402
from runtime.ui.serve import serving  # noqa: E402
from schemas.events import EventType, RunEvent  # noqa: E402
from schemas.ledger import LedgerEntry, PatchState, StateChange  # noqa: E402
from schemas.run import PhaseState, RunRecord, WorkstreamState, WorkstreamStatus  # noqa: E402

RUN = "01BENCHUI000000000000000000"
WAVES, WIDTH = 20, 100
PACE = 8.5  # workstreams finishing per second (bench/scale.py: 118 ms per workstream)


def plan_of(rng: random.Random) -> tuple[list[list[str]], dict[str, list[str]]]:
    waves = [[f"ws-{w:02d}-{i:03d}" for i in range(WIDTH)] for w in range(WAVES)]
    deps: dict[str, list[str]] = {ws: [] for ws in waves[0]}
    for before, wave in itertools.pairwise(waves):
        for ws in wave:
            deps[ws] = sorted(rng.sample(before, 2))
    return waves, deps


class Synthetic:
    """A run that moves on in wall time: workstream k finishes at k / PACE seconds."""

    def __init__(self, started: datetime, done_at_start: int = 0) -> None:
        self.rng = random.Random(18)
        self.waves, self.deps = plan_of(self.rng)
        self.order = [ws for wave in self.waves for ws in wave]
        self.started = started
        self.offset = done_at_start

    def finished(self, now: datetime) -> int:
        elapsed = (now - self.started).total_seconds()
        return min(len(self.order), self.offset + int(elapsed * PACE))

    def record(self, now: datetime) -> RunRecord:
        done = self.finished(now)
        workstreams = {}
        for n, ws in enumerate(self.order):
            wave = n // WIDTH + 1
            if n < done:
                status = WorkstreamState.COMPLETED
            elif n < done + 8:
                status = WorkstreamState.RUNNING
            else:
                status = WorkstreamState.PENDING
            workstreams[ws] = WorkstreamStatus(
                wave=wave,
                status=status,
                commit=f"{n:040x}" if status == WorkstreamState.COMPLETED else None,
                cost_usd=0.01 if status == WorkstreamState.COMPLETED else 0.0,
                executions=1 if status != WorkstreamState.PENDING else 0,
            )
        return RunRecord(
            run_id=RUN,
            workflow_id=f"uet-{RUN}",
            phase_id="PH-SCALE",
            status=PhaseState.RUNNING,
            integration_branch=f"uet/{RUN}/integration",
            waves=self.waves,
            current_wave=min(WAVES, done // WIDTH + 1),
            cost_usd_total=0.01 * done,
            budget_usd_total=30.0,
            workstreams=workstreams,
        )

    def at(self, n: int) -> datetime:
        return self.started + timedelta(seconds=(n - self.offset) / PACE)

    def ledger(self, now: datetime) -> list[LedgerEntry]:
        entries = []
        for n, ws in enumerate(self.order[: self.finished(now)]):
            t = self.at(n)
            states = ["created", "validated", "queued", "applied", "verified", "committed"]
            entries.append(
                LedgerEntry(
                    ledger_id=f"L{n}",
                    patch_id=f"P{n:025d}",
                    run_id=RUN,
                    workstream_id=ws,
                    attempt=1,
                    tool_id="patch",
                    state=PatchState.COMMITTED,
                    state_history=[
                        StateChange(state=PatchState(s), at=t + timedelta(milliseconds=15 * i))
                        for i, s in enumerate(states)
                    ],
                )
            )
        return entries

    def events(self, now: datetime) -> list[RunEvent]:
        found = []
        for n, ws in enumerate(self.order[: self.finished(now)]):
            for kind, dt in (
                (EventType.WORKSTREAM_STARTED, -0.9),
                (EventType.WORKSTREAM_COMPLETED, 0.1),
            ):
                found.append(
                    RunEvent(
                        event_id=f"E{n:08d}{kind.value[:3]}",
                        type=kind,
                        at=self.at(n) + timedelta(seconds=dt),
                        run_id=RUN,
                        workstream_id=ws,
                    )
                )
        return found

    def plan(self) -> PlanInfo:
        critical = [self.waves[0][0]]
        for wave in self.waves[1:]:
            options = [ws for ws in wave if critical[-1] in self.deps[ws]]
            if not options:
                break
            critical.append(options[0])
        return PlanInfo(
            dependencies=self.deps,
            titles={ws: f"synthetic {ws}" for ws in self.order},
            critical_path=critical,
            started_at=self.started,
        )


class SyntheticDashboard(Dashboard):
    """The dashboard with Temporal replaced by the synthetic run; it counts what it is asked
    exactly where the real one asks Temporal."""

    def __init__(self, run: Synthetic, interval_s: float = 1.0) -> None:
        super().__init__(
            cast(Any, None),
            Settings(home=Path("/nonexistent"), task_queue="bench", ui_port=0),
            interval_s=interval_s,
        )
        self.run = run

    async def status(self, run_id: str, previous: Snapshot | None) -> tuple[Any, bool, Any]:
        self.queries["status"] += 1
        return self.run.record(datetime.now(UTC)), True, None

    async def query_ledger(self, run_id: str) -> list[LedgerEntry]:
        self.queries["ledger"] += 1
        return self.run.ledger(datetime.now(UTC))

    async def plan(self, run_id: str) -> PlanInfo:
        return self.run.plan()

    async def final(self, run_id: str) -> Final:
        raise AssertionError("the synthetic run never ends")


async def render_time() -> None:
    now = datetime.now(UTC)
    # Half done: every kind of node, bar and row is on the page.
    run = Synthetic(started=now - timedelta(seconds=1000 / PACE), done_at_start=0)
    dashboard = SyntheticDashboard(run)
    watch = dashboard.watch(RUN)
    await watch.current()
    # The events the journal would hold (the watch composes them from the store in a real run).
    assert watch.snapshot is not None
    from dataclasses import replace

    watch.snapshot = replace(watch.snapshot, ledger=run.ledger(now), events=run.events(now))
    app = create_app(dashboard)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8300") as http:
        times = []
        for _ in range(3):
            watch._fragments.clear()  # each render builds its fragments afresh
            t = time.perf_counter()
            page = await http.get(f"/runs/{RUN}")
            times.append(time.perf_counter() - t)
            assert page.status_code == 200, page.text[:300]
        t = time.perf_counter()
        await http.get(f"/runs/{RUN}/ws/ws-05-042")
        ws_time = time.perf_counter() - t
    await dashboard.close()
    print(
        f"run page, 2,000 workstreams (1,000 done, 8 running): {min(times):.2f} s best of 3 "
        f"(worst {max(times):.2f} s), {len(page.content) / 1e6:.2f} MB; a workstream page "
        f"{ws_time * 1000:.0f} ms; budget 2 s: {'ok' if max(times) < 2 else 'OVER'}"
    )


async def live_rate(seconds: float, streams: int) -> None:
    run = Synthetic(started=datetime.now(UTC), done_at_start=300)
    dashboard = SyntheticDashboard(run)
    app = create_app(dashboard)
    received = [0] * streams
    messages = [0] * streams
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=None) as http:
        first = await http.get(f"/runs/{RUN}")
        tick = int(first.text.split("tick=")[1].split('"')[0])
        before = dict(dashboard.queries)

        async def follow(number: int) -> None:
            async with http.stream("GET", f"/live/runs/{RUN}?tick={tick}") as response:
                async for chunk in response.aiter_bytes():
                    received[number] += len(chunk)
                    messages[number] += chunk.count(b"data: ")

        tasks = [asyncio.create_task(follow(n)) for n in range(streams)]
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        after = dict(dashboard.queries)
    await dashboard.close()
    asked = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    total = sum(asked.values())
    rate = max(received) / elapsed / 1000
    print(
        f"live, {streams} pages open for {elapsed:.0f} s while {PACE:g} workstreams finish a "
        f"second: {rate:.1f} KB/s per stream (max), {sum(messages) / streams / elapsed:.2f} "
        f"messages/s; budget 100 KB/s: {'ok' if rate < 100 else 'OVER'}"
    )
    print(
        f"queries: {total} in {elapsed:.0f} s = {total / elapsed:.2f}/s for the run "
        f"({', '.join(f'{k} {v}' for k, v in sorted(asked.items()))}) — one per second "
        f"whatever number of pages: {'ok' if total / elapsed <= 1.05 else 'OVER'}"
    )


def screenshots() -> int:
    """The browser test with screenshots on: a real server, worker, run and chromium."""
    env = {**os.environ, "UET_SCREENSHOTS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_ui.py",
            "-k",
            "browser",
        ],
        cwd=ROOT,
        env=env,
    )
    for name in ("dashboard-run.png", "dashboard-inbox.png"):
        path = ROOT / "docs" / name
        print(f"{path}: {path.stat().st_size:,} bytes" if path.exists() else f"{path}: missing")
    return done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="how long to follow (15)")
    parser.add_argument("--streams", type=int, default=3, help="pages open at once (3)")
    parser.add_argument("--screenshots", action="store_true", help="write docs/dashboard-*.png")
    args = parser.parse_args()
    if args.screenshots:
        return screenshots()
    asyncio.run(render_time())
    asyncio.run(live_rate(args.seconds, args.streams))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
