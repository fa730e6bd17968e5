"""`uet gc`: remove what uet left that nothing needs any more — dead workers' scratch dirs,
closed runs' checkouts, old runs' refs, unused artifacts and caches, interrupted writes.

Exit codes: 0 done (or nothing to do), 1 something could not be removed (each said), 2 invalid
input, 3 Temporal unreachable without ``--offline``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from activities.lib import gc as collect
from runtime.artifact_store import artifact_store
from runtime.cli.base import command
from runtime.cli.learning import days
from runtime.connect import check_namespace, connect, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "gc",
        gc,
        "remove what uet left that nothing needs: dead workers' scratch dirs, closed runs' "
        "checkouts and old refs, unused artifacts and caches",
        ["uet gc --dry-run", "uet gc --older-than 30d", "uet gc --offline --dry-run --json"],
    )
    s.add_argument(
        "--older-than",
        dest="older_than",
        type=days,
        default=14.0,
        metavar="DAYS",
        help="refs of closed runs, unused artifacts and caches older than this go: 14d "
        "(default), 12h, 2w",
    )
    s.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="only list what would go, with sizes, and uet's disk use",
    )
    s.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="{items, total_bytes, by_kind, usage_bytes, notes, …} on stdout",
    )
    s.add_argument(
        "--offline",
        action="store_true",
        help="do not ask Temporal which runs are open: every run without a closed report "
        "counts as open (nothing of it goes but dead workers' scratch dirs)",
    )


async def gc(older_than: float, dry_run: bool, as_json: bool, offline: bool) -> int:
    home = Settings.from_env().home
    if offline:
        open_ids = collect.local_run_ids(home) - collect.closed_run_ids(home)
        open_artifacts: set[str] | None = None
    else:
        open_ids, open_artifacts = await _open_runs()
    # PostgreSQL: its unused rows go too (unreachable: the rest goes, and a note says so).
    store = artifact_store(home, reachable=False)
    plan = collect.plan_gc(
        home, older_than * 86400, open_ids, time.time(), open_artifacts, store=store
    )
    applied = None if dry_run else collect.apply(plan)
    if as_json:
        document: dict[str, Any] = {"dry_run": dry_run, "offline": offline, **plan.as_json()}
        if applied is not None:
            document["removed_bytes"] = applied.freed
            document["skipped"] = [
                {**item.as_json(), "reason": reason} for item, reason in applied.skipped
            ]
        emit_json(document)
    else:
        _print(plan, applied)
    failed = applied is not None and any(r != "already gone" for _, r in applied.skipped)
    return ExitCode.FAILED if failed else ExitCode.COMPLETED


def _print(plan: collect.GcPlan, applied: collect.Applied | None) -> None:
    human = collect.human
    for note in plan.notes:
        err.print(f"note: {note}", markup=False)
    if applied is None:
        for item in plan.items:
            what = f"{item.path} {item.ref}" if item.ref else item.path
            out.print(f"{item.kind:<8} {human(item.size):>10}  {what}  ({item.why})", markup=False)
        count = len(plan.items)
        out.print(
            f"would remove {count} item{'s' if count != 1 else ''}: {human(plan.total)}",
            markup=False,
        )
        usage = ", ".join(f"{part} {human(size)}" for part, size in plan.usage.items())
        out.print(f"uet uses {usage} in {plan.home}", markup=False)
        return
    for item, reason in applied.skipped:
        if reason != "already gone":
            what = f"{item.path} {item.ref}" if item.ref else item.path
            err.print(f"kept {item.kind} {what}: {reason}", markup=False)
    count = len(applied.removed)
    kinds = collect.GcPlan(plan.home, plan.older_than_s, plan.now, applied.removed).by_kind()
    parts = ", ".join(f"{v['items']} {k}" for k, v in kinds.items() if v["items"])
    out.print(
        f"removed {count} item{'s' if count != 1 else ''}"
        + (f" ({parts})" if parts else "")
        + f": {human(applied.freed)} freed",
        markup=False,
    )


async def _open_runs() -> tuple[set[str], set[str] | None]:
    """The runs Temporal has open (any of their workflows running, a rollback of an ended run
    too) and the artifacts their histories name (None when one could not be read)."""
    target = target_from_env()
    try:
        client = await connect(target)
    except Exception:
        raise UserError(
            f"Temporal at {target.address} is unreachable, so uet cannot tell which runs are "
            "open; start it (`uet server start`) or pass --offline (runs without a closed "
            "report then count as open)",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    await check_namespace(client)
    open_ids: set[str] = set()
    used: set[str] | None = set()
    try:
        async for execution in client.list_workflows('ExecutionStatus = "Running"'):
            if not execution.id.startswith("uet-"):
                continue
            open_ids.add(execution.id.removeprefix("uet-").split("/")[0])
            found = await _history_references(client, execution.id, execution.run_id)
            used = None if used is None or found is None else used | found
    except RPCError as exc:
        raise UserError(
            f"cannot list the open runs ({exc.message}), so uet cannot tell which runs are "
            "open; check the server or pass --offline",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    return open_ids, used


async def _history_references(client: Client, workflow_id: str, run_id: str) -> set[str] | None:
    """Every artifact name in a workflow's history (payloads are JSON: the names are there as
    they are)."""
    try:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError:
        return None
    found: set[str] = set()
    for event in history.events:
        found |= {m.decode() for m in collect.SHA256_BYTES.findall(event.SerializeToString())}
    return found
