"""The road network as vehicles drive it: shortest paths, snapping, and drivable paths.

Loaded once from ``ref.road``. Geometry is kept in a local metric plane (an equirectangular
projection about the network's centre, under 1 % scale error across a city) so distances,
speeds and GPS noise are plain metres; positions go back to lon/lat only when reported.
Routing is Dijkstra on travel time (``cost_s``/``reverse_cost_s``, negative = closed) with
scipy's compiled graph routines, fast enough to plan trips for thousands of vehicles.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from gis_core.errors import InvalidInput
from gis_core.network import graph_for
from gis_core.plane import LocalPlane

__all__ = ["TOWN_CLASSES", "Path", "Projection", "RoadNetwork", "Snap", "load_roads"]

FloatArray = npt.NDArray[np.float64]

#: Street classes of towns, where traffic moves slower than the posted speed.
TOWN_CLASSES = frozenset({"arterial", "secondary", "local"})
DRIVEWAY_KMH = 15.0  # off-network legs: station yards, access tracks to a scene
CORNER_KMH = 25.0  # speed through a sharp turn


# The simulator's roads on the platform's local metric plane.
Projection = LocalPlane


@dataclass(frozen=True)
class Snap:
    """The point of an edge nearest to a location."""

    edge: int
    along_m: float  # distance from the edge's source end
    x: float
    y: float
    distance_m: float  # from the location to the edge


@dataclass
class Path:
    """A drivable polyline with per-segment speed limits, its corners and its junctions.

    ``cum`` holds the distance at each vertex; ``limit`` the speed limit (m/s) of each segment;
    ``corners`` the distances where the vehicle must slow to ``corner_v`` (the end is the last
    corner, at speed 0); ``nodes`` the distances at which road nodes are passed.
    """

    xs: list[float]
    ys: list[float]
    cum: list[float]
    limit: list[float]
    town: list[bool]
    corners: list[float] = field(default_factory=list)
    corner_v: list[float] = field(default_factory=list)
    nodes: list[tuple[float, int]] = field(default_factory=list)
    cost_s: float = 0.0

    @property
    def length(self) -> float:
        return self.cum[-1]

    def segment(self, s: float) -> int:
        return min(max(bisect.bisect_right(self.cum, s) - 1, 0), len(self.cum) - 2)

    def at(self, s: float) -> tuple[float, float, float]:
        """Position (x, y) and heading (degrees clockwise from north) at distance ``s``."""
        i = self.segment(s)
        x0, y0, x1, y1 = self.xs[i], self.ys[i], self.xs[i + 1], self.ys[i + 1]
        span = self.cum[i + 1] - self.cum[i]
        f = 0.0 if span <= 0 else min(max((s - self.cum[i]) / span, 0.0), 1.0)
        heading = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0
        return x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, heading

    def next_corner(self, s: float) -> tuple[float, float]:
        """(distance, speed m/s) of the next place to slow down at or after ``s``."""
        k = bisect.bisect_left(self.corners, s)
        if k >= len(self.corners):
            return self.length, 0.0
        return self.corners[k], self.corner_v[k]

    def slice(self, s0: float, s1: float) -> Path | None:
        """The part of the path from ``s0`` to ``s1`` (s0 < s1), limits kept."""
        builder = _PathBuilder()
        i0, i1 = self.segment(s0), self.segment(s1)
        for i in range(i0, i1 + 1):
            a, b = max(s0, self.cum[i]), min(s1, self.cum[i + 1])
            if b <= a:
                continue
            xa, ya, _ = self.at(a)
            xb, yb, _ = self.at(b)
            builder.add(np.array([xa, xb]), np.array([ya, yb]), self.limit[i] * 3.6, self.town[i])
        path = builder.build()
        if path is not None:
            path.cost_s = sum(
                (path.cum[k + 1] - path.cum[k]) / max(path.limit[k], 1.0)
                for k in range(len(path.limit))
            )
        return path

    def next_node(self, s: float) -> tuple[float, int] | None:
        """The first road node at or after ``s``."""
        k = bisect.bisect_left(self.nodes, (s, -1))
        return self.nodes[k] if k < len(self.nodes) else None


class _PathBuilder:
    """Concatenates polyline pieces, recording limits, corners and nodes."""

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.limit: list[float] = []
        self.town: list[bool] = []
        self.nodes: list[tuple[int, int]] = []  # (vertex index, node)
        self.cost = 0.0

    def add(self, xs: FloatArray, ys: FloatArray, kmh: float, town: bool) -> None:
        start = 0
        if self.xs and len(xs) and math.hypot(xs[0] - self.xs[-1], ys[0] - self.ys[-1]) < 0.01:
            start = 1  # shared vertex
        for x, y in zip(xs[start:], ys[start:], strict=True):
            if self.xs and math.hypot(x - self.xs[-1], y - self.ys[-1]) < 0.01:
                continue
            if self.xs:
                self.limit.append(kmh / 3.6)
                self.town.append(town)
            self.xs.append(float(x))
            self.ys.append(float(y))

    def extend(self, path: Path) -> None:
        """Start with a committed path, its limits as they are."""
        self.xs, self.ys = list(path.xs), list(path.ys)
        self.limit, self.town = list(path.limit), list(path.town)
        self.cost += path.cost_s

    def mark_node(self, node: int) -> None:
        if self.xs:
            self.nodes.append((len(self.xs) - 1, node))

    def build(self) -> Path | None:
        if len(self.xs) < 2:
            return None
        xs, ys = np.asarray(self.xs), np.asarray(self.ys)
        seg = np.hypot(np.diff(xs), np.diff(ys))
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        corners: list[float] = []
        corner_v: list[float] = []
        if len(xs) > 2:
            head = np.arctan2(np.diff(xs), np.diff(ys))
            turn = np.abs((np.diff(head) + np.pi) % (2 * np.pi) - np.pi)
            for i in np.flatnonzero(turn > math.radians(35)) + 1:
                # The sharper the turn, the slower: 25 km/h at 90 degrees, walking pace at 180.
                sharp = float(turn[i - 1])
                v = CORNER_KMH / 3.6 * (1.6 - sharp / math.pi) / 1.1
                corners.append(float(cum[i]))
                corner_v.append(max(v, 2.0))
        return Path(
            xs=self.xs,
            ys=self.ys,
            cum=cum.tolist(),
            limit=self.limit,
            town=self.town,
            corners=corners,
            corner_v=corner_v,
            nodes=[(float(cum[i]), node) for i, node in self.nodes],
            cost_s=self.cost,
        )


def _cut(xs: FloatArray, ys: FloatArray, cum: FloatArray, d0: float, d1: float) -> FloatArray:
    """The sub-polyline from distance d0 to d1 along a line (reversed when d1 < d0), (k, 2)."""
    lo, hi = min(d0, d1), max(d0, d1)
    inner = np.flatnonzero((cum > lo) & (cum < hi))
    a = np.array([np.interp(lo, cum, xs), np.interp(lo, cum, ys)])
    b = np.array([np.interp(hi, cum, xs), np.interp(hi, cum, ys)])
    pts = np.vstack([a, np.column_stack([xs[inner], ys[inner]]), b])
    return pts[::-1] if d1 < d0 else pts


class RoadNetwork:
    """A directed road graph with edge geometry in local metres.

    Parameters
    ----------
    source, target
        Node ids of each edge's ends (any integers).
    cost_s, reverse_cost_s
        Travel time each way; a negative value closes that direction.
    speed_kmh, road_class
        Posted speed and class of each edge.
    lines
        Each edge's geometry as lon/lat coordinate arrays ``(k, 2)``, from source to target.
    """

    def __init__(
        self,
        source: npt.ArrayLike,
        target: npt.ArrayLike,
        cost_s: npt.ArrayLike,
        reverse_cost_s: npt.ArrayLike,
        speed_kmh: npt.ArrayLike,
        road_class: list[str],
        lines: list[FloatArray],
    ) -> None:
        if not lines:
            raise ValueError("the road network is empty")
        allpts = np.vstack(lines)
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        self.bbox = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        self.proj = Projection(float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2))
        node_ids, inverse = np.unique(
            np.concatenate([np.asarray(source), np.asarray(target)]), return_inverse=True
        )
        n_edges = len(lines)
        self.node_ids = node_ids
        self.src = inverse[:n_edges]
        self.dst = inverse[n_edges:]
        self.cost = np.asarray(cost_s, float)
        self.rcost = np.asarray(reverse_cost_s, float)
        self.speed = np.asarray(speed_kmh, float)
        self.road_class = list(road_class)
        self.town = np.array([c in TOWN_CLASSES for c in self.road_class])
        self.ex: list[FloatArray] = []
        self.ey: list[FloatArray] = []
        self.ecum: list[FloatArray] = []
        for line in lines:
            x, y = self.proj.to_xy(line[:, 0], line[:, 1])
            self.ex.append(np.asarray(x, float))
            self.ey.append(np.asarray(y, float))
            self.ecum.append(np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))]))
        n = len(node_ids)
        self.node_xy = np.zeros((n, 2))
        self.node_xy[self.src] = [(x[0], y[0]) for x, y in zip(self.ex, self.ey, strict=True)]
        self.node_xy[self.dst] = [(x[-1], y[-1]) for x, y in zip(self.ex, self.ey, strict=True)]
        # One arc per ordered node pair, the quickest edge between them.
        best: dict[tuple[int, int], tuple[float, int]] = {}
        for e in range(n_edges):
            u, v = int(self.src[e]), int(self.dst[e])
            for a, b, c in ((u, v, self.cost[e]), (v, u, self.rcost[e])):
                if c >= 0 and a != b and ((a, b) not in best or c < best[(a, b)][0]):
                    best[(a, b)] = (float(c), e)
        self.arc_edge = {k: e for k, (_, e) in best.items()}
        rows = np.fromiter((k[0] for k in best), int, len(best))
        cols = np.fromiter((k[1] for k in best), int, len(best))
        # A zero weight would be read as "no arc": give instant arcs a millisecond.
        w = np.fromiter((max(c, 1e-3) for c, _ in best.values()), float, len(best))
        self.graph = csr_matrix((w, (rows, cols)), shape=(n, n))
        self.tree = shapely.STRtree(
            [
                shapely.LineString(np.column_stack([x, y]))
                for x, y in zip(self.ex, self.ey, strict=True)
            ]
        )
        self._lines = self.tree.geometries

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    # ------------------------------------------------------------------ queries

    def snap(self, x: float, y: float) -> Snap:
        """The nearest point of the network to (x, y) metres."""
        point = shapely.Point(x, y)
        e = int(self.tree.nearest(point))
        line = self._lines[e]
        along = float(shapely.line_locate_point(line, point))
        p = shapely.line_interpolate_point(line, along)
        return Snap(e, along, float(p.x), float(p.y), float(shapely.distance(point, p)))

    def distance_to_road(self, x: float, y: float) -> float:
        """Metres from (x, y) to the nearest edge."""
        return self.snap(x, y).distance_m

    def edge_length(self, e: int) -> float:
        return float(self.ecum[e][-1])

    def reachable(self, node: int, limit_s: float) -> tuple[FloatArray, npt.NDArray[np.int32]]:
        """Travel times from ``node`` to every node within ``limit_s`` (inf beyond), and the
        predecessor tree."""
        dist, pred = dijkstra(self.graph, indices=node, limit=limit_s, return_predecessors=True)
        return dist, pred

    # ------------------------------------------------------------------ paths

    def _starts(self, snap: Snap) -> list[tuple[int, float, FloatArray]]:
        """From a point on an edge to the edge's ends it may drive to: (node, cost, polyline)."""
        e = snap.edge
        length = self.edge_length(e)
        out = []
        kmh = max(self.speed[e], 5.0)
        if self.cost[e] >= 0:  # towards the target end
            pts = _cut(self.ex[e], self.ey[e], self.ecum[e], snap.along_m, length)
            out.append((int(self.dst[e]), (length - snap.along_m) / (kmh / 3.6), pts))
        if self.rcost[e] >= 0:
            pts = _cut(self.ex[e], self.ey[e], self.ecum[e], snap.along_m, 0.0)
            out.append((int(self.src[e]), snap.along_m / (kmh / 3.6), pts))
        return out

    def _ends(self, snap: Snap) -> list[tuple[int, float, FloatArray]]:
        """From the edge's ends a vehicle may arrive by to a point on it."""
        e = snap.edge
        length = self.edge_length(e)
        out = []
        kmh = max(self.speed[e], 5.0)
        if self.cost[e] >= 0:  # arriving from the source end
            pts = _cut(self.ex[e], self.ey[e], self.ecum[e], 0.0, snap.along_m)
            out.append((int(self.src[e]), snap.along_m / (kmh / 3.6), pts))
        if self.rcost[e] >= 0:
            pts = _cut(self.ex[e], self.ey[e], self.ecum[e], length, snap.along_m)
            out.append((int(self.dst[e]), (length - snap.along_m) / (kmh / 3.6), pts))
        return out

    def _node_chain(self, pred: npt.NDArray[np.int32], start: int, goal: int) -> list[int] | None:
        chain = [goal]
        while chain[-1] != start:
            p = int(pred[chain[-1]])
            if p < 0:
                return None
            chain.append(p)
        chain.reverse()
        return chain

    def _add_chain(self, builder: _PathBuilder, chain: list[int]) -> None:
        builder.mark_node(chain[0])
        for u, v in itertools.pairwise(chain):
            e = self.arc_edge[(u, v)]
            forward = int(self.src[e]) == u
            xs, ys = (self.ex[e], self.ey[e]) if forward else (self.ex[e][::-1], self.ey[e][::-1])
            builder.add(xs, ys, float(self.speed[e]), bool(self.town[e]))
            builder.mark_node(v)

    def _add_partial(self, builder: _PathBuilder, pts: FloatArray, e: int) -> None:
        builder.add(pts[:, 0], pts[:, 1], float(self.speed[e]), bool(self.town[e]))

    def route(
        self,
        start_xy: tuple[float, float],
        goal_xy: tuple[float, float],
        *,
        prefix: Path | None = None,
        from_node: int | None = None,
        driveway_max_m: float = 300.0,
    ) -> Path | None:
        """The quickest drivable path from a point (or a node) to a point.

        Parameters
        ----------
        start_xy, goal_xy
            Metres in the network's plane. An off-road start or goal is joined to the road by a
            straight driveway leg (up to ``driveway_max_m``; farther goals end at the roadside).
        prefix
            Path already committed to (the rest of the current edge), ending at ``from_node``.
        from_node
            Start at this node instead of snapping ``start_xy``.

        Returns
        -------
        Path or None
            None when the goal cannot be reached.
        """
        builder = _PathBuilder()
        if prefix is not None:
            builder.extend(prefix)
        starts: list[tuple[int, float, FloatArray | None, int]] = []
        s_snap: Snap | None = None
        if from_node is not None:
            starts.append((from_node, 0.0, None, -1))
        else:
            s_snap = self.snap(*start_xy)
            starts += [(n, c, pts, s_snap.edge) for n, c, pts in self._starts(s_snap)]
        g_snap = self.snap(*goal_xy)
        ends = self._ends(g_snap)
        if not starts or not ends:
            return None
        same_edge = s_snap is not None and s_snap.edge == g_snap.edge
        dist, pred = dijkstra(self.graph, indices=[s[0] for s in starts], return_predecessors=True)
        best: tuple[float, int, int] | None = None
        for i, (_, c0, _, _) in enumerate(starts):
            for j, (end_node, c1, _) in enumerate(ends):
                total = c0 + float(dist[i, end_node]) + c1
                if math.isfinite(total) and (best is None or total < best[0]):
                    best = (total, i, j)
        direct = None
        if same_edge and s_snap is not None:
            e = s_snap.edge
            forward = g_snap.along_m >= s_snap.along_m
            if (self.cost[e] if forward else self.rcost[e]) >= 0:
                direct = abs(g_snap.along_m - s_snap.along_m) / (max(self.speed[e], 5.0) / 3.6)
        if best is None and direct is None:
            return None
        if s_snap is not None and s_snap.distance_m > 1.0:
            builder.add(
                np.array([start_xy[0], s_snap.x]),
                np.array([start_xy[1], s_snap.y]),
                DRIVEWAY_KMH,
                True,
            )
        if direct is not None and s_snap is not None and (best is None or direct <= best[0]):
            e = g_snap.edge
            pts = _cut(self.ex[e], self.ey[e], self.ecum[e], s_snap.along_m, g_snap.along_m)
            self._add_partial(builder, pts, e)
            builder.cost += direct
        else:
            assert best is not None
            total, i, j = best
            node, _, pts0, e0 = starts[i]
            end_node, _, pts1 = ends[j]
            if pts0 is not None:
                self._add_partial(builder, pts0, e0)
            chain = self._node_chain(pred[i], node, end_node)
            if chain is None:
                return None
            self._add_chain(builder, chain)
            self._add_partial(builder, pts1, g_snap.edge)
            builder.cost += total
        off = g_snap.distance_m
        if 1.0 < off <= driveway_max_m:
            builder.add(
                np.array([g_snap.x, goal_xy[0]]),
                np.array([g_snap.y, goal_xy[1]]),
                DRIVEWAY_KMH,
                True,
            )
            builder.cost += off / (DRIVEWAY_KMH / 3.6)
        return builder.build()

    def path_to_node(
        self,
        start_xy: tuple[float, float],
        pred: Any,
        origin: int,
        goal: int,
        prefix: Path | None = None,
    ) -> Path | None:
        """A path along a predecessor tree (from :meth:`reachable`) from ``origin`` to ``goal``,
        after an optional committed ``prefix``."""
        chain = self._node_chain(pred, origin, goal)
        if chain is None or len(chain) < 2:
            return None
        builder = _PathBuilder()
        if prefix is not None:
            builder.extend(prefix)
        else:
            ox, oy = self.node_xy[origin]
            if math.hypot(ox - start_xy[0], oy - start_xy[1]) > 1.0:
                builder.add(
                    np.array([start_xy[0], ox]), np.array([start_xy[1], oy]), DRIVEWAY_KMH, True
                )
        self._add_chain(builder, chain)
        return builder.build()

    def nearest_node(self, x: float, y: float) -> int:
        """The road node nearest to (x, y)."""
        d = np.hypot(self.node_xy[:, 0] - x, self.node_xy[:, 1] - y)
        return int(np.argmin(d))


def load_roads(conn: psycopg.Connection) -> RoadNetwork | None:
    """The simulator's view of the platform's road graph (gis_core.network): the same edges,
    closures and slowdowns in force (None when the network is empty)."""
    try:
        graph = graph_for(conn)
    except InvalidInput:
        return None
    closed = graph.closed
    slow = np.where(closed, 1.0, graph.speed_factor)
    offsets = graph.coord_offset
    lines = [graph.coords[offsets[i] : offsets[i + 1]] for i in range(graph.edges)]
    return RoadNetwork(
        graph.node_id[graph.src],
        graph.node_id[graph.tgt],
        np.where(closed, -1.0, graph.cost / slow),
        np.where(closed | (graph.rcost < 0), -1.0, graph.rcost / slow),
        graph.speed_kmh * slow,
        [str(c) for c in graph.road_class],
        lines,
    )
