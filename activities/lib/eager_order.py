"""The order eager mode starts ready workstreams in, found by simulating it.

Eager mode is list scheduling: whenever a slot is free, the ready workstream that comes first
in the order starts. Longest remaining path first is a good order, not the best: ten
independent workstreams on four slots end 12 % after the bound that way, because it cannot
look ahead at how the last ones pack. So the plan simulates the schedule (with the durations
it knows: estimated, learned, or 1 each) and improves the order by swapping pairs, keeping a
swap only when the simulated makespan gets shorter; for those ten, that is 1.4 % over the
bound. Pure and deterministic: the same phase gets the same order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

#: Simulation work the search may spend (workstreams simulated, summed over the tries): a
#: few tenths of a second. Small phases get every pair tried, large ones a part of them.
BUDGET = 400_000


def makespan(
    durations: Mapping[str, float],
    dependencies: Mapping[str, list[str]],
    order: list[str],
    slots: int,
) -> float:
    """When the last workstream ends if each starts, in ``order``, as soon as its
    dependencies have ended and a slot is free (list scheduling, no overhead)."""
    rank = {ws_id: n for n, ws_id in enumerate(order)}
    dependents: dict[str, list[str]] = {ws_id: [] for ws_id in order}
    waiting = {ws_id: len(dependencies[ws_id]) for ws_id in order}
    for ws_id in order:
        for dep in dependencies[ws_id]:
            dependents[dep].append(ws_id)
    ready = [(rank[w], w) for w in order if not waiting[w]]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now, ended = 0.0, 0
    while ended < len(order):
        while ready and len(running) < slots:
            _, ws_id = heapq.heappop(ready)
            heapq.heappush(running, (now + durations[ws_id], ws_id))
        now, ws_id = heapq.heappop(running)
        ended += 1
        for after in dependents[ws_id]:
            waiting[after] -= 1
            if not waiting[after]:
                heapq.heappush(ready, (rank[after], after))
    return now


def searched_order(
    durations: Mapping[str, float],
    dependencies: Mapping[str, list[str]],
    first: list[str],
    slots: int,
    bound: float | None = None,
) -> list[str]:
    """``first`` (longest remaining path first), improved by pairwise swaps within BUDGET.
    ``bound``: what no order can beat (the plan has it; computed here when not given)."""
    order = list(first)
    n = len(order)
    if n <= slots:
        return order  # every workstream has a slot: the order changes nothing
    best = makespan(durations, dependencies, order, slots)
    floor = lower_bound(durations, dependencies, slots) if bound is None else bound
    if best <= floor + 1e-9:
        return order
    spent = n
    improved = True
    while improved and spent < BUDGET:
        improved = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                if spent >= BUDGET:
                    return order
                order[i], order[j] = order[j], order[i]
                tried = makespan(durations, dependencies, order, slots)
                spent += n
                if tried < best - 1e-9:
                    best, improved = tried, True
                    if best <= floor + 1e-9:  # no order ends sooner: the rest would not swap
                        return order
                else:
                    order[i], order[j] = order[j], order[i]
    return order


def lower_bound(
    durations: Mapping[str, float], dependencies: Mapping[str, list[str]], slots: int
) -> float:
    """No schedule ends sooner: the longest dependency path, or all the work on every slot."""
    waiting = {ws_id: len(deps) for ws_id, deps in dependencies.items()}
    dependents: dict[str, list[str]] = {ws_id: [] for ws_id in dependencies}
    for ws_id, deps in dependencies.items():
        for dep in deps:
            dependents[dep].append(ws_id)
    start = dict.fromkeys(dependencies, 0.0)
    todo = [ws_id for ws_id, n in waiting.items() if not n]
    longest = 0.0
    while todo:
        ws_id = todo.pop()
        end = start[ws_id] + durations[ws_id]
        longest = max(longest, end)
        for after in dependents[ws_id]:
            start[after] = max(start[after], end)
            waiting[after] -= 1
            if not waiting[after]:
                todo.append(after)
    return max(longest, sum(durations[w] for w in dependencies) / slots)
