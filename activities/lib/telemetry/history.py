"""What earlier runs say about a phase about to run (read-only): how long its workstreams take,
and which of an auto workstream's tools works best for its kind of task.

- **Learned durations.** A workstream's duration in a run is the sum of its executions there
  (tool and gate runs, fix attempts included). For one without ``estimated_duration_s`` the
  planner takes the median of its most recent runs (at most ``RECENT``): the same workstream id
  in earlier runs of the same phase, else workstreams of the same template, else of the same
  task kind.
- **Learned tool order** (``router: {learned: true}``): the auto chain the router would pick,
  reordered by each tool's success rate on that task kind over its last ``TOOL_WINDOW`` runs,
  then by its average cost. A tool with fewer than ``MIN_TOOL_RUNS`` runs keeps its place.

``UET_DISABLE_LEARNING=1`` and ``learning: {mode: off}`` mean no learned figures. A missing
database, or one that cannot be read, gives none either (one line in the log), never a failed
plan.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select, union
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from activities.lib.telemetry.models import Execution, Run, WorkstreamShape
from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled, redacted
from schemas.routing import auto_chain
from schemas.spec import PhaseSpec, WorkstreamSpec

log = logging.getLogger("uet.telemetry")

#: Runs a learned duration is the median of, most recent first.
RECENT = 10
#: Tool runs a learned success rate is taken over, most recent first.
TOOL_WINDOW = 200
#: A tool with fewer runs than this (for the task kind) keeps its place in the chain.
MIN_TOOL_RUNS = 3
SUCCESS = ("changed", "no_change")
FAILURE = ("failed", "timeout")

_OPEN: dict[str, Telemetry] = {}


@dataclass
class Learned:
    """Figures for one phase; each dict is keyed by workstream id."""

    durations: dict[str, float] = field(default_factory=dict)
    learned_from: dict[str, str] = field(default_factory=dict)
    tool_order: dict[str, list[str]] = field(default_factory=dict)
    tool_order_reason: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolRecord:
    """A tool's recent runs on one kind of task."""

    runs: int  # successes + failures
    successes: int
    avg_cost_usd: float | None

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0


# -- the whole answer, never an error ----------------------------------------------------------


def read_learned(home: Path, phase: PhaseSpec, run_id: str | None = None) -> Learned:
    """What the telemetry database at ``home`` (or ``UET_DATABASE_URL``) says about ``phase``;
    nothing when learning is off or the database is missing or unreadable."""
    if learning_disabled() or phase.learning.mode == "off":
        return Learned()
    if not _wanted(phase):
        return Learned()
    url = database_url(home)
    try:
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite and parsed.database and not Path(parsed.database).is_file():
            return Learned()  # no run has written anything yet
        if url not in _OPEN:
            _OPEN[url] = Telemetry(url)  # read-only: the recorder migrates when it writes
        with _OPEN[url].session() as session:
            return learn(session, phase, run_id)
    except Exception as exc:  # a broken database must not break a plan
        log.warning(f"no learned figures from {redacted(url)} ({type(exc).__name__}: {exc})"[:300])
        return Learned()


def learn(session: Session, phase: PhaseSpec, run_id: str | None = None) -> Learned:
    """Learned durations (for workstreams without an estimate) and, with
    ``router.learned``, learned tool orders; from runs other than ``run_id``."""
    found = Learned()
    need = [ws for ws in phase.workstreams if not ws.estimated_duration_s]
    if need:
        for ws_id, (seconds, basis) in learned_durations(
            session, phase.phase_id, need, exclude_run=run_id
        ).items():
            found.durations[ws_id] = seconds
            found.learned_from[ws_id] = basis
    if phase.router.learned:
        for ws in phase.workstreams:
            if ws.execution_request.tool_id != "auto":
                continue
            chain, why = auto_chain(phase.router, ws)
            order, reason = learned_tool_order(session, chain, ws.task_kind)
            if reason:
                found.tool_order[ws.workstream_id] = order
                found.tool_order_reason[ws.workstream_id] = f"{reason}; {why}"
    return found


def _wanted(phase: PhaseSpec) -> bool:
    return phase.router.learned or any(not ws.estimated_duration_s for ws in phase.workstreams)


# -- learned durations -------------------------------------------------------------------------


def learned_durations(
    session: Session,
    phase_id: str,
    workstreams: list[WorkstreamSpec],
    exclude_run: str | None = None,
    recent: int = RECENT,
) -> dict[str, tuple[float, str]]:
    """Workstream id → (median seconds, what it is the median of), for those history knows."""
    found: dict[str, tuple[float, str]] = {}
    ids = {ws.workstream_id for ws in workstreams}

    # 1. The same workstream in earlier runs of the same phase.
    phase_runs = union(
        select(WorkstreamShape.run_id).where(WorkstreamShape.phase_id == phase_id),
        select(Run.run_id).where(Run.phase_id == phase_id),
    ).subquery()
    samples: dict[str, list[float]] = defaultdict(list)
    rows = session.execute(
        _totals()
        .where(Execution.run_id.in_(select(phase_runs.c.run_id)))
        .where(Execution.workstream_id.in_(sorted(ids)))
    ).all()
    for row in _newest_first(rows, exclude_run):
        if len(samples[row.workstream_id]) < recent:
            samples[row.workstream_id].append(float(row.seconds))
    for ws_id, seconds in samples.items():
        found[ws_id] = _median(seconds, f"{ws_id} in {_runs(seconds)} of phase {phase_id}")

    # 2. Workstreams of the same template.
    rest = [ws for ws in workstreams if ws.workstream_id not in found]
    templates = sorted({ws.template for ws in rest if ws.template})
    if templates:
        rows = session.execute(
            _totals()
            .add_columns(WorkstreamShape.template)
            .join(
                WorkstreamShape,
                (WorkstreamShape.run_id == Execution.run_id)
                & (WorkstreamShape.workstream_id == Execution.workstream_id),
            )
            .where(WorkstreamShape.template.in_(templates))
            .group_by(WorkstreamShape.template)
        ).all()
        by_template = _grouped(rows, lambda r: r.template, exclude_run, recent)
        for ws in rest:
            if ws.template in by_template:
                seconds = by_template[ws.template]
                found[ws.workstream_id] = _median(
                    seconds, f"template {ws.template} in {_runs(seconds)}"
                )

    # 3. Workstreams of the same task kind (their tool runs say which).
    rest = [ws for ws in rest if ws.workstream_id not in found]
    kinds = sorted({ws.task_kind for ws in rest if ws.task_kind})
    if kinds:
        rows = session.execute(_totals().having(func.max(Execution.task_kind).in_(kinds))).all()
        by_kind = _grouped(rows, lambda r: r.task_kind, exclude_run, recent)
        for ws in rest:
            if ws.task_kind in by_kind:
                seconds = by_kind[ws.task_kind]
                found[ws.workstream_id] = _median(
                    seconds, f"task kind {ws.task_kind} in {_runs(seconds)}"
                )
    return found


def _totals() -> Select:  # type: ignore[type-arg]
    """Per run and workstream: the seconds of all its executions, when it last ran, and its
    task kind (only tool runs carry one)."""
    return select(
        Execution.run_id,
        Execution.workstream_id,
        func.sum(Execution.duration_s).label("seconds"),
        func.max(Execution.at).label("last"),
        func.max(Execution.task_kind).label("task_kind"),
    ).group_by(Execution.run_id, Execution.workstream_id)


def _newest_first(rows: Sequence[Any], exclude_run: str | None) -> list[Any]:
    kept = [r for r in rows if r.run_id != exclude_run and r.seconds is not None]
    return sorted(kept, key=lambda r: (_naive(r.last), r.run_id, r.workstream_id), reverse=True)


def _grouped(rows, key, exclude_run, recent):  # type: ignore[no-untyped-def]
    samples: dict[str, list[float]] = defaultdict(list)
    for row in _newest_first(rows, exclude_run):
        if len(samples[key(row)]) < recent:
            samples[key(row)].append(float(row.seconds))
    return samples


def _median(seconds: list[float], basis: str) -> tuple[float, str]:
    return round(statistics.median(seconds), 3), f"median of {basis}"


def _runs(seconds: list[float]) -> str:
    return "1 run" if len(seconds) == 1 else f"{len(seconds)} runs"


def _naive(moment: datetime | None) -> datetime:
    """SQLite hands datetimes back without their zone, PostgreSQL with it: compare naive."""
    if moment is None:
        return datetime.min
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


# -- learned tool order ------------------------------------------------------------------------


def tool_records(
    session: Session, tools: list[str], task_kind: str | None, window: int = TOOL_WINDOW
) -> dict[str, ToolRecord]:
    """Each tool's last ``window`` runs on ``task_kind`` (any kind when it is None)."""
    records = {}
    for tool in dict.fromkeys(tools):
        query = select(Execution.outcome, Execution.cost_usd).where(
            Execution.kind == "tool", Execution.tool_id == tool
        )
        if task_kind is not None:
            query = query.where(Execution.task_kind == task_kind)
        rows = session.execute(
            query.order_by(Execution.at.desc(), Execution.id.desc()).limit(window)
        ).all()
        judged = [r for r in rows if r.outcome in SUCCESS or r.outcome in FAILURE]
        costs = [r.cost_usd for r in judged if r.cost_usd is not None]
        records[tool] = ToolRecord(
            runs=len(judged),
            successes=sum(r.outcome in SUCCESS for r in judged),
            avg_cost_usd=sum(costs) / len(costs) if costs else None,
        )
    return records


def learned_tool_order(
    session: Session,
    chain: list[str],
    task_kind: str | None,
    window: int = TOOL_WINDOW,
    min_runs: int = MIN_TOOL_RUNS,
) -> tuple[list[str], str]:
    """``chain`` reordered by learned success rate, then average cost; and the reason, which
    is empty when no tool has enough runs to be ranked (the chain stays as it is)."""
    return order_tools(chain, tool_records(session, chain, task_kind, window), min_runs)


def order_tools(
    chain: list[str], records: dict[str, ToolRecord], min_runs: int = MIN_TOOL_RUNS
) -> tuple[list[str], str]:
    """Tools with at least ``min_runs`` runs change places among themselves (best success
    rate first, then the cheaper); the others keep theirs."""
    empty = ToolRecord(0, 0, None)
    ranked_at = [i for i, t in enumerate(chain) if records.get(t, empty).runs >= min_runs]
    if not ranked_at:
        return list(chain), ""

    def rank(index: int) -> tuple[float, float, int]:
        record = records[chain[index]]
        cost = record.avg_cost_usd if record.avg_cost_usd is not None else float("inf")
        return (-record.success_rate, cost, index)

    order = list(chain)
    for place, index in zip(ranked_at, sorted(ranked_at, key=rank), strict=True):
        order[place] = chain[index]
    parts = []
    for tool in order:
        record = records.get(tool, empty)
        if record.runs >= min_runs:
            cost = f", ${record.avg_cost_usd:.2f} avg" if record.avg_cost_usd else ""
            parts.append(f"{tool} {record.success_rate:.0%} (n={record.runs}{cost})")
        else:
            parts.append(f"{tool} (n={record.runs}: kept its place)")
    return order, "learned order: " + ", ".join(parts)
