"""Dependency graph → waves, critical path, eager priorities and the speedup bound (networkx).
Pure: the CLI plans with it (`uet plan`) and so does the planning activity."""

from __future__ import annotations

import networkx as nx

from schemas.plan import Plan
from schemas.spec import PhaseSpec
from schemas.spec_check import dependency_graph


def plan_phase(spec: PhaseSpec) -> Plan:
    graph = dependency_graph(spec)
    waves = [sorted(generation) for generation in nx.topological_generations(graph)]
    weight = {
        ws.workstream_id: ws.estimated_duration_s if ws.estimated_duration_s else 1.0
        for ws in spec.workstreams
    }
    path, length = _critical_path(graph, weight)
    total = sum(weight.values())
    slots = min(spec.max_parallel, len(weight))
    bound = max(length, total / slots)
    remaining: dict[str, float] = {}
    for node in reversed(list(nx.lexicographical_topological_sort(graph))):
        after = [remaining[s] for s in graph.successors(node)]
        remaining[node] = weight[node] + max(after, default=0.0)
    return Plan(
        remaining=remaining,
        phase_id=spec.phase_id,
        waves=waves,
        critical_path=path,
        critical_path_s=length,
        total_work_s=total,
        speedup_bound=round(total / bound, 3),
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
