"""The order eager mode starts workstreams in (activities/lib/eager_order.py): found by
simulating list scheduling, never worse than longest-remaining-path first."""

from __future__ import annotations

import random

from test_planning import spec

from activities.lib.eager_order import makespan, searched_order
from activities.lib.planning import plan_phase

SLOTS = 4


def ten_independent() -> dict[str, float]:
    rng = random.Random(10)  # bench/dag_efficiency.py's first DAG
    return {f"ind-{i:02d}": rng.uniform(0.5, 2.0) for i in range(10)}


def test_ten_independent_pack_close_to_the_bound() -> None:
    durations = ten_independent()
    deps: dict[str, list[str]] = {w: [] for w in durations}
    longest_first = sorted(durations, key=lambda w: (-durations[w], w))
    bound = sum(durations.values()) / SLOTS
    assert makespan(durations, deps, longest_first, SLOTS) / bound > 1.11  # the rule's gap
    order = searched_order(durations, deps, longest_first, SLOTS)
    assert sorted(order) == sorted(durations)
    assert makespan(durations, deps, order, SLOTS) / bound < 1.02


def test_the_search_never_makes_a_schedule_longer() -> None:
    rng = random.Random(7)
    for _ in range(30):
        n = rng.randint(2, 40)
        ids = [f"w{i:02d}" for i in range(n)]
        deps = {
            w: sorted(rng.sample(ids[:i], k=min(i, rng.choice([0, 1, 2]))))
            for i, w in enumerate(ids)
        }
        durations = {w: rng.uniform(0.1, 3.0) for w in ids}
        first = list(ids)
        slots = rng.randint(1, 5)
        order = searched_order(durations, deps, first, slots)
        assert sorted(order) == ids
        assert makespan(durations, deps, order, slots) <= makespan(durations, deps, first, slots)


def test_an_eager_plan_carries_the_order_and_a_waves_plan_none() -> None:
    durations = ten_independent()
    edges: dict[str, list[str]] = {w: [] for w in durations}
    eager = plan_phase(spec(edges, SLOTS, "eager", **durations))
    assert eager.order and eager.order == plan_phase(spec(edges, SLOTS, "eager", **durations)).order
    assert makespan(durations, edges, eager.order, SLOTS) < 1.02 * sum(durations.values()) / SLOTS
    assert plan_phase(spec(edges, SLOTS, "waves", **durations)).order == []
