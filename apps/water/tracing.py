"""Upstream tracing on the city's rivers: the network from ``ref.river`` turned downhill by the
reference DEM, the outfalls of ``env.pollution_source`` with their recent load, and the
ranked trace from a water-quality station.

A tributary usually ends on the middle of the river it joins, not at one of its ends; each
oriented line is cut where another line's end touches it, so the confluences are nodes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from shapely import LineString
from shapely.ops import substring

from apps.water import service
from apps.water.dem import elevation_at
from apps.water.trace import (
    OffNetworkError,
    Outlet,
    RiverNetwork,
    TraceError,
    network_from_lines,
    upstream_outlets,
)
from gis_core.cache import PerDatabase, dataset_version
from gis_core.errors import InvalidInput, InvalidParameter
from gis_core.plane import M_PER_DEG_LAT, LocalPlane

CONFLUENCE_M = 50.0  # a line's end this close to another line joins it there
SNAP_M = 500.0  # a station farther than this from every river is off the network
OUTFALL_REACH_M = 5000.0  # the longest ditch or sewer from an outfall to its receiving river
# Wastewater as a share of the water taken (the usual 0.8 discharge coefficient of the
# pollution-source census), for outfalls whose flow is not measured.
DISCHARGE_COEFFICIENT = 0.8
YEAR_S = 365.25 * 86400.0
FACTORS = {"cod": "cod_mgl", "nh3n": "nh3n_mgl"}


@dataclass(frozen=True)
class CityRivers:
    network: RiverNetwork
    plane: LocalPlane
    lines_used: int
    lines_left_out: int  # lines whose two ends the DEM could not tell apart


def _split_at_confluences(lines: list[LineString]) -> list[LineString]:
    ends = shapely.points(
        np.array([[line.coords[0][:2], line.coords[-1][:2]] for line in lines]).reshape(-1, 2)
    )
    tree = shapely.STRtree(lines)
    cuts: dict[int, list[float]] = {}
    coords = [list(line.coords) for line in lines]
    end_idx, line_idx = tree.query(ends, predicate="dwithin", distance=CONFLUENCE_M)
    for e, li in zip(end_idx.tolist(), line_idx.tolist(), strict=True):
        if e // 2 == li:
            continue  # its own end
        at = float(lines[li].project(ends[e]))
        if CONFLUENCE_M < at < lines[li].length - CONFLUENCE_M:
            cuts.setdefault(li, []).append(at)
            # the tributary's end moves onto the cut, so both share the node exactly
            joint = lines[li].interpolate(at)
            coords[e // 2][0 if e % 2 == 0 else -1] = (joint.x, joint.y)
    lines = [LineString(c) for c in coords]
    pieces: list[LineString] = []
    for i, line in enumerate(lines):
        marks = [0.0, *sorted(set(cuts.get(i, []))), line.length]
        for a, b in itertools.pairwise(marks):
            if b - a > 1e-6:
                piece = substring(line, a, b)
                if isinstance(piece, LineString) and piece.length > 0:
                    pieces.append(piece)
    return pieces


def build_rivers(conn: psycopg.Connection) -> CityRivers:
    """The river network of the loaded dataset, on a local metric plane, oriented by the DEM."""
    row = conn.execute("SELECT dem_path FROM ref.dataset LIMIT 1").fetchone()
    if row is None or not row[0]:
        raise InvalidInput("the reference dataset has no DEM: the rivers cannot be oriented")
    dem_path = row[0]
    rows = conn.execute(
        "SELECT ST_AsBinary((ST_Dump(geom)).geom) FROM ref.river WHERE geom IS NOT NULL"
    ).fetchall()
    if not rows:
        raise InvalidInput("no rivers are loaded (ref.river is empty)")
    lonlat = [g for g in shapely.from_wkb([r[0] for r in rows]) if g.length > 0]
    bounds = shapely.total_bounds(lonlat)
    plane = LocalPlane.about((bounds[0], bounds[1], bounds[2], bounds[3]))

    def to_plane(g: Any) -> Any:
        return shapely.transform(g, lambda xy: np.column_stack(plane.to_xy(xy[:, 0], xy[:, 1])))

    def elevation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        lon = plane.lon0 + np.asarray(x) / plane.kx
        lat = plane.lat0 + np.asarray(y) / M_PER_DEG_LAT
        return elevation_at(dem_path, lon, lat)

    lines = [LineString(g) for g in to_plane(np.array(lonlat, dtype=object))]
    ends = np.array([[ln.coords[0][:2], ln.coords[-1][:2]] for ln in lines])
    z = elevation(ends[:, :, 0].ravel(), ends[:, :, 1].ravel()).reshape(-1, 2)
    usable = z[:, 0] != z[:, 1]  # False for flat or NaN ends
    kept = [ln for ln, ok in zip(lines, usable, strict=True) if ok]
    if not kept:
        raise InvalidInput("no river line could be oriented by the DEM")
    oriented = network_from_lines(kept, elevation, node_tolerance_m=1.0).segments
    network = RiverNetwork.from_segments(_split_at_confluences(oriented), node_tolerance_m=1.0)
    return CityRivers(network, plane, len(kept), len(lines) - len(kept))


_RIVERS: PerDatabase[CityRivers] = PerDatabase(dataset_version, build_rivers)


def _outlets(conn: psycopg.Connection, factor: str) -> list[dict[str, Any]]:
    """Outfalls with their concentration and flow: measured where an emission monitor at the
    outfall reports them, else the permit limit and the holder's water permits' abstraction
    times the discharge coefficient."""
    field = FACTORS[factor]
    rows = conn.execute(
        """
        SELECT p.id, p.name_zh, e.name_zh, e.credit_code, ST_X(p.geom), ST_Y(p.geom),
               (p.limits->>%(field)s)::float8,
               m.conc, m.flow_m3h,
               (SELECT sum(w.annual_quota_m3) FROM water.permit w
                WHERE w.holder_uscc = e.credit_code)
        FROM env.pollution_source p
        LEFT JOIN env.enterprise e ON e.id = p.enterprise_id
        LEFT JOIN LATERAL (
            SELECT CASE WHEN jsonb_typeof(st.reading->%(field)s) = 'number'
                        THEN (st.reading->>%(field)s)::float8 END AS conc,
                   CASE WHEN jsonb_typeof(st.reading->'flow_m3h') = 'number'
                        THEN (st.reading->>'flow_m3h')::float8 END AS flow_m3h
            FROM iot.monitoring_site s
            JOIN iot.device d ON d.site_id = s.id
            JOIN iot.device_state st ON st.device_id = d.id
            WHERE s.pollution_source_id = p.id
            ORDER BY st.ts DESC LIMIT 1
        ) m ON true
        WHERE p.kind = 'outfall'
        ORDER BY p.id
        """,
        {"field": field},
    ).fetchall()
    out = []
    for r in rows:
        conc, basis_c = (r[7], "measured") if r[7] is not None else (r[6], "permit_limit")
        if r[8] is not None:
            flow, basis_q = r[8] / 3600.0, "measured"
        elif r[9]:
            flow, basis_q = DISCHARGE_COEFFICIENT * r[9] / YEAR_S, "water_permit"
        else:
            flow, basis_q = None, None
        out.append(
            {
                "outlet_id": str(r[0]),
                "name_zh": r[1],
                "enterprise_zh": r[2],
                "credit_code": r[3],
                "lon": r[4],
                "lat": r[5],
                "concentration_mgl": conc,
                "flow_m3s": flow,
                "basis": {"concentration": basis_c, "flow": basis_q},
            }
        )
    return out


def trace_station(
    conn: psycopg.Connection, station_id: str, factor: str = "cod", decay_per_km: float = 0.0
) -> dict[str, Any]:
    """Outfalls upstream of a station along the rivers, ranked by their load at the station;
    the outfalls it could not place or weigh are listed, not dropped."""
    if factor not in FACTORS:
        raise InvalidParameter(f"factor must be one of {', '.join(FACTORS)}, got {factor!r}")
    if not 0 <= decay_per_km <= 10:
        raise InvalidParameter(f"decay_per_km must be within 0..10, got {decay_per_km:g}")
    s = service.station(conn, station_id)
    rivers = _RIVERS.get(conn)
    plane, network = rivers.plane, rivers.network
    outlets = _outlets(conn, factor)
    weighed = [o for o in outlets if o["concentration_mgl"] is not None and o["flow_m3s"]]
    unknown = [o["outlet_id"] for o in outlets if o not in weighed]
    x, y = plane.to_xy(s["lon"], s["lat"])
    ox, oy = plane.to_xy(
        np.array([o["lon"] for o in weighed], dtype=float),
        np.array([o["lat"] for o in weighed], dtype=float),
    )
    # An outfall discharges into its receiving river by a ditch or sewer: it enters the
    # network at the nearest river point within OUTFALL_REACH_M, else it is off the network.
    entering: list[Outlet] = []
    off_reach: list[str] = []
    for k, o in enumerate(weighed):
        try:
            at = network.snap(float(ox[k]), float(oy[k]), OUTFALL_REACH_M)
        except OffNetworkError:
            off_reach.append(o["outlet_id"])
            continue
        o["receiving_m"] = round(at.distance_m, 1)
        point = network.segments[at.segment].interpolate(at.offset_m)
        entering.append(
            Outlet(o["outlet_id"], point.x, point.y, o["concentration_mgl"], o["flow_m3s"])
        )
    try:
        trace = upstream_outlets(
            network,
            (float(x), float(y)),
            entering,
            snap_tolerance_m=SNAP_M,
            decay_per_km=decay_per_km,
        )
    except OffNetworkError as exc:
        raise InvalidInput(f"station {s['station']} is off the river network: {exc}") from None
    except TraceError as exc:
        raise InvalidInput(str(exc)) from None
    by_id = {o["outlet_id"]: o for o in outlets}
    ranked = [
        {
            **by_id[r.outlet_id],
            "rank": k + 1,
            "distance_m": round(r.distance_m, 1),
            "load_g_s": round(r.load_g_s, 4),
            "load_at_station_g_s": round(r.load_at_station_g_s, 4),
        }
        for k, r in enumerate(trace.ranked.itertuples(index=False))
    ]
    # The rivers that drain to the station, for the map.
    to_station = network.distances_up_to(int(network.from_node[trace.station.segment]))
    upstream = np.flatnonzero(np.isfinite(to_station[network.to_node]))
    kx, ky = plane.kx, M_PER_DEG_LAT
    coords = [
        [
            [round(plane.lon0 + px / kx, 6), round(plane.lat0 + py / ky, 6)]
            for px, py, *_ in network.segments[i].coords
        ]
        for i in [trace.station.segment, *upstream.tolist()]
    ]
    return {
        "station": s,
        "factor": factor,
        "decay_per_km": decay_per_km,
        "snapped_m": round(trace.station.distance_m, 1),
        "ranked": ranked,
        "off_network": [*off_reach, *trace.off_network],
        "unknown_load": unknown,
        "rivers": {"type": "MultiLineString", "coordinates": coords},
        "network": {
            "segments": len(network.segments),
            "lines_left_out": rivers.lines_left_out,
        },
    }
