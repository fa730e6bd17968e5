"""Dependency graph → waves, critical path, eager priorities and the speedup bound (networkx).
Pure: the CLI plans with it (`uet plan`) and so does the planning activity."""

from __future__ import annotations

import statistics

import networkx as nx

from activities.lib.eager_order import searched_order
from schemas.plan import Plan
from schemas.spec import PhaseSpec
from schemas.spec_check import dependency_graph


def plan_phase(spec: PhaseSpec, learned: dict[str, float] | None = None) -> Plan:
    """``learned``: seconds per workstream from earlier runs, the weight of those the spec
    gives no ``estimated_duration_s``. Without any, the rest weigh 1 each; with some, the
    median of the known figures."""
    graph = dependency_graph(spec)
    waves = [sorted(generation) for generation in nx.topological_generations(graph)]
    learned = learned or {}
    used: dict[str, float] = {}
    weight: dict[str, float] = {}
    for ws in spec.workstreams:
        ws_id = ws.workstream_id
        if ws.estimated_duration_s:
            weight[ws_id] = ws.estimated_duration_s
        elif learned.get(ws_id, 0) > 0:
            weight[ws_id] = used[ws_id] = learned[ws_id]
        else:
            weight[ws_id] = 1.0
    if used:
        # Seconds now: a workstream nothing is known about weighs as the typical one, not 1 s.
        estimated = {ws.workstream_id for ws in spec.workstreams if ws.estimated_duration_s}
        typical = statistics.median(
            w for ws_id, w in weight.items() if ws_id in used or ws_id in estimated
        )
        for ws in spec.workstreams:
            if ws.workstream_id not in used and not ws.estimated_duration_s:
                weight[ws.workstream_id] = typical
    path, length = _critical_path(graph, weight)
    total = sum(weight.values())
    slots = min(spec.max_parallel, len(weight))
    bound = max(length, total / slots)
    remaining: dict[str, float] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(graph))):
        after = [remaining[s] for s in graph.successors(node)]
        remaining[node] = weight[node] + max(after, default=0.0)
    order: list[str] = []
    if spec.scheduling == "eager":
        dependencies = {node: list(graph.predecessors(node)) for node in graph}
        first = sorted(remaining, key=lambda w: (-remaining[w], w))
        order = searched_order(weight, dependencies, first, slots, bound)
    return Plan(
        remaining=remaining,
        order=order,
        phase_id=spec.phase_id,
        waves=waves,
        critical_path=path,
        critical_path_s=length,
        total_work_s=total,
        speedup_bound=round(total / bound, 3),
        learned_durations=used,
    )


def _critical_path(graph: nx.DiGraph, weight: dict[str, float]) -> tuple[list[str], float]:
    """Longest node-weighted path; ties go to the smaller id so the answer is stable."""
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for node in nx.lexicographical_topological_sort(graph):
        best: str | None = None
        for pred in sorted(graph.predecessors(node)):
            if best is None or finish[pred] > finish[best]:
                best = pred
        previous[node] = best
        finish[node] = weight[node] + (finish[best] if best is not None else 0.0)
    if not finish:
        return [], 0.0
    end = min(finish, key=lambda n: (-finish[n], n))
    path = [end]
    while (before := previous[path[-1]]) is not None:
        path.append(before)
    return path[::-1], finish[end]
