"""Which chain of tools an ``auto`` workstream's router picks (before circuit breakers): pure,
so the phase workflow's router and the planning activity (learned order) pick the same one."""

from __future__ import annotations

from schemas.globs import matches_any
from schemas.spec import Router, WorkstreamSpec


def auto_chain(router: Router, ws: WorkstreamSpec) -> tuple[list[str], str]:
    """The chain of the first rule that matches ``ws``, else the default, and why."""
    for number, rule in enumerate(router.rules, start=1):
        if rule_matches(rule.paths, rule.kind, ws):
            return list(rule.tools), f"router rule {number}"
    return list(router.default), "router default"


def rule_matches(paths: list[str], kind: str | None, ws: WorkstreamSpec) -> bool:
    if kind is not None and ws.task_kind == kind:
        return True
    scope = ws.constraints.file_scope.allowed_paths
    return bool(paths) and any(matches_any(p, paths) for p in scope)
