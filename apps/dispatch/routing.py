"""Recommendation of units by road travel time.

How a recommendation is made
----------------------------
1. *Straight-line prefilter*: for each unit type the incident needs, the nearest available
   units of the dispatcher's departments by straight-line distance (a KNN query on the live
   positions), plus every available unit without a usable live fix (placed at its station, or
   at its last good fix after a GPS jump), which are few.
2. *Snapping*: positions and the incident are snapped to the nearest road edge (edge id and
   fraction along it); the gap is driven at ``access_speed_kmh`` and a unit farther than
   ``off_network_m`` from any road is flagged ``off_network`` — ranked, never hidden.
3. *Travel times*: one reverse Dijkstra from the incident over the road graph (directed; a
   negative ``reverse_cost_s`` closes the reverse direction) gives every node's time to the
   scene; a unit's ETA is the better of leaving its edge forwards or backwards. The graph is
   ``ref.road`` held in memory (``RoadGraph``) — an accelerator whose travel times equal
   pgRouting's ``pgr_withPointsCost`` on the same edges and points (the tests check it, and
   ``engine="pgrouting"`` computes the same ranking in the database).
4. *Exactness*: a unit at straight-line distance ``d`` cannot arrive sooner than
   ``d / v_max`` (``v_max`` the fastest edge of the graph). If the k-th best ETA of a type is
   above the bound of the nearest unit the prefilter left out, every unit within
   ``eta_k * v_max`` is fetched and timed too, so the ranking is the brute-force one.

``naive_etas`` is the comparator of the benchmark: one pgRouting query per candidate, the
whole graph each time, snapping in SQL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely import ops as shapely_ops

from apps.dispatch.plans import DispatchSettings, dispatch_settings
from gis_core.errors import InvalidParameter
from gis_core.network import (
    EPS_COST,
    RoadGraph,
    Snaps,
    build_graph,
    graph_for,
    graph_version,
    load_graph,
    snap,
    to_metric,
)

# The road graph and snapping are the platform's (gis_core.network); dispatch routes on them.
__all__ = [
    "RoadGraph",
    "Snaps",
    "build_graph",
    "graph_for",
    "graph_version",
    "load_graph",
    "snap",
    "to_metric",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Fewer metres than any degree of latitude or (at the equator) longitude holds, with room for
# the scale factor of the metric projection.
M_PER_DEG_FLOOR = 110_000.0


# --------------------------------------------------------------------------- travel times


@dataclass
class Field:
    """Every node's travel time to one scene, and the way there."""

    scene: Snaps  # one snapped position
    dist: FloatArray  # node index -> seconds to the scene (inf beyond the limit)
    pred: npt.NDArray[np.int32]  # next node toward the scene; the virtual scene node is n
    limit: float
    reverse: csr_matrix


def field_to(graph: RoadGraph, scene: Snaps, limit: float = np.inf) -> Field:
    """Reverse Dijkstra from a snapped scene, over arcs into the scene's edge."""
    e = int(scene.edge[0])
    g = float(scene.fraction[0])
    n = graph.nodes
    # The scene is a virtual node on its edge: reached from the source going forwards, and
    # from the target going backwards where the edge is open that way.
    heads, weights = [int(graph.src[e])], [max(g * graph.cost[e], EPS_COST)]
    if graph.rcost[e] >= 0:
        heads.append(int(graph.tgt[e]))
        weights.append(max((1.0 - g) * graph.rcost[e], EPS_COST))
    base = graph.reverse
    indptr = base.indptr.copy()
    indptr[-1] += len(heads)
    reverse = csr_matrix(
        (
            np.concatenate([base.data, weights]),
            np.concatenate([base.indices, np.asarray(heads, np.int32)]),
            indptr,
        ),
        shape=base.shape,
    )
    dist, pred = dijkstra(reverse, directed=True, indices=n, return_predecessors=True, limit=limit)
    return Field(scene, dist, pred, limit, reverse)


def etas(graph: RoadGraph, fld: Field, units: Snaps) -> tuple[FloatArray, IntArray]:
    """Network seconds from snapped units to the scene, and how each leaves its edge.

    Returns
    -------
    seconds
        inf where the scene is unreachable (or beyond the field's limit).
    way
        0 forwards to the edge's target, 1 backwards to its source, 2 along the scene's edge.
    """
    e, f = units.edge, units.fraction
    d = fld.dist
    fwd = (1.0 - f) * graph.cost[e] + d[graph.tgt[e]]
    back_open = graph.rcost[e] >= 0
    bwd = np.where(back_open, f * graph.rcost[e] + d[graph.src[e]], np.inf)
    se, g = int(fld.scene.edge[0]), float(fld.scene.fraction[0])
    same = e == se
    direct = np.full(len(e), np.inf)
    ahead = same & (f <= g)
    direct[ahead] = (g - f[ahead]) * graph.cost[se]
    behind = same & (f > g) & (graph.rcost[se] >= 0)
    direct[behind] = (f[behind] - g) * graph.rcost[se]
    stacked = np.vstack([fwd, bwd, direct])
    way = np.argmin(stacked, axis=0)
    seconds = stacked[way, np.arange(len(e))]
    seconds = np.where(seconds <= fld.limit, seconds, np.inf)
    return seconds, way.astype(np.int64)


def route(
    graph: RoadGraph, fld: Field, edge: int, fraction: float, way: int
) -> tuple[list[list[float]], float, list[int]]:
    """The route from a unit at ``fraction`` along edge index ``edge`` to the scene, leaving
    its edge by ``way`` (see :func:`etas`): WGS84 coordinates, metres, edge ids in order."""
    e, f = edge, fraction
    se, g = int(fld.scene.edge[0]), float(fld.scene.fraction[0])
    if way == 2:
        return (
            _join([_piece(graph, e, f, g)]),
            float(abs(g - f) * graph.length[e]),
            [int(graph.edge_id[e])],
        )
    first = _piece(graph, e, f, 1.0) if way == 0 else _piece(graph, e, f, 0.0)
    metres = (1.0 - f) * graph.length[e] if way == 0 else f * graph.length[e]
    node = int(graph.tgt[e]) if way == 0 else int(graph.src[e])
    # Walk the shortest-path tree toward the scene (the virtual node n).
    pred = fld.pred
    scene_node = graph.nodes
    path: list[int] = []
    forwards: list[bool] = []
    for _ in range(graph.nodes):
        nxt = int(pred[node])
        if nxt == scene_node or nxt < 0:
            break
        arc = graph.arc_lookup[node * (scene_node + 1) + nxt]
        path.append(arc)
        forwards.append(int(graph.src[arc]) == node)
        node = nxt
    if node == int(graph.src[se]) and node != int(graph.tgt[se]):
        last = _piece(graph, se, 0.0, g)
        metres += g * graph.length[se]
    elif node == int(graph.tgt[se]) and node != int(graph.src[se]):
        last = _piece(graph, se, 1.0, g)
        metres += (1.0 - g) * graph.length[se]
    else:  # a loop edge: whichever end is cheaper
        ahead = g * graph.cost[se] <= (1 - g) * (
            graph.rcost[se] if graph.rcost[se] >= 0 else np.inf
        )
        last = _piece(graph, se, 0.0 if ahead else 1.0, g)
        metres += (g if ahead else 1.0 - g) * graph.length[se]
    middle: list[Any] = []
    if path:
        idx = np.asarray(path, np.int64)
        metres += float(graph.length[idx].sum())
        for arc, fw in zip(path, forwards, strict=True):
            lo, hi = graph.coord_offset[arc], graph.coord_offset[arc + 1]
            seg = graph.coords[lo:hi]
            middle.append(seg if fw else seg[::-1])
    coords = (
        np.concatenate([np.asarray(first), *middle, np.asarray(last)])
        if middle
        else (np.concatenate([np.asarray(first), np.asarray(last)]))
    )
    keep = np.ones(len(coords), bool)
    keep[1:] = np.any(coords[1:] != coords[:-1], axis=1)
    out = coords[keep].tolist()
    if len(out) == 1:
        out.append(out[0])
    edges = [int(graph.edge_id[e]), *(int(graph.edge_id[a]) for a in path)]
    if edges[-1] != int(graph.edge_id[se]):
        edges.append(int(graph.edge_id[se]))
    return out, float(metres), edges


def _piece(graph: RoadGraph, e: int, a: float, b: float) -> list[list[float]]:
    """Coordinates of edge ``e`` from fraction ``a`` to ``b`` (reversed when b < a)."""
    line = graph.geoms_wgs[e]
    lo, hi = min(a, b), max(a, b)
    if hi - lo <= 1e-12:
        point = shapely.line_interpolate_point(line, lo, normalized=True)
        return [[point.x, point.y]]
    part = shapely_ops.substring(line, lo, hi, normalized=True)
    coords = shapely.get_coordinates(part).tolist()
    return coords[::-1] if b < a else coords


def _join(pieces: Iterable[list[list[float]]]) -> list[list[float]]:
    out: list[list[float]] = []
    for piece in pieces:
        for c in piece:
            if not out or out[-1] != c:
                out.append(c)
    if len(out) == 1:
        out.append(out[0])
    return out


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    unit_id: str
    call_sign: str
    unit_type: str
    department_code: str
    lon: float
    lat: float
    position_source: str  # gps, station, last_good
    position_ts: datetime | None
    online: bool | None
    eta_s: float = math.inf
    way: int = 0
    straight_m: float = 0.0
    flags: list[str] = field(default_factory=list)
    snap_edge: int = -1
    snap_fraction: float = 0.0
    snap_m: float = 0.0


KNN_SQL = """
SELECT u.id, u.call_sign, u.unit_type, u.department_code, ST_X(s.geom), ST_Y(s.geom), s.ts,
       s.online, s.geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS deg
FROM iot.device_state s
JOIN ops.unit u ON u.device_id = s.device_id
WHERE u.unit_type = %(unit_type)s AND u.status = 'available' AND s.geom IS NOT NULL
  AND (%(depts)s::text[] IS NULL OR u.department_code = ANY(%(depts)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM ops.gps_suspect g WHERE g.unit_id = u.id)
  AND NOT (u.id = ANY(%(exclude)s::text[]))
  AND (%(radius)s::float8 IS NULL
       OR ST_DWithin(s.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(radius)s))
ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
LIMIT %(limit)s
"""

# Available units without a usable live fix: no device or no position yet (their ids come
# from a list refreshed every few seconds: scanning every unit per request would cost more
# than the rest of it), or a GPS jump under suspicion (always fresh: then the last good fix).
# They are few, and always all considered.
UNPLACED_SQL = """
WITH ids AS (
    SELECT unnest(%(no_fix)s::text[]) AS id
    UNION
    SELECT unit_id FROM ops.gps_suspect
)
SELECT u.id, u.call_sign, u.unit_type, u.department_code,
       ST_X(coalesce(g.good_geom, p.geom)), ST_Y(coalesce(g.good_geom, p.geom)),
       CASE WHEN g.good_geom IS NOT NULL THEN g.good_ts END,
       s.online,
       CASE WHEN g.unit_id IS NOT NULL AND g.good_geom IS NOT NULL THEN 'last_good'
            ELSE 'station' END,
       g.unit_id IS NOT NULL
FROM ids
JOIN ops.unit u ON u.id = ids.id
LEFT JOIN iot.device_state s ON s.device_id = u.device_id
LEFT JOIN ops.gps_suspect g ON g.unit_id = u.id
LEFT JOIN ref.poi p ON p.id = u.station_poi_id
WHERE u.unit_type = ANY(%(types)s::text[]) AND u.status = 'available'
  AND (%(depts)s::text[] IS NULL OR u.department_code = ANY(%(depts)s::text[]))
  AND (s.geom IS NULL OR g.unit_id IS NOT NULL)
"""

NO_FIX_SQL = """
SELECT u.id FROM ops.unit u
LEFT JOIN iot.device_state s ON s.device_id = u.device_id
WHERE s.geom IS NULL
"""
NO_FIX_TTL_S = 5.0
_no_fix: dict[str, tuple[float, list[str]]] = {}


def _no_fix_ids(conn: psycopg.Connection) -> list[str]:
    """Units without any live position, refreshed every ``NO_FIX_TTL_S`` seconds."""
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    cached = _no_fix.get(key)
    if cached is not None and time.monotonic() - cached[0] < NO_FIX_TTL_S:
        return cached[1]
    ids = [r[0] for r in conn.execute(NO_FIX_SQL).fetchall()]
    _no_fix[key] = (time.monotonic(), ids)
    return ids


def metres_at_least(deg: float, lat: float) -> float:
    """A lower bound of the metres between a point at latitude ``lat`` and any point at
    least ``deg`` degrees (planar lon/lat distance) away from it."""
    return deg * M_PER_DEG_FLOOR * math.cos(math.radians(min(abs(lat) + deg, 89.0)))


def degrees_covering(metres: float, lat: float) -> float:
    """A planar lon/lat radius that holds every point within ``metres`` of the point."""
    deg = metres / M_PER_DEG_FLOOR / math.cos(math.radians(abs(lat)))
    for _ in range(3):
        deg = metres / (M_PER_DEG_FLOOR * math.cos(math.radians(min(abs(lat) + deg, 89.0))))
    return deg * 1.001


def _fetch_knn(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    types: Sequence[str],
    depts: list[str] | None,
    limit: int,
    exclude: list[str],
    radius_deg: dict[str, float] | None = None,
    unplaced: dict[str, Any] | None = None,
) -> dict[str, list[tuple[Any, ...]]]:
    """The straight-line nearest candidates per type (and, given its parameters, the units
    without a usable fix under the key ``""``), in one round trip (pipelined)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with conn.pipeline():
        cursors = []
        if unplaced is not None:
            cursors.append(("", conn.cursor().execute(UNPLACED_SQL, unplaced)))
        for t in types:
            params = {
                "lon": lon,
                "lat": lat,
                "unit_type": t,
                "depts": depts,
                "exclude": exclude,
                "radius": None if radius_deg is None else radius_deg[t],
                "limit": limit,
            }
            # Unprepared: each type gets a plan for its own selectivity (rare hazmat units are
            # found through the type index, common patrol cars through the KNN index).
            cursors.append((t, conn.cursor().execute(KNN_SQL, params, prepare=False)))
    for t, cur in cursors:
        out[t] = cur.fetchall()
    return out


def _candidate(row: Sequence[Any], source: str = "gps") -> Candidate:
    return Candidate(
        unit_id=row[0],
        call_sign=row[1],
        unit_type=row[2],
        department_code=row[3],
        lon=float(row[4]) if row[4] is not None else math.nan,
        lat=float(row[5]) if row[5] is not None else math.nan,
        position_source=source,
        position_ts=row[6],
        online=row[7],
    )


# --------------------------------------------------------------------------- recommendation


@dataclass
class Recommendation:
    scene: dict[str, Any]
    by_type: dict[str, list[Candidate]]
    routes: dict[str, dict[str, Any]]
    engine: str
    timings_ms: dict[str, float]
    considered: int
    exact_rounds: int


def time_candidates(
    graph: RoadGraph,
    fld: Field,
    cands: list[Candidate],
    settings: DispatchSettings,
    scene_access_s: float,
) -> Snaps:
    """Snap and time candidates in place (ETA includes both access legs)."""
    placed = [c for c in cands if not math.isnan(c.lon)]
    snaps = snap(graph, [c.lon for c in placed], [c.lat for c in placed])
    if not placed:
        return snaps
    seconds, way = etas(graph, fld, snaps)
    access_speed = settings.access_speed_kmh / 3.6
    dx = snaps.x - fld.scene.x[0]
    dy = snaps.y - fld.scene.y[0]
    straight = np.hypot(dx, dy)
    for i, c in enumerate(placed):
        c.flags = [f for f in c.flags if f not in ("off_network", "unreachable")]
        c.snap_edge = int(snaps.edge[i])
        c.snap_fraction = float(snaps.fraction[i])
        c.snap_m = float(snaps.distance_m[i])
        c.straight_m = float(straight[i])
        c.way = int(way[i])
        c.eta_s = float(seconds[i] + snaps.distance_m[i] / access_speed + scene_access_s)
        if c.snap_m > settings.off_network_m:
            c.flags.append("off_network")
        if not math.isfinite(seconds[i]):
            c.flags.append("unreachable")
    return snaps


def reach_radius(
    graph: RoadGraph, fld: Field, seconds: float, scene_x: float, scene_y: float, access: float
) -> float:
    """Metres from the scene beyond which no unit can arrive within ``seconds``.

    A unit arriving in time leaves its edge through a node ``n`` with ``d[n] <= seconds``,
    after at most ``min(edge length, speed * (seconds - d[n]))`` along the edge, before which
    it drives at most ``access * (the time left)`` to the road; or it is on the scene's edge.
    The largest such distance over the settled nodes bounds every unit that could matter —
    far tighter than ``seconds * v_max``.
    """
    d = fld.dist[: graph.nodes]  # the last entry is the scene itself
    idx = np.flatnonzero(d <= seconds)
    left = seconds - d[idx]
    speed = graph.node_speed[idx]
    along = np.minimum(graph.node_reach_m[idx], speed * left)
    off_road = access * np.maximum(left - along / speed, 0.0)
    from_scene = np.hypot(graph.node_x[idx] - scene_x, graph.node_y[idx] - scene_y)
    same_edge = graph.length[int(fld.scene.edge[0])] + fld.scene.distance_m[0] + access * seconds
    if len(idx) == 0:
        return float(same_edge)
    return float(max(same_edge, float((from_scene + along + off_road).max())))


def _rank_key(c: Candidate) -> tuple[float, str]:
    return (c.eta_s if math.isfinite(c.eta_s) else math.inf, c.unit_id)


def recommend(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    types: Sequence[str],
    *,
    k: int = 5,
    departments: frozenset[str] | None = None,
    engine: str = "graph",
    with_routes: bool = True,
    settings: DispatchSettings | None = None,
    now: datetime | None = None,
    prefilter: int | None = None,
) -> Recommendation:
    """The k best available units of each type for a scene, by road travel time.

    Parameters
    ----------
    types
        Unit types wanted (the incident's response plan).
    departments
        Departments whose units may be considered; None for all.
    engine
        ``graph`` (in-memory Dijkstra over ``ref.road``) or ``pgrouting`` (the same candidates
        timed by one ``pgr_withPointsCost`` query in the database).
    prefilter
        Straight-line nearest units fetched per type first (a tuning knob: the result is the
        same, only the work differs).
    """
    if engine not in ("graph", "pgrouting"):
        raise InvalidParameter("engine: graph or pgrouting")
    s = settings or dispatch_settings()
    now = now or datetime.now(UTC)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    graph = graph_for(conn)
    timings["graph"] = (time.perf_counter() - t0) * 1000
    scene = snap(graph, [lon], [lat])
    access_speed = s.access_speed_kmh / 3.6
    scene_access_s = float(scene.distance_m[0]) / access_speed
    depts = sorted(departments) if departments is not None else None
    types = list(dict.fromkeys(types))
    per_type = prefilter or max(3 * k, 12)

    t1 = time.perf_counter()
    no_fix = _no_fix_ids(conn)
    rows = _fetch_knn(
        conn,
        lon,
        lat,
        types,
        depts,
        per_type,
        [],
        unplaced={"no_fix": no_fix, "types": types, "depts": depts},
    )
    unplaced = rows.pop("")
    timings["candidates"] = (time.perf_counter() - t1) * 1000

    cands: dict[str, list[Candidate]] = {t: [_candidate(r) for r in rows[t]] for t in types}
    # Degree distance of the nearest unit each type's prefilter left out, when it left any.
    cut_deg = {t: float(rows[t][-1][8]) if len(rows[t]) >= per_type else math.inf for t in types}
    for r in unplaced:
        c = _candidate(r, source=r[8])
        if r[9]:
            c.flags.append("gps_jump")
        if math.isnan(c.lon):
            c.flags.append("no_position")
        cands.setdefault(c.unit_type, []).append(c)

    t2 = time.perf_counter()
    # A first guess of how far the search must go: the k-th nearest of each type at a slow
    # town speed, and some. Too short a guess costs a second, unlimited search; too long one
    # only time.
    kth_deg = [float(rows[t][k - 1][8]) if len(rows[t]) >= k else math.inf for t in types]
    guess_m = max(kth_deg, default=math.inf) * M_PER_DEG_FLOOR
    limit = guess_m / 6.0 + 600.0 if math.isfinite(guess_m) else np.inf
    fld = field_to(graph, scene, limit)
    everyone = [c for t in types for c in cands.get(t, [])]
    time_candidates(graph, fld, everyone, s, scene_access_s)
    rounds = 1

    def kth_eta(t: str) -> float:
        finite = sorted(c.eta_s for c in cands.get(t, []) if math.isfinite(c.eta_s))
        return finite[k - 1] if len(finite) >= k else math.inf

    # Beyond the limit everything is inf: widen once if a type has too few timed units, or
    # its k-th ETA lies beyond the limit (nodes past it are not settled, and a unit past it
    # might still beat that ETA).
    if any(kth_eta(t) > fld.limit for t in types):
        fld = field_to(graph, scene, np.inf)
        time_candidates(graph, fld, everyone, s, scene_access_s)
    # Exactness: a type whose k-th ETA no unit beyond the prefilter's cut can beat is done;
    # otherwise every unit of it within reach of that ETA is fetched and timed.
    more: dict[str, float] = {}
    for t in types:
        if not math.isfinite(cut_deg[t]):
            continue
        kth = kth_eta(t)
        if not math.isfinite(kth):
            more[t] = 360.0  # too few reachable: every unit of the type
            continue
        radius = reach_radius(graph, fld, kth, float(scene.x[0]), float(scene.y[0]), access_speed)
        if metres_at_least(cut_deg[t], lat) <= radius:
            more[t] = degrees_covering(radius, lat)
    if more:
        rounds = 2
        t3 = time.perf_counter()
        seen = [c.unit_id for t in types for c in cands.get(t, [])]
        extra_rows = _fetch_knn(conn, lon, lat, list(more), depts, 1_000_000, seen, radius_deg=more)
        timings["candidates"] += (time.perf_counter() - t3) * 1000
        extra = [_candidate(r) for t in more for r in extra_rows[t]]
        if any(v >= 360.0 for v in more.values()) and not math.isinf(fld.limit):
            fld = field_to(graph, scene, np.inf)
            time_candidates(graph, fld, everyone, s, scene_access_s)
        time_candidates(graph, fld, extra, s, scene_access_s)
        for c in extra:
            cands[c.unit_type].append(c)
    if engine == "pgrouting":
        _pgrouting_times(
            conn, graph, fld, [c for t in types for c in cands.get(t, [])], s, scene_access_s
        )
    timings["routing"] = (time.perf_counter() - t2) * 1000

    t4 = time.perf_counter()
    by_type: dict[str, list[Candidate]] = {}
    for t in types:
        ranked = sorted(cands.get(t, []), key=_rank_key)[:k]
        for c in ranked:
            _position_flags(c, now, s)
        by_type[t] = ranked
    routes: dict[str, dict[str, Any]] = {}
    if with_routes:
        for ranked in by_type.values():
            for c in ranked:
                if c.snap_edge < 0 or not math.isfinite(c.eta_s) or "unreachable" in c.flags:
                    continue
                coords, metres, _ = route(graph, fld, c.snap_edge, c.snap_fraction, c.way)
                routes[c.unit_id] = {
                    "distance_m": round(metres, 1),
                    "geometry": {"type": "LineString", "coordinates": coords},
                }
    timings["routes"] = (time.perf_counter() - t4) * 1000
    timings["total"] = (time.perf_counter() - t0) * 1000
    scene_info = {
        "lon": lon,
        "lat": lat,
        "edge_id": int(graph.edge_id[scene.edge[0]]),
        "fraction": round(float(scene.fraction[0]), 6),
        "snap_distance_m": round(float(scene.distance_m[0]), 1),
        "off_network": bool(scene.distance_m[0] > s.off_network_m),
    }
    return Recommendation(
        scene=scene_info,
        by_type=by_type,
        routes=routes,
        engine=engine,
        timings_ms={k_: round(v, 3) for k_, v in timings.items()},
        considered=sum(len(v) for v in cands.values()),
        exact_rounds=rounds,
    )


def _position_flags(c: Candidate, now: datetime, s: DispatchSettings) -> None:
    if c.position_source == "station" and "no_position" not in c.flags:
        c.flags.append("at_station_no_fix")
    if c.position_ts is not None and (now - c.position_ts).total_seconds() > s.stale_position_s:
        c.flags.append("stale_position")
    if c.online is False:
        c.flags.append("offline")


# --------------------------------------------------------------------------- pgRouting


EDGES_SQL = (
    "SELECT id, source, target, cost_s AS cost, reverse_cost_s AS reverse_cost FROM ref.road"
    " WHERE source IS NOT NULL AND target IS NOT NULL"
)

# Many units to one scene in one query: the units are points -1..-n, the scene is point 0...
# pgRouting wants positive pids, so the scene is pid n+1.
MANY_TO_ONE_SQL = """
SELECT -start_pid, agg_cost
FROM pgr_withPointsCost(
    %(edges)s,
    %(points)s,
    %(starts)s::bigint[], %(scene)s::bigint,
    directed => true, driving_side => 'b')
"""


def _points_sql(rows: Sequence[tuple[int, int, float]]) -> str:
    values = ", ".join(f"({pid}, {edge}, {fraction!r})" for pid, edge, fraction in rows)
    return (
        "SELECT pid, edge_id, fraction, 'b'::char AS side"
        f" FROM (VALUES {values}) AS p(pid, edge_id, fraction)"
    )


def pgrouting_seconds(
    conn: psycopg.Connection,
    graph: RoadGraph,
    units: Snaps,
    scene: Snaps,
    edges_sql: str = EDGES_SQL,
) -> FloatArray:
    """Network seconds from snapped units to a snapped scene, by ``pgr_withPointsCost``."""
    n = len(units.edge)
    # pgRouting turns a point at fraction 0 or 1 into the vertex itself (and reports it by
    # the vertex id): keep points a hair inside their edge, a difference far below a second.
    inner = np.clip(units.fraction, 1e-9, 1 - 1e-9)
    rows = [(i + 1, int(graph.edge_id[units.edge[i]]), float(inner[i])) for i in range(n)]
    scene_pid = n + 1
    scene_fraction = float(np.clip(scene.fraction[0], 1e-9, 1 - 1e-9))
    rows.append((scene_pid, int(graph.edge_id[scene.edge[0]]), scene_fraction))
    result = conn.execute(
        MANY_TO_ONE_SQL,
        {
            "edges": edges_sql,
            "points": _points_sql(rows),
            "starts": [-(i + 1) for i in range(n)],
            "scene": -scene_pid,
        },
    ).fetchall()
    out = np.full(n, np.inf)
    for pid, cost in result:
        out[int(pid) - 1] = float(cost)
    # pgRouting leaves out a point at the very spot of the scene (cost 0).
    same = (units.edge == scene.edge[0]) & np.isclose(units.fraction, scene.fraction[0])
    out[same] = 0.0
    return out


def _pgrouting_times(
    conn: psycopg.Connection,
    graph: RoadGraph,
    fld: Field,
    cands: list[Candidate],
    s: DispatchSettings,
    scene_access_s: float,
) -> None:
    placed = [c for c in cands if c.snap_edge >= 0]
    if not placed:
        return
    snaps = Snaps(
        np.array([c.snap_edge for c in placed]),
        np.array([c.snap_fraction for c in placed]),
        np.array([c.snap_m for c in placed]),
        np.zeros(len(placed)),
        np.zeros(len(placed)),
    )
    seconds = pgrouting_seconds(conn, graph, snaps, fld.scene)
    access_speed = s.access_speed_kmh / 3.6
    for c, sec in zip(placed, seconds, strict=True):
        c.eta_s = float(sec + c.snap_m / access_speed + scene_access_s)
        if math.isfinite(sec) and "unreachable" in c.flags:
            c.flags.remove("unreachable")


# The comparator: one unit, one query, the whole graph read each time, snapping in SQL.
NAIVE_SQL = """
WITH unit_snap AS (
    SELECT r.id, ST_LineLocatePoint(r.geom, p.g) AS fraction
    FROM (SELECT ST_SetSRID(ST_MakePoint(%(ulon)s, %(ulat)s), 4326) AS g) p
    CROSS JOIN LATERAL (SELECT id, geom FROM ref.road ORDER BY geom <-> p.g LIMIT 1) r
), scene_snap AS (
    SELECT r.id, ST_LineLocatePoint(r.geom, p.g) AS fraction
    FROM (SELECT ST_SetSRID(ST_MakePoint(%(slon)s, %(slat)s), 4326) AS g) p
    CROSS JOIN LATERAL (SELECT id, geom FROM ref.road ORDER BY geom <-> p.g LIMIT 1) r
)
SELECT agg_cost FROM pgr_withPointsCost(
    %(edges)s,
    format('SELECT 1 AS pid, %%s::bigint AS edge_id, %%s::float8 AS fraction, ''b''::char AS side'
           ' UNION ALL SELECT 2, %%s::bigint, %%s::float8, ''b''::char',
           (SELECT id FROM unit_snap), (SELECT fraction FROM unit_snap),
           (SELECT id FROM scene_snap), (SELECT fraction FROM scene_snap)),
    -1, -2, directed => true, driving_side => 'b')
"""


def naive_etas(
    conn: psycopg.Connection, lon: float, lat: float, units: Sequence[tuple[float, float]]
) -> list[float]:
    """Network seconds from each unit position to the scene, one pgRouting query per unit."""
    out = []
    for ulon, ulat in units:
        row = conn.execute(
            NAIVE_SQL,
            {"ulon": ulon, "ulat": ulat, "slon": lon, "slat": lat, "edges": EDGES_SQL},
        ).fetchone()
        out.append(float(row[0]) if row else math.inf)
    return out


def unit_etas(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    unit_ids: Sequence[str],
    settings: DispatchSettings | None = None,
) -> dict[str, float]:
    """ETA seconds of named units to a scene (their live fix, else their station)."""
    s = settings or dispatch_settings()
    rows = conn.execute(
        """
        SELECT u.id, ST_X(coalesce(g.good_geom, s.geom, p.geom)),
               ST_Y(coalesce(g.good_geom, s.geom, p.geom))
        FROM ops.unit u
        LEFT JOIN iot.device_state s ON s.device_id = u.device_id
        LEFT JOIN ops.gps_suspect g ON g.unit_id = u.id
        LEFT JOIN ref.poi p ON p.id = u.station_poi_id
        WHERE u.id = ANY(%s)
        """,
        (list(unit_ids),),
    ).fetchall()
    placed = [r for r in rows if r[1] is not None]
    if not placed:
        return {}
    graph = graph_for(conn)
    scene = snap(graph, [lon], [lat])
    fld = field_to(graph, scene)
    units = snap(graph, [r[1] for r in placed], [r[2] for r in placed])
    seconds, _ = etas(graph, fld, units)
    access = s.access_speed_kmh / 3.6
    out = {}
    for i, r in enumerate(placed):
        if math.isfinite(seconds[i]):
            total = seconds[i] + (units.distance_m[i] + scene.distance_m[0]) / access
            out[r[0]] = round(float(total), 1)
    return out
