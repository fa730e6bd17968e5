"""What the telemetry says (the performance analyzer and the anti-pattern detector): per tool,
model and task kind, per gate, the top errors, and what keeps going wrong. Read-only."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from activities.lib.telemetry.models import AntiPattern, ErrorEvent, ErrorPattern, Execution

#: A signature that recurs this often and is resolved less than this share of the time.
RECURRING = 3
POORLY_RESOLVED = 0.4
#: A tool failing more than this share of its runs on one kind of task or scope (of at least
#: RECURRING runs) is an anti-pattern.
FAILING = 0.4
SUCCESS = ("changed", "no_change", "passed")


def since(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def errors(session: Session, after: datetime, limit: int | None = None) -> list[dict[str, Any]]:
    """Signatures by occurrences in the window, with how often a later attempt passed."""
    rows = session.execute(
        select(
            ErrorEvent.signature,
            ErrorEvent.category,
            func.count(ErrorEvent.id),
            func.count(ErrorEvent.resolved_at),
            func.max(ErrorEvent.at),
        )
        .where(ErrorEvent.at >= after)
        .group_by(ErrorEvent.signature, ErrorEvent.category)
        .order_by(func.count(ErrorEvent.id).desc(), ErrorEvent.signature)
        .limit(limit)
    ).all()
    latest: dict[str, Any] = {}
    wanted = {row[0] for row in rows}
    for row in session.execute(
        select(ErrorEvent.signature, ErrorEvent.run_id, ErrorEvent.workstream_id, ErrorEvent.source)
        .where(ErrorEvent.at >= after)
        .order_by(ErrorEvent.at, ErrorEvent.id)
    ):
        if row.signature in wanted:
            latest[row.signature] = row  # the last one wins
    patterns = {
        p.signature: p.normalized
        for p in session.scalars(select(ErrorPattern).where(ErrorPattern.signature.in_(wanted)))
    }
    found = []
    for signature, category, occurrences, resolved, last in rows:
        seen = latest[signature]
        found.append(
            {
                "signature": signature,
                "category": category,
                "occurrences": occurrences,
                "resolved": resolved,
                "resolution_rate": round(resolved / occurrences, 3) if occurrences else 0.0,
                "last_seen": _iso(last),
                "last_run_id": seen.run_id,
                "last_workstream_id": seen.workstream_id,
                "last_source": seen.source,
                "normalized": patterns.get(signature, ""),
            }
        )
    return found


def _tool_rows(session: Session, after: datetime) -> list[Any]:
    return list(
        session.execute(
            select(
                Execution.tool_id,
                Execution.model,
                Execution.task_kind,
                Execution.scope_signature,
                Execution.outcome,
                Execution.attempt,
                Execution.duration_s,
                Execution.cost_usd,
            ).where(Execution.kind == "tool", Execution.at >= after)
        ).all()
    )


def tools(rows: list[Any]) -> list[dict[str, Any]]:
    """Per tool, model and task kind: runs, success and fix-attempt rates, duration, cost."""
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.tool_id or "", row.model or "", row.task_kind or "")].append(row)
    found = []
    for (tool_id, model, task_kind), members in sorted(groups.items()):
        durations = sorted(r.duration_s for r in members)
        runs = len(members)
        found.append(
            {
                "tool_id": tool_id,
                "model": model or None,
                "task_kind": task_kind or None,
                "runs": runs,
                "success_rate": round(sum(r.outcome in SUCCESS for r in members) / runs, 3),
                "fix_attempt_rate": round(sum(r.attempt > 1 for r in members) / runs, 3),
                "duration_mean_s": round(sum(durations) / runs, 3),
                "duration_p90_s": round(_percentile(durations, 0.9), 3),
                "cost_usd": round(sum(r.cost_usd or 0.0 for r in members), 6),
            }
        )
    return found


def gates(session: Session, after: datetime) -> list[dict[str, Any]]:
    """Per gate: runs, failure rate, and how often it was flaky — failed, then passed on the
    identical tree."""
    rows = session.execute(
        select(Execution.gate_id, Execution.outcome, Execution.tree_sha, Execution.run_id).where(
            Execution.kind == "gate", Execution.at >= after
        )
    ).all()
    by_gate: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_gate[row.gate_id or ""].append(row)
    found = []
    for gate_id, members in sorted(by_gate.items()):
        outcomes: dict[str, set[str]] = defaultdict(set)
        for r in members:
            if r.tree_sha:
                outcomes[r.tree_sha].add(r.outcome)
        flaky = sum(1 for seen in outcomes.values() if "passed" in seen and len(seen) > 1)
        runs = len(members)
        failed = sum(r.outcome != "passed" for r in members)
        found.append(
            {
                "gate_id": gate_id,
                "runs": runs,
                "failure_rate": round(failed / runs, 3),
                "flaky": flaky,
            }
        )
    return found


def is_flaky(session: Session, gate_id: str, after: datetime) -> bool:
    """Whether ``gate_id`` ever failed and passed on one identical tree since ``after``."""
    rows = session.execute(
        select(Execution.tree_sha, Execution.outcome).where(
            Execution.kind == "gate",
            Execution.gate_id == gate_id,
            Execution.at >= after,
            Execution.tree_sha.is_not(None),
        )
    ).all()
    seen: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        seen[row.tree_sha].add(row.outcome)
    return any("passed" in outcomes and len(outcomes) > 1 for outcomes in seen.values())


def anti_patterns(seen: list[dict[str, Any]], rows: list[Any]) -> list[dict[str, Any]]:
    """What keeps going wrong: errors that recur and are rarely fixed (``seen``: the window's
    errors); a tool that fails on one kind of task or one scope (``rows``: its tool runs)."""
    found = []
    for error in seen:
        if error["occurrences"] >= RECURRING and error["resolution_rate"] < POORLY_RESOLVED:
            found.append(
                {
                    "kind": "recurring_error",
                    "subject": error["signature"],
                    "detail": f"{error['occurrences']} times, {error['resolved']} resolved "
                    f"({error['category']}; last in {error['last_run_id']} "
                    f"{error['last_workstream_id']})",
                    "occurrences": error["occurrences"],
                }
            )
    for what, column in (("task_kind", 2), ("scope", 3)):
        tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            subject = row[column]
            if not subject:
                continue
            counts = tally[(row.tool_id or "", subject)]
            counts[0] += 1
            counts[1] += row.outcome not in SUCCESS
        for (tool_id, subject), (runs, failures) in sorted(tally.items()):
            if runs >= RECURRING and failures / runs > FAILING:
                found.append(
                    {
                        "kind": f"tool_fails_on_{what}",
                        "subject": f"{tool_id} on {what} {subject}",
                        "detail": f"{failures} of {runs} runs failed",
                        "occurrences": failures,
                    }
                )
    return found


def insights(session: Session, after: datetime) -> dict[str, Any]:
    seen = errors(session, after)
    rows = _tool_rows(session, after)
    return {
        "since": _iso(after),
        "tools": tools(rows),
        "gates": gates(session, after),
        "errors": seen[:10],
        "anti_patterns": anti_patterns(seen, rows),
    }


def remember(session: Session, found: list[dict[str, Any]]) -> None:
    """Keep the anti-patterns found (one row per kind and subject, updated when found again),
    for part 2's suggester and for the record."""
    at = datetime.now(UTC)
    for item in found:
        row = session.scalar(
            select(AntiPattern).where(
                AntiPattern.kind == item["kind"], AntiPattern.subject == item["subject"][:200]
            )
        )
        if row is None:
            row = AntiPattern(kind=item["kind"], subject=item["subject"][:200])
            session.add(row)
        row.detail = {"detail": item["detail"]}
        row.occurrences = item["occurrences"]
        row.detected_at = at


def prune(session: Session, before: datetime) -> dict[str, int]:
    """Forget what happened before ``before`` (the plans keep 90 days)."""
    counts = {}
    for model, column in (
        (Execution, Execution.at),
        (ErrorEvent, ErrorEvent.at),
        (ErrorPattern, ErrorPattern.last_seen),
        (AntiPattern, AntiPattern.detected_at),
    ):
        result = session.execute(delete(model).where(column < before))
        counts[model.__tablename__] = getattr(result, "rowcount", 0) or 0
    return counts


def report(data: dict[str, Any]) -> str:
    """The insights as a weekly-style Markdown report."""
    lines = [f"# uet insights since {data['since'][:10]}", ""]
    lines += [
        "## Tools",
        "",
        "| tool | model | task kind | runs | success | fix attempts | mean s | p90 s | cost $ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in data["tools"]:
        lines.append(
            f"| {t['tool_id']} | {t['model'] or '-'} | {t['task_kind'] or '-'} | {t['runs']} | "
            f"{t['success_rate']:.0%} | {t['fix_attempt_rate']:.0%} | {t['duration_mean_s']:.1f} "
            f"| {t['duration_p90_s']:.1f} | {t['cost_usd']:.2f} |"
        )
    lines += ["", "## Gates", "", "| gate | runs | failure rate | flaky |", "|---|---|---|---|"]
    for g in data["gates"]:
        lines.append(f"| {g['gate_id']} | {g['runs']} | {g['failure_rate']:.0%} | {g['flaky']} |")
    lines += [
        "",
        "## Top errors",
        "",
        "| signature | category | occurrences | resolved | last seen |",
        "|---|---|---|---|---|",
    ]
    for e in data["errors"]:
        lines.append(
            f"| `{e['signature']}` | {e['category']} | {e['occurrences']} | {e['resolved']} | "
            f"{e['last_run_id']} {e['last_workstream_id']} |"
        )
    lines += ["", "## Anti-patterns", ""]
    lines += [f"- **{a['kind']}**: {a['subject']} — {a['detail']}" for a in data["anti_patterns"]]
    if not data["anti_patterns"]:
        lines.append("None found.")
    return "\n".join(lines) + "\n"


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
