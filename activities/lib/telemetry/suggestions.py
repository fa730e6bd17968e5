"""The suggester: what the history of earlier runs says about a phase before it runs, one line
each (``suggestion: <ws>: <what> (<evidence>)``) — a workstream that could use a template, a
tool that keeps failing on this kind of task, a gate known to be flaky, a missing
``estimated_duration_s`` the history can give. Read-only; it never raises and never creates the
database: no history, the kill switch or ``learning.mode: off`` mean no suggestions."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from activities.lib.telemetry import insights as analysis
from activities.lib.telemetry import templates_detect as detect
from activities.lib.telemetry.history import learned_durations
from activities.lib.telemetry.models import Execution, WorkstreamShape
from activities.lib.telemetry.shapes import gate_set, scope_shape
from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled
from schemas.spec import (
    PhaseSpec,
    WorkstreamSpec,
    expand_template,
    merge_defaults,
)

log = logging.getLogger("uet.telemetry")

#: How far back tool and gate runs count.
WINDOW_DAYS = 90.0
#: A tool failing more than this share of at least MIN_TOOL_RUNS runs on a task kind.
FAILING = 0.4
MIN_TOOL_RUNS = 5

Shape = tuple[str, str, str, str]


def history_exists(url: str) -> bool:
    """Whether there can be history at ``url`` without creating anything: a SQLite file that
    exists (any other database is asked)."""
    try:
        parsed = make_url(url)
    except Exception:
        return False
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database or ""
    return bool(database) and database != ":memory:" and Path(database).is_file()


def suggest(phase: PhaseSpec, home: Path) -> list[str]:
    """The suggestion lines for ``phase`` from the history at ``$UET_HOME`` (or
    ``UET_DATABASE_URL``); an empty list when there is none or learning is off."""
    if learning_disabled() or phase.learning.mode == "off":
        return []
    try:
        url = database_url(home)
        if not history_exists(url):
            return []
        store = Telemetry(url)
    except Exception as exc:  # suggestions are a courtesy: never an error
        log.debug(f"no suggestions ({type(exc).__name__}: {exc})")
        return []
    try:
        with store.session() as session:
            return suggestions(phase, session)
    except Exception as exc:
        log.debug(f"no suggestions ({type(exc).__name__}: {exc})")
        return []
    finally:
        store.close()


def suggestions(phase: PhaseSpec, session: Session) -> list[str]:
    """Every suggestion, by workstream in the phase's order, then the phase gates'."""
    found: dict[str, list[str]] = defaultdict(list)
    for kind in (_templates, _tools, _flaky, _durations):
        for ws_id, line in _safely(kind, phase, session):
            found[ws_id].append(line)
    order = [ws.workstream_id for ws in phase.workstreams] + ["(phase)"]
    return [f"suggestion: {ws_id}: {line}" for ws_id in order for line in found.get(ws_id, [])]


def _safely(
    kind: Callable[[PhaseSpec, Session], list[tuple[str, str]]], phase: PhaseSpec, session: Session
) -> list[tuple[str, str]]:
    """One kind of suggestion; a kind that cannot be worked out (an older schema, say) is
    left out, the others still come."""
    try:
        with session.begin_nested():
            return kind(phase, session)
    except Exception as exc:
        log.debug(f"no {kind.__name__.strip('_')} suggestions ({type(exc).__name__}: {exc})")
        return []


def shape_of(ws: WorkstreamSpec) -> Shape:
    return (
        ws.execution_request.tool_id,
        ws.task_kind or "",
        gate_set(ws),
        scope_shape(ws.constraints.file_scope.allowed_paths),
    )


# -- (a) a template it could use ----------------------------------------------------------------


def _templates(phase: PhaseSpec, session: Session) -> list[tuple[str, str]]:
    plain = [ws for ws in phase.workstreams if not ws.template]
    if not plain:
        return []
    known = _phase_template_shapes(phase)
    wanted = {shape_of(ws) for ws in plain}
    proposed = {p.key: p for p in detect.proposals(session, wanted - set(known))}
    found = []
    for ws in plain:
        shape = shape_of(ws)
        if shape in known:
            name = known[shape]
            found.append(
                (
                    ws.workstream_id,
                    f"could use template {name!r} (template: {name}, with: …) "
                    f"(same tool {shape[0]}, task kind, gates and scope shape {shape[3] or '-'})",
                )
            )
        elif shape in proposed:
            p = proposed[shape]
            found.append(
                (
                    ws.workstream_id,
                    f"fits template proposal {p.id}; `uet templates show {p.id}` prints it "
                    f"({len(p.members)} similar workstreams in {p.runs} runs)",
                )
            )
    return found


def _phase_template_shapes(phase: PhaseSpec) -> dict[Shape, str]:
    """The shape of each phase template: of the workstreams that use it, and of the template
    filled in with stand-in values."""
    shapes: dict[Shape, str] = {}
    for ws in phase.workstreams:
        if ws.template:
            shapes.setdefault(shape_of(ws), ws.template)
    raw = {n: t.model_dump(mode="json", by_alias=True) for n, t in phase.templates.items()}
    defaults = phase.defaults.model_dump(mode="json", by_alias=True, exclude_none=True)
    for name in sorted(raw):
        for stand_in in ("x", 1):
            given = {k: stand_in for k, v in raw[name]["variables"].items() if v is None}
            probe = expand_template(
                raw, {"workstream_id": "probe", "template": name, "with": given}
            )
            try:
                ws = WorkstreamSpec.model_validate(merge_defaults(defaults, probe))
            except Exception:
                continue
            shapes.setdefault(shape_of(ws), name)
            break
    return shapes


# -- (b) a tool that fails on this kind of task -------------------------------------------------


def _tools(phase: PhaseSpec, session: Session) -> list[tuple[str, str]]:
    kinds = {ws.task_kind for ws in phase.workstreams if ws.task_kind}
    if not kinds:
        return []
    rows = session.execute(
        select(Execution.tool_id, Execution.task_kind, Execution.outcome).where(
            Execution.kind == "tool",
            Execution.task_kind.in_(sorted(kinds)),
            Execution.at >= analysis.since(WINDOW_DAYS),
        )
    ).all()
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts = tally[(row.task_kind, row.tool_id or "")]
        counts[0] += 1
        counts[1] += row.outcome in analysis.SUCCESS
    found = []
    for ws in phase.workstreams:
        tool, kind = ws.execution_request.tool_id, ws.task_kind
        if not kind or tool == "auto":
            continue
        runs, ok = tally.get((kind, tool), (0, 0))
        if runs < MIN_TOOL_RUNS or (runs - ok) / runs <= FAILING:
            continue
        failed = runs - ok
        line = f"tool {tool} fails {failed / runs:.0%} of {kind} tasks ({failed} of {runs} runs)"
        better = sorted(
            (
                (-(o / n), -n, t, n, o)
                for (k, t), (n, o) in tally.items()
                if k == kind and t and t != tool and n >= MIN_TOOL_RUNS and o / n > ok / runs
            ),
        )
        if better:
            _, _, other, n, o = better[0]
            line += f"; {other} does better ({o / n:.0%} of {n} runs): tool_id: {other}"
        found.append((ws.workstream_id, line))
    return found


# -- (c) a flaky gate ----------------------------------------------------------------------------


def _flaky(phase: PhaseSpec, session: Session) -> list[tuple[str, str]]:
    after = analysis.since(WINDOW_DAYS)
    places = [
        *((ws.workstream_id, ws.acceptance_criteria.gates) for ws in phase.workstreams),
        ("(phase)", phase.gates),
    ]
    wanted = {g.gate_id for _, gates in places for g in gates if not g.retry_flaky}
    flaky = {gate_id for gate_id in sorted(wanted) if analysis.is_flaky(session, gate_id, after)}
    if not flaky:
        return []
    evidence = _flaky_evidence(session, after, flaky)
    found = []
    for ws_id, gates in places:
        for gate in gates:
            if gate.gate_id not in flaky or gate.retry_flaky:
                continue
            trees, runs, commands = evidence[gate.gate_id]
            if commands and _command(gate.command) not in commands:
                continue  # the same name, another command: not the gate known to be flaky
            found.append(
                (
                    ws_id,
                    f"gate {gate.gate_id} is known to be flaky: set retry_flaky: true on it "
                    f"(or defaults.retry_flaky: true) (failed then passed on the same tree "
                    f"{trees} time{'s' if trees != 1 else ''} in {runs} gate runs)",
                )
            )
    return found


def _flaky_evidence(
    session: Session, after: Any, gate_ids: set[str]
) -> dict[str, tuple[int, int, set[str]]]:
    """Per gate: the trees it failed and passed on, its runs, and the commands its flaky runs
    had where the plan of their run is known (insights' rule: a tree with a pass and another
    outcome)."""
    rows = session.execute(
        select(
            Execution.gate_id,
            Execution.tree_sha,
            Execution.outcome,
            Execution.run_id,
            Execution.workstream_id,
        ).where(
            Execution.kind == "gate",
            Execution.at >= after,
            Execution.gate_id.in_(sorted(gate_ids)),
        )
    ).all()
    runs: dict[str, int] = defaultdict(int)
    trees: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        runs[row.gate_id] += 1
        if row.tree_sha:
            trees[(row.gate_id, row.tree_sha)].append(row)
    flaky_trees: dict[str, int] = defaultdict(int)
    places: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for (gate_id, _), members in trees.items():
        outcomes = {r.outcome for r in members}
        if "passed" in outcomes and len(outcomes) > 1:
            flaky_trees[gate_id] += 1
            places[gate_id] |= {(r.run_id, r.workstream_id) for r in members}
    run_ids = sorted({run for found in places.values() for run, _ in found})
    specs: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        for shape in session.scalars(
            select(WorkstreamShape).where(WorkstreamShape.run_id.in_(chunk))
        ):
            specs[(shape.run_id, shape.workstream_id)] = shape.spec or {}
    commands: dict[str, set[str]] = defaultdict(set)
    for gate_id, where in places.items():
        for place in where:
            gates = (specs.get(place, {}).get("acceptance_criteria") or {}).get("gates") or []
            for gate in gates:
                if isinstance(gate, dict) and gate.get("gate_id") == gate_id:
                    commands[gate_id].add(_command(gate.get("command", "")))
    return {g: (flaky_trees[g], runs[g], commands.get(g, set())) for g in gate_ids}


def _command(command: Any) -> str:
    return command if isinstance(command, str) else " ".join(str(c) for c in command)


# -- (d) a duration the history knows -----------------------------------------------------------


def _durations(phase: PhaseSpec, session: Session) -> list[tuple[str, str]]:
    """What the planner would learn (activities/lib/telemetry/history.py: the median of the
    workstream's recent runs in this phase, else of its template's, else of its task kind's),
    as the value to write down."""
    need = [ws for ws in phase.workstreams if not ws.estimated_duration_s]
    if not need:
        return []
    learned = learned_durations(session, phase.phase_id, need)
    found = []
    for ws in need:
        if ws.workstream_id in learned:
            seconds, basis = learned[ws.workstream_id]
            if seconds <= 0:
                continue  # runs that took no measurable time say nothing
            value = max(1, round(seconds))
            found.append((ws.workstream_id, f"add estimated_duration_s: {value} ({basis})"))
    return found
