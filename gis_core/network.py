"""The city's road network as a graph in memory: one build, shared by every application.

Dispatch's recommendations and coverage, the simulator's vehicles, flood evacuation and
traffic guidance all route over ``ref.road`` through :func:`graph_for`: arrays per edge, CSR
matrices per direction, metric geometry and an STR tree for snapping. A process keeps one copy
per database and rebuilds it when the network changes (``ref.road_graph_version``, bumped by
triggers on ``ref.road`` and ``ref.road_closure``).

Closures and slowdowns are rows of ``ref.road_closure`` (:func:`close_roads`,
:func:`reopen_roads`): a flood closes the roads under water, traffic slows a congested
segment, each under its own ``source`` so one never lifts another's. A closed edge stays in
the graph (it is snapped to and drawn) but no arc uses it; a slowed one costs its time divided
by the factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from scipy.sparse import csr_matrix

from gis_core.cache import PerDatabase
from gis_core.crs import CGCS2000_GK_CM114, WGS84, transform, transform_geometry
from gis_core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPS_COST = 1e-6  # scipy's graphs drop explicit zeros: a zero-cost arc still needs a weight

# The strictest closure in force wins: the lowest speed factor of an edge's open closures.
LOAD_SQL = """
SELECT r.id, r.source, r.target, r.cost_s, r.reverse_cost_s, r.length_m, ST_AsBinary(r.geom),
       r.speed_kmh, r.road_class, coalesce(c.factor, 1.0)
FROM ref.road r
LEFT JOIN (
    SELECT road_id, min(speed_factor) AS factor
    FROM ref.road_closure
    WHERE valid_from <= now() AND (valid_to IS NULL OR valid_to > now())
    GROUP BY road_id
) c ON c.road_id = r.id
WHERE r.source IS NOT NULL AND r.target IS NOT NULL AND r.cost_s >= 0
ORDER BY r.id
"""


# --------------------------------------------------------------------------- the graph


@dataclass
class RoadGraph:
    """``ref.road`` in memory: arrays per edge, CSR matrices per direction, metric geometry."""

    version: int
    edge_id: IntArray
    src: IntArray  # node index of the edge's source
    tgt: IntArray
    cost: FloatArray
    rcost: FloatArray  # < 0: the reverse direction is closed (one-way)
    length: FloatArray
    node_id: IntArray  # node index -> ref.road_node id
    geoms_m: npt.NDArray[Any]  # EPSG:4547 linestrings
    geoms_wgs: npt.NDArray[Any]
    v_max: float  # fastest speed on the graph, m/s
    reverse: csr_matrix  # reverse[v, u] = time of the arc u -> v; one spare row for the scene
    forward: csr_matrix  # forward[u, v] = time of the arc u -> v
    rev_edge: IntArray  # edge index of each stored arc of ``reverse``, in CSR order
    tree: shapely.STRtree = field(repr=False)
    node_x: FloatArray = field(repr=False)  # metric position of each node
    node_y: FloatArray = field(repr=False)
    node_reach_m: FloatArray = field(repr=False)  # longest edge at each node
    node_speed: FloatArray = field(repr=False)  # fastest edge at each node, m/s
    coords: FloatArray = field(repr=False)  # every edge's WGS84 vertices, edge after edge
    coord_offset: IntArray = field(repr=False)  # edge index -> first row in ``coords``
    arc_lookup: dict[int, int] = field(default_factory=dict, repr=False)  # tail*(n+1)+head
    edge_index: dict[int, int] = field(default_factory=dict, repr=False)
    # Posted speed and class of each edge, and what the road_closure table says of it now:
    # closed (no arc either way) or slowed (travel times divided by ``speed_factor``).
    speed_kmh: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)
    road_class: npt.NDArray[Any] = field(default_factory=lambda: np.zeros(0, object), repr=False)
    closed: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool), repr=False)
    speed_factor: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def nodes(self) -> int:
        return len(self.node_id)

    @property
    def edges(self) -> int:
        return len(self.edge_id)


def graph_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT version FROM ref.road_graph_version").fetchone()
    return int(row[0]) if row else 0


def load_graph(conn: psycopg.Connection) -> RoadGraph:
    """Read ``ref.road`` into a :class:`RoadGraph`, with the closures and slowdowns in force."""
    version = graph_version(conn)
    rows = conn.execute(LOAD_SQL).fetchall()
    if not rows:
        raise InvalidInput("the road network is empty: load the reference dataset first")
    edge_id = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    s_id = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    t_id = np.fromiter((r[2] for r in rows), np.int64, len(rows))
    cost = np.fromiter((r[3] for r in rows), np.float64, len(rows))
    rcost = np.fromiter((r[4] for r in rows), np.float64, len(rows))
    length = np.fromiter((r[5] for r in rows), np.float64, len(rows))
    geoms_wgs = shapely.from_wkb([bytes(r[6]) for r in rows])
    factor = np.fromiter((r[9] for r in rows), np.float64, len(rows))
    graph = build_graph(
        version, edge_id, s_id, t_id, cost, rcost, length, geoms_wgs, speed_factor=factor
    )
    graph.speed_kmh = np.fromiter((r[7] or 30.0 for r in rows), np.float64, len(rows))
    graph.road_class = np.array([r[8] or "local" for r in rows], dtype=object)
    return graph


def build_graph(
    version: int,
    edge_id: IntArray,
    s_id: IntArray,
    t_id: IntArray,
    cost: FloatArray,
    rcost: FloatArray,
    length: FloatArray,
    geoms_wgs: npt.NDArray[Any],
    speed_factor: FloatArray | None = None,
) -> RoadGraph:
    """The graph of these edges. ``speed_factor`` per edge: 1 as posted, 0.5 half speed, 0
    closed both ways (the edge stays, for snapping and drawing, but no arc uses it)."""
    node_id, inverse = np.unique(np.concatenate([s_id, t_id]), return_inverse=True)
    n_edges = len(edge_id)
    factor = np.ones(n_edges) if speed_factor is None else np.asarray(speed_factor, float)
    closed = factor <= 0
    src, tgt = inverse[:n_edges].astype(np.int64), inverse[n_edges:].astype(np.int64)
    n = len(node_id)
    ahead = (cost >= 0) & ~closed
    back = (rcost >= 0) & ~closed
    slow = np.where(closed, 1.0, factor)
    # Arcs: every open edge forwards, and backwards where open.
    tail = np.concatenate([src[ahead], tgt[back]])
    head = np.concatenate([tgt[ahead], src[back]])
    weight = np.maximum(
        np.concatenate([cost[ahead] / slow[ahead], rcost[back] / slow[back]]), EPS_COST
    )
    arc_edge = np.concatenate([np.flatnonzero(ahead), np.flatnonzero(back)])
    keep = tail != head  # a loop never shortens a path
    tail, head, weight, arc_edge = tail[keep], head[keep], weight[keep], arc_edge[keep]
    # Parallel edges: keep the cheapest arc per (tail, head).
    order = np.lexsort((weight, tail, head))
    tail, head, weight, arc_edge = tail[order], head[order], weight[order], arc_edge[order]
    cheapest = np.ones(len(order), bool)
    cheapest[1:] = (head[1:] != head[:-1]) | (tail[1:] != tail[:-1])
    tail, head = tail[cheapest], head[cheapest]
    weight, arc_edge = weight[cheapest], arc_edge[cheapest]
    # Reverse CSR, rows = heads (sorted by head, then tail), plus an empty row for the scene.
    indptr = np.zeros(n + 2, np.int64)
    np.add.at(indptr, head + 1, 1)
    indptr = np.cumsum(indptr)
    reverse = csr_matrix((weight, tail.astype(np.int32), indptr), shape=(n + 1, n + 1))
    forward = csr_matrix((weight, (tail, head)), shape=(n + 1, n + 1))
    geoms_m = transform_geometry(geoms_wgs, WGS84, CGCS2000_GK_CM114)
    coords, coord_idx = shapely.get_coordinates(geoms_wgs, return_index=True)
    first = shapely.get_point(geoms_m, 0)
    last = shapely.get_point(geoms_m, -1)
    node_x, node_y = np.zeros(n), np.zeros(n)
    node_x[src], node_y[src] = shapely.get_x(first), shapely.get_y(first)
    node_x[tgt], node_y[tgt] = shapely.get_x(last), shapely.get_y(last)
    speed = np.where((cost > 0) & ~closed, length * slow / np.maximum(cost, EPS_COST), 0.0)
    reach, fastest = np.zeros(n), np.full(n, 1e-3)
    for ends in (src, tgt):
        np.maximum.at(reach, ends, length)
        np.maximum.at(fastest, ends, speed)
    graph = RoadGraph(
        version=version,
        edge_id=edge_id,
        src=src,
        tgt=tgt,
        cost=cost,
        rcost=rcost,
        length=length,
        node_id=node_id,
        geoms_m=geoms_m,
        geoms_wgs=geoms_wgs,
        v_max=float(speed.max()) if len(speed) else 1.0,
        reverse=reverse,
        forward=forward,
        rev_edge=arc_edge.astype(np.int64),
        tree=shapely.STRtree(geoms_m),
        node_x=node_x,
        node_y=node_y,
        node_reach_m=reach,
        node_speed=fastest,
        coords=coords,
        coord_offset=np.append(np.searchsorted(coord_idx, np.arange(n_edges)), len(coords)),
    )
    graph.closed = closed
    graph.speed_factor = np.where(closed, 0.0, slow)
    graph.arc_lookup = dict(zip((tail * (n + 1) + head).tolist(), arc_edge.tolist(), strict=True))
    graph.edge_index = {int(e): i for i, e in enumerate(edge_id)}
    return graph


_graphs: PerDatabase[RoadGraph] = PerDatabase(graph_version, load_graph)


def graph_for(conn: psycopg.Connection) -> RoadGraph:
    """The in-memory graph of this database, reloaded when ``ref.road`` or the closures in
    force have changed."""
    return _graphs.get(conn)


# --------------------------------------------------------------------------- snapping


@dataclass(frozen=True)
class Snaps:
    """Positions snapped to the network: arrays aligned with the positions given."""

    edge: IntArray  # edge index (not id)
    fraction: FloatArray  # along the edge from its source, 0..1
    distance_m: FloatArray  # from the position to the road
    x: FloatArray  # the positions, metric
    y: FloatArray


def to_metric(lon: Any, lat: Any) -> tuple[FloatArray, FloatArray]:
    x, y = transform(np.asarray(lon, float), np.asarray(lat, float), WGS84, CGCS2000_GK_CM114)
    return np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))


def snap(graph: RoadGraph, lon: Any, lat: Any) -> Snaps:
    """Snap WGS84 positions to their nearest road edge."""
    x, y = to_metric(lon, lat)
    if len(x) == 0:
        empty = np.zeros(0)
        return Snaps(np.zeros(0, np.int64), empty, empty, empty, empty)
    points = shapely.points(x, y)
    (pi, ei), dist = graph.tree.query_nearest(points, return_distance=True, all_matches=False)
    edge = np.zeros(len(x), np.int64)
    distance = np.full(len(x), np.inf)
    edge[pi], distance[pi] = ei, dist
    fraction = shapely.line_locate_point(graph.geoms_m[edge], points, normalized=True)
    return Snaps(edge, np.clip(np.nan_to_num(fraction), 0.0, 1.0), distance, x, y)


# --------------------------------------------------------------------------- closures


def close_roads(
    conn: psycopg.Connection,
    road_ids: Iterable[int],
    *,
    source: str,
    reason: str,
    speed_factor: float = 0.0,
    until: datetime | None = None,
) -> int:
    """Close (``speed_factor`` 0) or slow roads under ``source`` (e.g. ``flood``); returns how
    many rows were written. Replaces what ``source`` said before of the same roads."""
    ids = sorted({int(i) for i in road_ids})
    if not 0 <= speed_factor <= 1:
        raise InvalidInput("speed_factor: 0 (closed) to 1 (as posted)")
    if not source or len(source) > 32:
        raise InvalidInput("source: a short name of who closes the roads")
    conn.execute(
        "DELETE FROM ref.road_closure WHERE source = %s AND road_id = ANY(%s)", (source, ids)
    )
    if ids:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ref.road_closure (road_id, source, reason, speed_factor, valid_to)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(i, source, reason, speed_factor, until) for i in ids],
            )
    return len(ids)


def reopen_roads(
    conn: psycopg.Connection, *, source: str, road_ids: Sequence[int] | None = None
) -> int:
    """Lift ``source``'s closures (of ``road_ids``, or all of them); returns how many."""
    if road_ids is None:
        cur = conn.execute("DELETE FROM ref.road_closure WHERE source = %s", (source,))
    else:
        cur = conn.execute(
            "DELETE FROM ref.road_closure WHERE source = %s AND road_id = ANY(%s)",
            (source, [int(i) for i in road_ids]),
        )
    return cur.rowcount
