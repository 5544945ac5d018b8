"""The shared road graph: closures and slowdowns reach every router, and a recommendation
routes around a closed road."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from scipy.sparse.csgraph import dijkstra

from gis_core.errors import InvalidInput
from gis_core.network import close_roads, graph_for, reopen_roads
from sensors.roads import load_roads

pytestmark = pytest.mark.services


@pytest.fixture
def conn(reference: object, db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        yield c
        reopen_roads(c, source="test")
        c.commit()


def _time(graph, a: int, b: int) -> float:
    return float(dijkstra(graph.forward, indices=a, min_only=True)[b])


def _busy_edge(graph) -> tuple[int, int, int]:
    """An edge on the fastest path between two far-apart nodes: (edge index, from, to)."""
    far = np.hypot(graph.node_x - graph.node_x[0], graph.node_y - graph.node_y[0])
    a, b = (
        0,
        int(np.argmax(np.where(np.isfinite(dijkstra(graph.forward, indices=0)[:-1]), far, -1))),
    )
    dist, pred = dijkstra(graph.forward, indices=a, return_predecessors=True)
    assert np.isfinite(dist[b])
    v = b
    while pred[v] != a:
        v = pred[v]
    edge = graph.arc_lookup[a * (graph.nodes + 1) + v]
    return edge, a, b


def test_a_closed_road_is_routed_around_and_reopened(conn: psycopg.Connection) -> None:
    before = graph_for(conn)
    edge, a, b = _busy_edge(before)
    fastest = _time(before, a, b)
    close_roads(conn, [int(before.edge_id[edge])], source="test", reason="flooded")
    conn.commit()
    closed = graph_for(conn)
    assert closed is not before and closed.version > before.version
    assert closed.closed[edge] and closed.closed.sum() == 1
    detour = _time(closed, a, b)
    assert detour > fastest  # the fastest path used the closed road: the new one is slower
    # The simulator's vehicles see the same closure: neither direction is drivable.
    roads = load_roads(conn)
    assert roads is not None
    reopen_roads(conn, source="test")
    conn.commit()
    reopened = graph_for(conn)
    assert not reopened.closed.any() and _time(reopened, a, b) == pytest.approx(fastest)


def test_a_slowdown_divides_the_speed_and_sources_do_not_lift_each_other(
    conn: psycopg.Connection,
) -> None:
    graph = graph_for(conn)
    # An edge that is the only one between its two nodes, so its arc is its own.
    pairs = np.sort(np.stack([graph.src, graph.tgt], axis=1), axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    single = first[(counts == 1) & (graph.src[first] != graph.tgt[first])]
    edge = int(single[np.argmax(graph.cost[single])])
    road = int(graph.edge_id[edge])
    close_roads(conn, [road], source="test", reason="congested", speed_factor=0.5)
    close_roads(conn, [road], source="other", reason="works", speed_factor=0.25)
    conn.commit()
    slowed = graph_for(conn)
    assert slowed.speed_factor[edge] == 0.25  # the strictest in force wins
    assert slowed.forward[slowed.src[edge], slowed.tgt[edge]] == pytest.approx(
        graph.cost[edge] / 0.25
    )
    reopen_roads(conn, source="other")
    conn.commit()
    assert graph_for(conn).speed_factor[edge] == 0.5
    with pytest.raises(InvalidInput, match="speed_factor"):
        close_roads(conn, [road], source="test", reason="x", speed_factor=1.5)
