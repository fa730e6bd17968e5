"""How the telemetry database holds up: `python bench/telemetry.py [--executions 100000]`.

Fills a fresh SQLite database with synthetic executions (tools and gates over 30 days, 6 tools,
5 task kinds, 8 gates) and error events (200 signatures, a third of them resolved), then times
what people ask of it — `uet errors list` and `uet insights` — and one recorded fact, the cost
a run pays per tool or gate run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from activities.lib.telemetry import insights  # noqa: E402
from activities.lib.telemetry.models import ErrorEvent, ErrorPattern, Execution  # noqa: E402
from activities.lib.telemetry.recorder import ExecutionFact, Recorder  # noqa: E402
from activities.lib.telemetry.store import Telemetry  # noqa: E402

TOOLS = ["shell", "patch", "claude", "codex", "aider", "auto"]
KINDS = ["docs", "refactor", "feature", "bugfix", "tests"]
GATES = ["lint", "unit", "types", "integration", "security", "format", "build", "e2e"]


def fill(store: Telemetry, executions: int, errors: int, rng: random.Random) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    signatures = [f"test_assertion:{n:016x}" for n in range(200)]
    with store.session() as session:
        rows = []
        for n in range(executions):
            gate = n % 3 == 0
            rows.append(
                Execution(
                    key=f"bench/{n}",
                    run_id=f"RUN{n // 50:08d}",
                    workstream_id=f"ws-{n % 50}",
                    attempt=1 + (n % 7 == 0),
                    kind="gate" if gate else "tool",
                    tool_id=None if gate else rng.choice(TOOLS),
                    task_kind=None if gate else rng.choice(KINDS),
                    gate_id=rng.choice(GATES) if gate else None,
                    scope_signature=f"{n % 40:016x}",
                    file_types=".py",
                    tree_sha=f"{n // 2:040x}",
                    at=start + timedelta(seconds=n * 25),
                    duration_s=rng.uniform(0.1, 120),
                    outcome=rng.choice(
                        ["passed", "passed", "failed"]
                        if gate
                        else ["changed", "changed", "no_change", "failed"]
                    ),
                    cost_usd=None if gate else rng.uniform(0, 0.5),
                )
            )
        session.add_all(rows)
        events = [
            ErrorEvent(
                key=f"bench-error/{n}",
                signature=signatures[n % len(signatures)],
                category="test_assertion",
                run_id=f"RUN{n:08d}",
                workstream_id=f"ws-{n % 50}",
                attempt=1,
                source="gate:unit",
                excerpt="E   assert 1 == 2",
                at=start + timedelta(seconds=n * 120),
                resolved_at=start + timedelta(seconds=n * 120 + 60) if n % 3 == 0 else None,
            )
            for n in range(errors)
        ]
        session.add_all(events)
        for n, signature in enumerate(signatures):
            session.add(
                ErrorPattern(
                    signature=signature,
                    category="test_assertion",
                    normalized="assert",
                    occurrences=errors // len(signatures),
                    resolutions=0,
                    success_rate=0,
                    first_seen=start,
                    last_seen=start + timedelta(days=29),
                    last_run_id="R",
                    last_workstream_id=f"ws-{n}",
                    resolved_by="",
                )
            )


def timed(what: str, call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    elapsed = time.perf_counter() - started
    print(f"{what}: {elapsed:.2f}s")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--errors", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        store = Telemetry.open(f"sqlite:///{Path(tmp) / 'uet.db'}")
        started = time.perf_counter()
        fill(store, args.executions, args.errors, rng)
        print(
            f"filled {args.executions} executions and {args.errors} error events in "
            f"{time.perf_counter() - started:.1f}s"
        )
        after = insights.since(30)
        with store.session() as session:
            listed = timed("uet errors list (30 days)", lambda: insights.errors(session, after))
            report = timed("uet insights (30 days)", lambda: insights.insights(session, after))
        store.close()
        recorder = Recorder(Path(tmp))
        recorder.record(
            ExecutionFact(
                key="warm",
                run_id="R",
                workstream_id="w",
                attempt=1,
                kind="tool",
                at=datetime.now(UTC),
                outcome="changed",
            )
        )
        n = 200
        started = time.perf_counter()
        for i in range(n):
            recorder.record(
                ExecutionFact(
                    key=f"one/{i}",
                    run_id="R",
                    workstream_id="w",
                    attempt=1,
                    kind="tool",
                    at=datetime.now(UTC),
                    outcome="changed",
                )
            )
        per = (time.perf_counter() - started) / n
        print(
            f"recording one fact: {per * 1000:.2f} ms (into a database of "
            f"{args.executions} executions)"
        )
    ok = listed < 2 and report < 2 and per < 0.005
    print(f"targets (each read < 2 s, a record < 5 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
