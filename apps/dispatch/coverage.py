"""Coverage: the drive-time areas of stations and the population outside them.

Travel times run over the same road graph as recommendations (forward this time: from the
stations out). One multi-source Dijkstra gives every node its time from the nearest station;
every population cell is timed at its centre, snapped to its nearest road (the gap driven at
the access speed). A cell is *covered* at T minutes when that time is at most T, so

    population inside + population outside = the grid's total

holds exactly, per district and for the city, and the map layer is exactly the union of the
covered cells. The census population of each district stands beside the grid's (the grid is
scaled to the census, so they agree up to rounding).

:func:`suggest_stations` answers "where would a new station help most": greedily, the road
node from which the most uncovered residents would be reached within T minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from apps.dispatch.plans import DispatchSettings, dispatch_settings
from apps.dispatch.routing import RoadGraph, graph_for, graph_version, snap
from gis_core.cache import PerDatabase, dataset_version
from gis_core.errors import InvalidInput, InvalidParameter

FloatArray = npt.NDArray[np.float64]
STATION_CATEGORIES = ("fire_station", "hospital", "police_station")
DEFAULT_MINUTES = (5, 10, 15)


@dataclass
class Cells:
    id: npt.NDArray[np.int64]
    district: npt.NDArray[Any]
    population: FloatArray
    geoms: npt.NDArray[Any]  # WGS84 polygons
    edge: npt.NDArray[np.int64]
    fraction: FloatArray
    access_s: FloatArray


@dataclass
class Coverage:
    category: str
    minutes: tuple[int, ...]
    stations: list[dict[str, Any]]
    seconds: FloatArray  # per cell, from the nearest station
    cells: Cells
    districts: dict[str, dict[str, Any]]  # code -> name, census population

    def table(self) -> dict[str, Any]:
        """Population inside and outside each drive-time area, per district and in total."""
        rows = []
        codes = sorted(self.districts)
        for code in [*codes, None]:
            mask = np.ones(len(self.seconds), bool) if code is None else self.cells.district == code
            pop = self.cells.population[mask]
            secs = self.seconds[mask]
            total = float(pop.sum())
            row: dict[str, Any] = {
                "district_code": code,
                "district": self.districts[code]["name"] if code else "全市 / city",
                "census_population": (
                    self.districts[code]["census"]
                    if code
                    else sum(d["census"] or 0 for d in self.districts.values())
                ),
                "grid_population": round(total),
                "cells": int(mask.sum()),
            }
            for m in self.minutes:
                inside = float(pop[secs <= m * 60].sum())
                row[f"inside_{m}min"] = round(inside)
                row[f"outside_{m}min"] = round(total - inside)
                row[f"share_inside_{m}min"] = round(inside / total, 4) if total else None
            rows.append(row)
        return {
            "category": self.category,
            "minutes": list(self.minutes),
            "stations": len(self.stations),
            "rows": rows,
        }

    def layer(self) -> dict[str, Any]:
        """The drive-time areas as GeoJSON, largest first (for drawing), with their numbers."""
        features = []
        total = float(self.cells.population.sum())
        for m in sorted(self.minutes, reverse=True):
            covered = self.seconds <= m * 60
            inside = float(self.cells.population[covered].sum())
            area = shapely.coverage_union_all(self.cells.geoms[covered]) if covered.any() else None
            if area is not None:
                area = shapely.simplify(area, 0.0005, preserve_topology=True)
            features.append(
                {
                    "type": "Feature",
                    "id": f"{self.category}-{m}min",
                    "geometry": shapely.geometry.mapping(area) if area is not None else None,
                    "properties": {
                        "kind": "drive_time_area",
                        "category": self.category,
                        "minutes": m,
                        "population_inside": round(inside),
                        "population_outside": round(total - inside),
                        "population_total": round(total),
                    },
                }
            )
        for st in self.stations:
            features.append(
                {
                    "type": "Feature",
                    "id": f"station-{st['id']}",
                    "geometry": {"type": "Point", "coordinates": [st["lon"], st["lat"]]},
                    "properties": {"kind": "station", "category": self.category, **st},
                }
            )
        return {"type": "FeatureCollection", "features": features}


def _multi_source(
    graph: RoadGraph,
    edges: npt.NDArray[np.int64],
    fractions: FloatArray,
    offsets: FloatArray,
    limit: float,
) -> FloatArray:
    """Times from the nearest of several points on edges, to every node (forward graph)."""
    heads: list[int] = []
    weights: list[float] = []
    for e, f, off in zip(edges.tolist(), fractions.tolist(), offsets.tolist(), strict=True):
        heads.append(int(graph.tgt[e]))
        weights.append(max(off + (1.0 - f) * graph.cost[e], 1e-6))
        if graph.rcost[e] >= 0:
            heads.append(int(graph.src[e]))
            weights.append(max(off + f * graph.rcost[e], 1e-6))
    base = graph.forward
    indptr = base.indptr.copy()
    indptr[-1] += len(heads)
    fwd = csr_matrix(
        (
            np.concatenate([base.data, np.asarray(weights)]),
            np.concatenate([base.indices, np.asarray(heads, dtype=base.indices.dtype)]),
            indptr,
        ),
        shape=base.shape,
    )
    dist: FloatArray = dijkstra(fwd, directed=True, indices=graph.nodes, limit=limit)
    return dist


def _cell_seconds(graph: RoadGraph, dist: FloatArray, cells: Cells) -> FloatArray:
    e, f = cells.edge, cells.fraction
    via_src = dist[graph.src[e]] + f * graph.cost[e]
    via_tgt = np.where(graph.rcost[e] >= 0, dist[graph.tgt[e]] + (1.0 - f) * graph.rcost[e], np.inf)
    out: FloatArray = np.minimum(via_src, via_tgt) + cells.access_s
    return out


def load_cells(conn: psycopg.Connection, graph: RoadGraph, s: DispatchSettings) -> Cells:
    rows = conn.execute(
        "SELECT id, district_code, population, ST_AsBinary(geom),"
        " ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM ref.population_cell ORDER BY id"
    ).fetchall()
    if not rows:
        raise InvalidInput("no population grid: load the reference dataset first")
    lon = np.array([r[4] for r in rows])
    lat = np.array([r[5] for r in rows])
    snaps = snap(graph, lon, lat)
    return Cells(
        id=np.array([r[0] for r in rows], np.int64),
        district=np.array([r[1] for r in rows], dtype=object),
        population=np.array([r[2] for r in rows], float),
        geoms=shapely.from_wkb([bytes(r[3]) for r in rows]),
        edge=snaps.edge,
        fraction=snaps.fraction,
        access_s=snaps.distance_m / (s.access_speed_kmh / 3.6),
    )


def compute(
    conn: psycopg.Connection,
    category: str = "fire_station",
    minutes: tuple[int, ...] = DEFAULT_MINUTES,
    settings: DispatchSettings | None = None,
) -> Coverage:
    """The coverage of one kind of station (``fire_station``, ``hospital``, ``police_station``)."""
    if category not in STATION_CATEGORIES:
        raise InvalidParameter(f"category: one of {', '.join(STATION_CATEGORIES)}")
    if not minutes or any(not 1 <= m <= 120 for m in minutes):
        raise InvalidParameter("minutes: one or more whole minutes between 1 and 120")
    minutes = tuple(sorted(set(minutes)))
    s = settings or dispatch_settings()
    graph = graph_for(conn)
    cells = _cells_for(conn, s)
    stations = [
        {"id": r[0], "name_zh": r[1], "district_code": r[2], "lon": r[3], "lat": r[4]}
        for r in conn.execute(
            "SELECT id, name_zh, district_code, ST_X(geom), ST_Y(geom) FROM ref.poi"
            " WHERE category = %s ORDER BY id",
            (category,),
        ).fetchall()
    ]
    districts = {
        r[0]: {"name": r[1], "census": r[2]}
        for r in conn.execute(
            "SELECT code, name_zh, population_2020 FROM ref.admin_area WHERE level = 'district'"
        ).fetchall()
    }
    limit = max(minutes) * 60.0
    if stations:
        sn = snap(graph, [st["lon"] for st in stations], [st["lat"] for st in stations])
        dist = _multi_source(
            graph, sn.edge, sn.fraction, sn.distance_m / (s.access_speed_kmh / 3.6), limit
        )
        seconds = _cell_seconds(graph, dist, cells)
    else:
        seconds = np.full(len(cells.id), np.inf)
    return Coverage(category, minutes, stations, seconds, cells, districts)


# Cells are snapped to the graph and priced at the access speed: one copy per database and
# access speed, rebuilt when the roads or the dataset change.
_cells: dict[float, PerDatabase[Cells]] = {}


def _cells_for(conn: psycopg.Connection, s: DispatchSettings) -> Cells:
    held = _cells.get(s.access_speed_kmh)
    if held is None:
        held = _cells.setdefault(
            s.access_speed_kmh,
            PerDatabase(
                lambda c: (graph_version(c), dataset_version(c)),
                lambda c: load_cells(c, graph_for(c), s),
            ),
        )
    return held.get(conn)


def suggest_stations(
    conn: psycopg.Connection,
    coverage: Coverage,
    *,
    minutes: int = 10,
    count: int = 3,
    candidates: int = 150,
) -> list[dict[str, Any]]:
    """Where new stations would bring the most uncovered residents within ``minutes``.

    Candidates are the road nodes nearest the most populous uncovered cells; each is timed
    with a Dijkstra bounded by ``minutes``, and the best is taken, greedily, ``count`` times.
    """
    if not 1 <= count <= 20:
        raise InvalidParameter("count: 1 .. 20")
    if not 1 <= minutes <= 120:
        raise InvalidParameter("minutes: 1 .. 120")
    graph = graph_for(conn)
    cells = coverage.cells
    limit = minutes * 60.0
    covered = coverage.seconds <= limit
    order = np.argsort(-np.where(covered, 0.0, cells.population))
    top = [i for i in order[: candidates * 2] if not covered[i] and cells.population[i] > 0]
    nodes: list[int] = []
    for i in top:
        e, f = int(cells.edge[i]), float(cells.fraction[i])
        node = int(graph.src[e]) if f < 0.5 else int(graph.tgt[e])
        if node not in nodes:
            nodes.append(node)
        if len(nodes) >= candidates:
            break
    if not nodes:
        return []
    reach: dict[int, npt.NDArray[np.bool_]] = {}
    for node in nodes:
        dist = dijkstra(graph.forward, directed=True, indices=node, limit=limit)
        reach[node] = _cell_seconds(graph, dist, cells) <= limit
    lon_all, lat_all = _node_lonlat(graph, np.array(nodes))
    picks: list[dict[str, Any]] = []
    uncovered_pop = np.where(covered, 0.0, cells.population)
    before = float(uncovered_pop.sum())
    for rank in range(1, count + 1):
        gains = {n: float(uncovered_pop[reach[n]].sum()) for n in nodes}
        best = max(gains, key=lambda n: (gains[n], -n))
        if gains[best] <= 0:
            break
        k = nodes.index(best)
        district = conn.execute(
            "SELECT code, name_zh FROM ref.admin_area WHERE level = 'district'"
            " AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            (float(lon_all[k]), float(lat_all[k])),
        ).fetchone()
        picks.append(
            {
                "rank": rank,
                "node_id": int(graph.node_id[best]),
                "lon": round(float(lon_all[k]), 6),
                "lat": round(float(lat_all[k]), 6),
                "district_code": district[0] if district else None,
                "district": district[1] if district else None,
                "population_newly_covered": round(gains[best]),
                "minutes": minutes,
            }
        )
        uncovered_pop = np.where(reach[best], 0.0, uncovered_pop)
    after = float(uncovered_pop.sum())
    for p in picks:
        p["uncovered_before"] = round(before)
        p["uncovered_after_all"] = round(after)
    return picks


def _node_lonlat(graph: RoadGraph, nodes: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """A node's position: the matching end of one of its edges (WGS84)."""
    lon = np.zeros(len(nodes))
    lat = np.zeros(len(nodes))
    for k, n in enumerate(nodes.tolist()):
        hit = np.flatnonzero(graph.src == n)
        if len(hit):
            lo = graph.coord_offset[hit[0]]
            lon[k], lat[k] = graph.coords[lo]
        else:
            hit = np.flatnonzero(graph.tgt == n)
            hi = graph.coord_offset[hit[0] + 1] - 1
            lon[k], lat[k] = graph.coords[hi]
    return lon, lat
