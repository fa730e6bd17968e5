"""Where a workstream's time goes, read from the histories Temporal keeps of the run.

    python bench/breakdown.py [--dag independent] [--runs 3] [--scale 1.0]

Runs one of bench/dag_efficiency.py's DAGs in eager mode (four slots) on a local dev server,
then reads the phase's history and every workstream's child history. A workstream's tool is a
``sleep`` of a known length, so each part of its turn in a slot is measured by the server's
own event times, not by timers in uet's code:

- **phase: slot free -> child started/handed**: from the moment a slot is free (a child closed in
  the phase's history) to the start of the workstream that takes it (the phase's workflow
  task, the start's round trip) — or, for one started ahead of its slot (``prepare_ahead``),
  to the phase's answer to its tool's ``tool_slot`` update. Only the independent DAG pairs
  them exactly; elsewhere a start may also wait for the merge of a dependency;
- **child: started -> first task done**: the new workflow's first workflow task (of those
  started with their slot: for the others it is off the slot's path, as is the next part);
- **tool activity: scheduled -> started**: the tool's own task queue (a matching round trip:
  no eager dispatch across queues);
- **tool activity: beyond the tool**: started (or handed its slot, if later) -> completed,
  less the tool's ``sleep``: the SDK's dispatch, the pooled checkout, the sandboxed
  process's start, the capture, the patch's validation and commit, the telemetry row;
- **child: activity done -> closed**: its last workflow task and the result's way back.

Prints medians over every workstream of the runs after the first (the first warms the
worker), beside the floor (bench/floor.py: a bare child workflow and one activity) measured
first on the same server. The parts add up to a workstream's cost in its slot but for the
tool; dag_efficiency.py says what that cost does to the makespan.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import local_server  # noqa: E402
from dag_efficiency import (  # noqa: E402
    SLOTS,
    independent,
    make_repo,
    misleading,
    mixed,
    skewed,
    spec,
)
from floor import floor_ms  # noqa: E402
from helpers import run_input, run_phase  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import Client  # noqa: E402

from runtime.plugin import build_worker  # noqa: E402
from runtime.settings import Settings  # noqa: E402

DAGS = {"independent": independent, "mixed": mixed, "skewed": skewed, "misleading": misleading}
PARTS = (
    "phase: slot free -> child started/handed",
    "child: started -> first task done",
    "tool activity: scheduled -> started",
    "tool activity: beyond the tool",
    "child: activity done -> closed",
)
#: Started ahead of their slot (their first task and activity start are off its path).
AHEAD = "ahead"


def _ms(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e6


def _first(events: list[HistoryEvent], kind: EventType.ValueType) -> HistoryEvent:
    return next(e for e in events if e.event_type == kind)


async def _parts(
    client: Client, workflow_id: str, durations: dict[str, float]
) -> dict[str, list[float]]:
    """Each part's figures, one per workstream, from the run's histories.

    A workstream started ahead of its slot (``prepare_ahead``) has its slot when the phase
    answers its tool's ``tool_slot`` update: its first task and its activity's start are off
    the slot's path, and its part beyond the tool counts from that answer."""
    phase = await client.get_workflow_handle(workflow_id).fetch_history()
    started: dict[str, tuple[float, str]] = {}
    granted: dict[str, float] = {}  # child workflow id -> when the phase handed it the slot
    closes: list[float] = []
    for event in phase.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            run = event.child_workflow_execution_started_event_attributes.workflow_execution
            started[run.workflow_id] = (_ms(event), run.run_id)
        elif event.HasField("child_workflow_execution_completed_event_attributes"):
            closes.append(_ms(event))
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            update_id = event.workflow_execution_update_completed_event_attributes.meta.update_id
            if update_id.startswith("slot/"):
                granted[update_id.removeprefix("slot/")] = _ms(event)
    found: dict[str, list[float]] = defaultdict(list)
    handed = sorted(granted.get(child, at) for child, (at, _) in started.items())
    # The first SLOTS take empty slots; each later one takes the slot of the next close (in
    # order) that came before it.
    for at, freed in zip(handed[SLOTS:], sorted(closes), strict=False):
        found[PARTS[0]].append(at - freed)
    for child_id, (_, run_id) in started.items():
        workstream = child_id.split("/")[-1]
        child = await client.get_workflow_handle(child_id, run_id=run_id).fetch_history()
        events = list(child.events)
        first_task = _first(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        scheduled = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        begun = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        done = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        if child_id in granted:
            found[AHEAD].append(1)
        else:
            found[PARTS[1]].append(_ms(first_task) - _ms(events[0]))
            found[PARTS[2]].append(_ms(begun) - _ms(scheduled))
        on_path = max(_ms(begun), granted.get(child_id, 0.0))
        found[PARTS[3]].append(_ms(done) - on_path - 1000 * durations[workstream])
        found[PARTS[4]].append(_ms(events[-1]) - _ms(done))
    return found


async def main(dag_name: str, runs: int, scale: float) -> None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = await local_server.start()
    dag = DAGS[dag_name](scale)
    durations = {ws: duration for ws, (duration, _) in dag.items()}
    try:
        floor = await floor_ms(env.client, 20)
        found: dict[str, list[float]] = defaultdict(list)
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp) / "home", task_queue="bench", ui_port=0)
            async with build_worker(env.client, settings):
                for k in range(runs):
                    repo = make_repo(Path(tmp) / f"repo-{k}")
                    record = await run_phase(
                        env.client, settings, run_input(spec(dag, "eager"), repo)
                    )
                    if k == 0:
                        continue  # the worker's first run warms it
                    for part, values in (
                        await _parts(env.client, record.workflow_id, durations)
                    ).items():
                        found[part] += values
    finally:
        await env.shutdown()
    print(f"floor (bare child + activity): {floor:.1f} ms per workstream")
    print(f"{dag_name}, eager, {SLOTS} slots, runs 2-{runs}: medians per workstream, ms")
    ahead = len(found[AHEAD])
    print(f"  started ahead of their slot: {ahead} of {len(found[PARTS[3]])} (prepare_ahead)")
    total = 0.0
    for part in PARTS:
        if not found[part]:
            print(f"  {part:40}     off the slot's path (every workstream started ahead)")
            continue
        median = statistics.median(found[part])
        total += median
        low, high = min(found[part]), max(found[part])
        print(f"  {part:40} {median:7.1f}   (range {low:.0f}-{high:.0f}, n={len(found[part])})")
    print(f"  {'all but the tool':40} {total:7.1f}   ({total / floor:.2f}x the floor)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dag", choices=sorted(DAGS), default="independent")
    parser.add_argument("--runs", type=int, default=3, help="runs of the DAG (the first warms)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration")
    args = parser.parse_args()
    asyncio.run(main(args.dag, args.runs, args.scale))
