"""Assigning people in flooded cells to shelters by travel time, within shelter capacities.

A min-cost flow (networkx network simplex): each affected population cell supplies its
people; each shelter takes at most its capacity; the cost of a person is the travel time
(whole seconds, as network simplex wants integers) from the cell to the shelter. People no
reachable shelter can take go to an "unassigned" node at a cost above any real re-routing,
so the flow always exists and the shortfall is reported rather than hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt

__all__ = ["Evacuation", "EvacuationError", "assign_shelters"]


class EvacuationError(ValueError):
    """Inconsistent people, capacities or travel times."""


@dataclass(frozen=True)
class Evacuation:
    """``people[c, s]`` people of cell c sent to shelter s; ``unassigned[c]`` left over."""

    people: npt.NDArray[np.int64]
    unassigned: npt.NDArray[np.int64]
    total_person_seconds: int


def assign_shelters(
    population: Sequence[int],
    capacity: Sequence[int],
    travel_s: npt.ArrayLike,
) -> Evacuation:
    """Send people to shelters at least total travel time, within capacities.

    Parameters
    ----------
    population
        People in each affected cell (whole numbers).
    capacity
        Places in each shelter.
    travel_s
        (cells × shelters) travel time in seconds; ``inf`` or NaN where no route.
    """
    pop = np.asarray(population, dtype=np.int64)
    cap = np.asarray(capacity, dtype=np.int64)
    t = np.asarray(travel_s, dtype=np.float64)
    if t.shape != (pop.size, cap.size):
        raise EvacuationError(f"travel times shape {t.shape}, expected {(pop.size, cap.size)}")
    if (pop < 0).any() or (cap < 0).any():
        raise EvacuationError("population and capacities must be >= 0")
    routable = np.isfinite(t)
    if (t[routable] < 0).any():
        raise EvacuationError("travel times must be >= 0 s")
    g = nx.DiGraph()
    total = int(pop.sum())
    g.add_node("sink", demand=total)
    # above any chain of re-routings an extra assignment could need, so the most people
    # possible get a place (then at least total time)
    longest = int(np.ceil(t[routable].max())) if routable.any() else 0
    penalty = (longest + 1) * (pop.size + 1)
    for c in np.flatnonzero(pop):
        g.add_node(("cell", c), demand=-int(pop[c]))
        g.add_edge(("cell", c), "unassigned", weight=penalty)
        for s in np.flatnonzero(routable[c]):
            g.add_edge(("cell", c), ("shelter", s), weight=round(t[c, s]))
    for s in np.arange(cap.size):
        g.add_edge(("shelter", s), "sink", capacity=int(cap[s]), weight=0)
    g.add_edge("unassigned", "sink", weight=0)
    flow = nx.min_cost_flow(g)
    people = np.zeros(t.shape, dtype=np.int64)
    left = np.zeros(pop.size, dtype=np.int64)
    cost: int = 0
    for c in np.flatnonzero(pop):
        for target, n in flow[("cell", c)].items():
            if target == "unassigned":
                left[c] = n
            else:
                people[c, target[1]] = n
                cost += int(n) * round(float(t[c, target[1]]))
    return Evacuation(people, left, cost)
