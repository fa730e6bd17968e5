"""The order eager mode starts workstreams in (activities/lib/eager_order.py): found by
simulating list scheduling, never worse than longest-remaining-path first."""

from __future__ import annotations

import random

import pytest
from test_planning import spec

from activities.lib import eager_order
from activities.lib.eager_order import lower_bound, makespan, searched_order
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


def random_dags(
    seed: int, count: int = 30
) -> list[tuple[dict[str, float], dict[str, list[str]], int]]:
    rng = random.Random(seed)
    dags = []
    for _ in range(count):
        n = rng.randint(2, 40)
        ids = [f"w{i:02d}" for i in range(n)]
        deps = {
            w: sorted(rng.sample(ids[:i], k=min(i, rng.choice([0, 1, 2]))))
            for i, w in enumerate(ids)
        }
        # Whole durations make the bound reachable often: the search's early end is tried.
        durations = {w: float(rng.randint(1, 4)) if n % 2 else rng.uniform(0.1, 3.0) for w in ids}
        dags.append((durations, deps, rng.randint(1, 5)))
    return dags


def test_the_search_never_makes_a_schedule_longer() -> None:
    for durations, deps, slots in random_dags(7):
        first = sorted(durations)
        order = searched_order(durations, deps, first, slots)
        assert sorted(order) == first
        assert makespan(durations, deps, order, slots) <= makespan(durations, deps, first, slots)
        assert makespan(durations, deps, order, slots) >= lower_bound(durations, deps, slots) - 1e-9


def test_the_search_ends_at_the_bound_with_the_order_a_full_search_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No order ends before the bound, so once one reaches it no later swap is kept: ending
    there changes the order found, only the time spent finding it."""
    dags = random_dags(11)
    early = [searched_order(d, deps, sorted(d), slots) for d, deps, slots in dags]
    reached = sum(
        makespan(d, deps, o, slots) <= lower_bound(d, deps, slots) + 1e-9
        for (d, deps, slots), o in zip(dags, early, strict=True)
    )
    assert reached >= 10  # the early end was taken, often
    monkeypatch.setattr(eager_order, "lower_bound", lambda *_: 0.0)
    assert early == [searched_order(d, deps, sorted(d), slots) for d, deps, slots in dags]


def test_an_eager_plan_carries_the_order_and_a_waves_plan_none() -> None:
    durations = ten_independent()
    edges: dict[str, list[str]] = {w: [] for w in durations}
    eager = plan_phase(spec(edges, SLOTS, "eager", **durations))
    assert eager.order and eager.order == plan_phase(spec(edges, SLOTS, "eager", **durations)).order
    assert makespan(durations, edges, eager.order, SLOTS) < 1.02 * sum(durations.values()) / SLOTS
    # The plan gives the search its own bound: the order is the one the search finds alone.
    longest_first = sorted(durations, key=lambda w: (-durations[w], w))
    assert eager.order == searched_order(durations, edges, longest_first, SLOTS)
    assert plan_phase(spec(edges, SLOTS, "waves", **durations)).order == []
