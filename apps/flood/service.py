"""The flood application's services on the platform database: rain surfaces from the live rain
gauges, stage forecasts at the river gauges, inundation scenarios (with the roads they close)
and evacuation plans. Each takes an explicit psycopg connection; the caller commits.

Grids are in the prepared DEM's metric CRS (EPSG:4547 for the reference data); GeoJSON goes
out in WGS84.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from apps.flood import inundation as inu
from apps.flood import rainfall, runoff
from apps.flood.evacuation import assign_shelters
from apps.flood.preparation import city_dem
from apps.flood.prepare import read_band
from gis_core.crs import CGCS2000_GK_CM114, WGS84, transform, transform_geometry
from gis_core.errors import InvalidInput, NotFound
from gis_core.network import RoadGraph, close_roads, graph_for, reopen_roads, snap

WINDOWS_H = {"1h": 1, "3h": 3, "6h": 6, "24h": 24}
METHODS = ("idw", "thiessen", "kriging")
# Isohyet levels (mm): the national rain classes' steps (GB/T 28592-2012) and finer ones for
# short windows.
LADDER_MM = (0.1, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
ROAD_CUT_M = 0.3  # a road under more water than this is impassable (the rule)
MAX_STAGE_ABOVE_BED_M = 30.0  # higher is a typo, not a flood on these rivers
DEPTH_CLASSES_M = (0.0, 0.5, 1.5, 3.0)  # bands drawn on the map: <0.5, 0.5-1.5, 1.5-3, >3 m
WALK_M_S = 1.2  # from a population cell to the road it is snapped to
STEP_MIN = 15  # forecast time step


def _geojson(geoms: Sequence[Any], props: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": shapely.geometry.mapping(g), "properties": dict(p)}
            for g, p in zip(geoms, props, strict=True)
            if g is not None and not g.is_empty
        ],
    }


def _to_wgs(geoms: Sequence[Any], epsg: int, tolerance: float) -> list[Any]:
    if not geoms:
        return []
    arr = shapely.simplify(np.asarray(geoms, dtype=object), tolerance)
    out = transform_geometry(arr, epsg, WGS84)
    return list(shapely.set_precision(out, 1e-6))


def _districts(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT code, name_zh FROM ref.admin_area WHERE level = 'district'")
    return {str(code): str(name) for code, name in rows.fetchall()}


# --------------------------------------------------------------------------- rain


def _now(end: datetime | None) -> datetime:
    if end is None:
        return datetime.now(UTC)
    if end.tzinfo is None:
        raise InvalidInput("end: give a time with its UTC offset, e.g. 2026-07-20T08:00:00+08:00")
    return end


def rain_totals(
    conn: psycopg.Connection, start: datetime, end: datetime
) -> list[tuple[str, float, float, float | None, int]]:
    """Every rain gauge: id, lon, lat, rain (mm) in ``(start, end]`` and its reading count."""
    rows = conn.execute(
        """
        SELECT d.id, ST_X(s.geom), ST_Y(s.geom), sum((t.reading->>'mm')::float8), count(t.ts)
        FROM iot.device d
        JOIN iot.monitoring_site s ON s.id = d.site_id
        LEFT JOIN iot.telemetry t
            ON t.device_id = d.id AND t.ts > %s AND t.ts <= %s AND t.kind = 'rain'
        WHERE d.kind = 'rain'
        GROUP BY d.id, s.geom
        ORDER BY d.id
        """,
        (start, end),
    ).fetchall()
    return [(r[0], float(r[1]), float(r[2]), r[3], int(r[4])) for r in rows]


def _city_grid(conn: psycopg.Connection, cell_m: float) -> tuple[Affine, tuple[int, int], Any]:
    row = conn.execute(
        "SELECT ST_AsBinary(ST_Union(geom)) FROM ref.admin_area WHERE level = 'city'"
    ).fetchone()
    if row is None or row[0] is None:
        raise NotFound("no city boundary: load the reference dataset first")
    outline = transform_geometry(shapely.from_wkb(bytes(row[0])), WGS84, CGCS2000_GK_CM114)
    x0, y0, x1, y1 = outline.bounds
    x0, y1 = math.floor(x0 / cell_m) * cell_m, math.ceil(y1 / cell_m) * cell_m
    width, height = math.ceil((x1 - x0) / cell_m), math.ceil((y1 - y0) / cell_m)
    return Affine(cell_m, 0, x0, 0, -cell_m, y1), (height, width), outline


def rain(
    conn: psycopg.Connection,
    *,
    window: str = "3h",
    method: str = "kriging",
    end: datetime | None = None,
    cell_m: float = 1000.0,
) -> dict[str, Any]:
    """Rain accumulated over ``window`` up to ``end``: the surface by ``method``, isohyets,
    areal rain per gauge catchment and per district.

    Gauges that sent nothing in the window are listed as ``silent`` and not used.
    """
    if window not in WINDOWS_H:
        raise InvalidInput(f"window {window!r}: one of {', '.join(WINDOWS_H)}")
    if method not in METHODS:
        raise InvalidInput(f"method {method!r}: one of {', '.join(METHODS)}")
    if not 100 <= cell_m <= 5000:
        raise InvalidInput(f"cell_m {cell_m}: give 100 to 5000 metres")
    stop = _now(end)
    start = stop - timedelta(hours=WINDOWS_H[window])
    totals = rain_totals(conn, start, stop)
    if not totals:
        raise NotFound("no rain gauges are registered (iot.device of kind rain)")
    heard = [t for t in totals if t[4] > 0 and t[3] is not None]
    silent = [t[0] for t in totals if not (t[4] > 0 and t[3] is not None)]
    if not heard:
        raise InvalidInput(
            f"no rain gauge reported between {start.isoformat()} and {stop.isoformat()}:"
            f" all {len(totals)} are silent"
        )
    ids = [t[0] for t in heard]
    lon = np.array([t[1] for t in heard])
    lat = np.array([t[2] for t in heard])
    mm = np.array([float(t[3] or 0.0) for t in heard])
    gx, gy = transform(lon, lat, WGS84, CGCS2000_GK_CM114)
    tr, shape, outline = _city_grid(conn, cell_m)
    surface = rainfall.rain_surface(gx, gy, mm, tr, shape, method=method)  # type: ignore[arg-type]
    notes = list(surface.notes)
    if silent:
        notes.append(f"{len(silent)} gauge(s) sent nothing in the window and were not used")

    catchments = conn.execute(
        "SELECT site_id, name_zh, ST_AsBinary(geom) FROM flood.catchment ORDER BY site_id"
    ).fetchall()
    districts = conn.execute(
        "SELECT code, name_zh, ST_AsBinary(geom) FROM ref.admin_area WHERE level = 'district'"
        " ORDER BY code"
    ).fetchall()

    def areal(rows: list[Any]) -> list[float | None]:
        if not rows:
            return []
        polys = transform_geometry(
            shapely.from_wkb([bytes(r[2]) for r in rows]), WGS84, CGCS2000_GK_CM114
        )
        values = rainfall.areal_rainfall(surface, list(polys))
        return [None if not np.isfinite(v) else round(float(v), 2) for v in values]

    inside = ~rasterio.features.geometry_mask([outline], shape, tr)
    city_cells = surface.depth_mm[inside] if inside.any() else surface.depth_mm.ravel()
    top = float(city_cells.max()) if city_cells.size else 0.0
    levels = [v for v in LADDER_MM if v < top]
    above = [v for v in LADDER_MM if v >= top]
    levels = levels + above[:1] if above else levels
    isohyets: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    if len(levels) >= 2 and surface.method != "none":
        lines, bands = rainfall.isohyets(surface, levels)
        clipped = [shapely.intersection(b, outline) for b in bands]
        band_props = [
            {"kind": "band", "min_mm": lo, "max_mm": hi} for lo, hi in itertools.pairwise(levels)
        ]
        line_props = [{"kind": "line", "mm": v} for v in levels]
        isohyets = _geojson(
            _to_wgs(clipped, CGCS2000_GK_CM114, cell_m / 4)
            + _to_wgs(
                [shapely.intersection(ln, outline) for ln in lines], CGCS2000_GK_CM114, cell_m / 4
            ),
            band_props + line_props,
        )
    corners = transform(
        np.array([tr.c, tr.c + tr.a * shape[1]]),
        np.array([tr.f + tr.e * shape[0], tr.f]),
        CGCS2000_GK_CM114,
        WGS84,
    )
    w0, e0 = (float(v) for v in np.asarray(corners[0]))
    s0, n0 = (float(v) for v in np.asarray(corners[1]))
    return {
        "window": window,
        "start": start,
        "end": stop,
        "method": surface.method,
        "notes": notes,
        "gauges": [
            {"id": i, "lon": float(a), "lat": float(b), "mm": round(float(v), 1)}
            for i, a, b, v in zip(ids, lon, lat, mm, strict=True)
        ],
        "silent": silent,
        "grid": {
            "cell_m": cell_m,
            "width": shape[1],
            "height": shape[0],
            "bbox": [w0, s0, e0, n0],
            "max_mm": round(top, 2),
            "mean_mm": round(float(city_cells.mean()), 2) if city_cells.size else 0.0,
        },
        "catchments": [
            {"site_id": r[0], "name_zh": r[1], "mm": v}
            for r, v in zip(catchments, areal(catchments), strict=True)
        ],
        "districts": [
            {"code": r[0], "name_zh": r[1], "mm": v}
            for r, v in zip(districts, areal(districts), strict=True)
        ],
        "isohyets": isohyets,
    }


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True)
class Gauge:
    site_id: str
    device_id: str
    name_zh: str
    warning_m: float | None
    danger_m: float | None
    lon: float
    lat: float


def gauge(conn: psycopg.Connection, gauge_id: str) -> Gauge:
    """A river gauge by its site or device id."""
    row = conn.execute(
        """
        SELECT s.id, d.id, s.name_zh, s.thresholds, ST_X(s.geom), ST_Y(s.geom)
        FROM iot.monitoring_site s JOIN iot.device d ON d.site_id = s.id
        WHERE s.kind = 'water_level' AND d.kind = 'water_level' AND (s.id = %s OR d.id = %s)
        ORDER BY d.id LIMIT 1
        """,
        (gauge_id, gauge_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no river gauge {gauge_id!r} (a site or device of kind water_level)")
    th = row[3] or {}
    return Gauge(
        row[0],
        row[1],
        row[2],
        float(th["warning_m"]) if "warning_m" in th else None,
        float(th["danger_m"]) if "danger_m" in th else None,
        float(row[4]),
        float(row[5]),
    )


def rating_of(conn: psycopg.Connection, site_id: str) -> runoff.Rating:
    row = conn.execute(
        "SELECT a, h0, b FROM flood.rating WHERE site_id = %s", (site_id,)
    ).fetchone()
    if row is None:
        raise InvalidInput(
            f"gauge {site_id} has no stage-discharge rating (flood.rating): no forecast or"
            " stage inundation without one"
        )
    return runoff.Rating(float(row[0]), float(row[1]), float(row[2]))


def _catchment_row(conn: psycopg.Connection, site_id: str) -> tuple[float, float, float, Any]:
    row = conn.execute(
        "SELECT area_km2, length_m, relief_m, ST_AsBinary(geom) FROM flood.catchment"
        " WHERE site_id = %s",
        (site_id,),
    ).fetchone()
    if row is None:
        raise InvalidInput(
            f"gauge {site_id} has no catchment: run `changzhi flood prepare`, or the gauge lies"
            " outside the DEM"
        )
    return float(row[0]), float(row[1]), float(row[2]), shapely.from_wkb(bytes(row[3]))


def _binned(
    conn: psycopg.Connection, sql: str, params: Sequence[Any], start: datetime, steps: int
) -> npt.NDArray[np.float64]:
    """Values per ``STEP_MIN`` bin from ``start`` (NaN where nothing came)."""
    out = np.full(steps, np.nan)
    for k, value in conn.execute(sql, params).fetchall():
        if 0 <= int(k) < steps and value is not None:
            out[int(k)] = float(value)
    return out


def forecast(
    conn: psycopg.Connection,
    gauge_id: str,
    *,
    now: datetime | None = None,
    hours: float = 12.0,
    horizon_h: float = 6.0,
    cn: float = 75.0,
) -> dict[str, Any]:
    """Observed and forecast stage at a river gauge, with its warning and danger lines.

    The model: areal rain over the gauge's catchment (the rain gauges inside it, or the three
    nearest, weighted by inverse squared distance) through SCS-CN excess and the SCS unit
    hydrograph (Kirpich time of concentration from the catchment's length and relief), plus
    the pre-event baseflow, to stage by the gauge's rating. The forecast is updated to the
    last observed stage (the error at ``now`` fades out over three hours); rain after ``now``
    is taken as zero (no rain forecast is read).
    """
    if not 1 <= hours <= 72:
        raise InvalidInput(f"hours {hours}: give 1 to 72 hours of observations")
    if not 0.5 <= horizon_h <= 48:
        raise InvalidInput(f"horizon_h {horizon_h}: give 0.5 to 48 hours")
    if not 30 <= cn <= 98:
        raise InvalidInput(f"cn {cn}: a curve number is 30 to 98")
    g = gauge(conn, gauge_id)
    rating = rating_of(conn, g.site_id)
    area_km2, length_m, relief_m, basin = _catchment_row(conn, g.site_id)
    stop = _now(now)
    dt_h = STEP_MIN / 60.0
    n_obs = round(hours / dt_h)
    n_fc = round(horizon_h / dt_h)
    start = stop - timedelta(hours=n_obs * dt_h)
    bin_sql = "floor(extract(epoch FROM t.ts - %s) / %s)::int"
    observed = _binned(
        conn,
        f"SELECT {bin_sql} AS k, avg((t.reading->>'level_m')::float8) FROM iot.telemetry t"
        " WHERE t.device_id = %s AND t.kind = 'water_level' AND t.ts > %s AND t.ts <= %s"
        " GROUP BY k",
        (start, STEP_MIN * 60, g.device_id, start, stop),
        start,
        n_obs,
    )
    if not np.isfinite(observed).any():
        raise InvalidInput(
            f"gauge {g.site_id} reported no water level in the last {hours:g} h: it is silent"
        )
    notes: list[str] = []
    # Rain gauges over the catchment, or the nearest three to its centroid.
    centroid = basin.centroid
    gauges = conn.execute(
        """
        SELECT d.id, ST_Intersects(s.geom, ST_GeomFromWKB(%s, 4326)),
               ST_Distance(s.geom::geography, ST_GeomFromWKB(%s, 4326)::geography)
        FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id
        WHERE d.kind = 'rain'
        ORDER BY 3
        """,
        (shapely.to_wkb(basin), shapely.to_wkb(centroid)),
    ).fetchall()
    inside = [r for r in gauges if r[1]]
    used = inside or gauges[:3]
    if not used:
        notes.append("no rain gauges: the forecast is baseflow only")
    weights = (
        np.ones(len(used))
        if inside
        else 1.0 / np.maximum(np.array([float(r[2]) for r in used]), 100.0) ** 2
    )
    rain_obs = np.zeros(n_obs)
    silent = []
    if used:
        series = []
        for r in used:
            s = _binned(
                conn,
                f"SELECT {bin_sql} AS k, sum((t.reading->>'mm')::float8) FROM iot.telemetry t"
                " WHERE t.device_id = %s AND t.kind = 'rain' AND t.ts > %s AND t.ts <= %s"
                " GROUP BY k",
                (start, STEP_MIN * 60, r[0], start, stop),
                start,
                n_obs,
            )
            if not np.isfinite(s).any():
                silent.append(r[0])
            series.append(np.nan_to_num(s))
        heard = np.array([r[0] not in silent for r in used])
        if heard.any():
            w = weights * heard
            rain_obs = (np.array(series) * w[:, None]).sum(axis=0) / w.sum()
        if silent:
            notes.append(f"rain gauge(s) {', '.join(silent)} sent nothing in the window: not used")
    rain_all = np.concatenate([rain_obs, np.zeros(n_fc)])
    first = float(observed[np.isfinite(observed)][0])
    slope = max(relief_m / max(length_m, 1.0), 1e-3)
    model = runoff.Catchment(
        area_km2=area_km2,
        length_m=length_m,
        slope=slope,
        cn=cn,
        baseflow_m3s=float(rating.discharge(max(first, rating.h0))),
    )
    warning = g.warning_m if g.warning_m is not None else math.inf
    run = runoff.forecast_stage(
        rain_all, model, rating, dt_h=dt_h, warning_stage_m=warning, now_step=n_obs
    )
    simulated = np.asarray(run.stage_m, dtype=float)
    last = int(np.flatnonzero(np.isfinite(observed))[-1])
    error = float(observed[last] - simulated[last])
    ahead = (np.arange(n_obs + n_fc) - last) * dt_h
    corrected = simulated + np.where(ahead >= 0, error * np.exp(-np.maximum(ahead, 0) / 3.0), 0)
    future = corrected[n_obs:]
    times = [start + timedelta(minutes=STEP_MIN * (k + 1)) for k in range(n_obs + n_fc)]

    def crossing(level: float | None) -> datetime | None:
        if level is None:
            return None
        hit = np.flatnonzero(future >= level)
        return times[n_obs + int(hit[0])] if hit.size else None

    ok = np.isfinite(observed)
    nse = None
    if ok.sum() >= 2 and np.ptp(observed[ok]) > 0:
        nse = round(runoff.nash_sutcliffe(observed[ok], simulated[:n_obs][ok]), 3)
    else:
        notes.append("the observed stage did not vary: no NSE for the hindcast")
    return {
        "site_id": g.site_id,
        "device_id": g.device_id,
        "name_zh": g.name_zh,
        "now": stop,
        "step_min": STEP_MIN,
        "times": times,
        "observed_m": [None if not np.isfinite(v) else round(float(v), 3) for v in observed],
        "simulated_m": [round(float(v), 3) for v in simulated[:n_obs]],
        "forecast_m": [round(float(v), 3) for v in future],
        "rain_mm": [round(float(v), 2) for v in rain_all[:n_obs]],
        "warning_m": g.warning_m,
        "danger_m": g.danger_m,
        "warning_at": crossing(g.warning_m),
        "danger_at": crossing(g.danger_m),
        "peak_m": round(float(future.max()), 3) if future.size else None,
        "hindcast_nse": nse,
        "rain_gauges": [r[0] for r in used],
        "catchment_km2": round(area_km2, 2),
        "notes": notes,
    }


# --------------------------------------------------------------------------- inundation


@dataclass(frozen=True)
class Prepared:
    """The prepared rasters inundation needs, held in memory once per preparation."""

    out_dir: Path
    transform: Affine
    epsg: int
    cell_m: float
    plain: inu.FloodPlain  # the cells a stage can wet, by reach and HAND
    zone_of_site: dict[str, int]


_prepared: dict[tuple[str, datetime], Prepared] = {}
_prepared_lock = threading.Lock()


def prepared(conn: psycopg.Connection) -> Prepared:
    """The loaded DEM's preparation (NotFound until ``changzhi flood prepare`` has run)."""
    dem = city_dem(conn)
    row = conn.execute(
        "SELECT out_dir, zones, prepared_at FROM flood.prepared_dem WHERE dem_path = %s",
        (str(dem),),
    ).fetchone()
    if row is None:
        raise NotFound("the city's DEM is not prepared yet: run `changzhi flood prepare`")
    key = (str(row[0]), row[2])
    with _prepared_lock:
        found = _prepared.get(key)
        if found is not None:
            return found
        out = Path(row[0])
        with rasterio.open(out / "hand.tif") as src:
            hand = src.read(1)
            tr, epsg = src.transform, src.crs.to_epsg()
        streams = read_band(out / "streams.tif") > 0
        reach = np.where(streams, read_band(out / "zones.tif"), 0).astype(np.int16)
        del streams
        plain = inu.FloodPlain.build(
            hand, read_band(out / "drain.tif"), reach, MAX_STAGE_ABOVE_BED_M
        )
        del hand, reach
        found = Prepared(
            out, tr, int(epsg), abs(tr.a), plain, {site: int(k) for k, site in row[1].items()}
        )
        _prepared.clear()  # one city, one preparation in force
        _prepared[key] = found
        return found


def _sample(prep: Prepared, depth: np.ndarray, lon: Any, lat: Any) -> npt.NDArray[np.float64]:
    """Depth under WGS84 points (0 off the grid)."""
    x, y = transform(np.asarray(lon, float), np.asarray(lat, float), WGS84, prep.epsg)
    col, row = ~prep.transform @ (np.atleast_1d(x), np.atleast_1d(y))
    r, c = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    h, w = depth.shape
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    out = np.zeros(r.size)
    out[ok] = np.nan_to_num(depth[r[ok], c[ok]])
    return out


def stages_above_bed(
    conn: psycopg.Connection,
    prep: Prepared,
    *,
    stages: Mapping[str, float] | None = None,
    rise_m: float | None = None,
    observed: bool = False,
) -> tuple[dict[int, float], list[str]]:
    """Stage height above the channel bed per gauge zone, from one of: stages per gauge (the
    gauge's own level, m), a uniform rise above the bed everywhere, or the latest readings."""
    given = sum([stages is not None, rise_m is not None, observed])
    if given != 1:
        raise InvalidInput("give exactly one of: stages (per gauge), rise_m, observed")
    notes: list[str] = []
    if rise_m is not None:
        if not 0 < rise_m <= MAX_STAGE_ABOVE_BED_M:
            raise InvalidInput(f"rise_m {rise_m}: give more than 0 and at most 30 m")
        return {zone: float(rise_m) for zone in prep.zone_of_site.values()}, notes
    if observed:
        rows = conn.execute(
            "SELECT d.site_id, (st.reading->>'level_m')::float8 FROM iot.device_state st"
            " JOIN iot.device d ON d.id = st.device_id WHERE st.kind = 'water_level'"
        ).fetchall()
        stages = {str(r[0]): float(r[1]) for r in rows if r[0] is not None and r[1] is not None}
        if not stages:
            raise InvalidInput("no river gauge has reported a level yet")
    assert stages is not None
    if not stages:
        raise InvalidInput("stages: give at least one gauge's level")
    out: dict[int, float] = {}
    for gauge_id, level in stages.items():
        g = gauge(conn, gauge_id)
        if not math.isfinite(level):
            raise InvalidInput(f"stage at gauge {gauge_id}: not a number")
        zone = prep.zone_of_site.get(g.site_id)
        if zone is None:
            message = f"gauge {g.site_id} has no catchment on the prepared DEM"
            if observed:
                notes.append(message + ": not used")
                continue
            raise InvalidInput(message)
        try:
            rating = rating_of(conn, g.site_id)
        except InvalidInput as exc:
            if observed:
                notes.append(str(exc))
                continue
            raise
        height = level - rating.h0
        if height < 0:
            raise InvalidInput(
                f"stage {level:g} m at gauge {g.site_id} is below its channel bed ({rating.h0:g} m)"
            )
        if height > MAX_STAGE_ABOVE_BED_M:
            raise InvalidInput(
                f"stage {level:g} m at gauge {g.site_id} is {height:.1f} m above the bed:"
                f" more than {MAX_STAGE_ABOVE_BED_M:g} m is not a river stage"
            )
        out[zone] = height
    return out, notes


_road_cells: dict[tuple[Path, bytes], tuple[np.ndarray, np.ndarray]] = {}


def _road_samples(graph: RoadGraph, prep: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Flat grid cell and edge index of points every half cell along each road, kept per
    road set and preparation (closures rebuild the graph, not the roads' geometry)."""
    key = (prep.out_dir, hashlib.sha1(graph.edge_id.tobytes()).digest())
    found = _road_cells.get(key)
    if found is not None:
        return found
    if prep.epsg != CGCS2000_GK_CM114:
        geoms = transform_geometry(graph.geoms_wgs, WGS84, prep.epsg)
    else:
        geoms = graph.geoms_m
    dense = shapely.segmentize(geoms, prep.cell_m / 2)
    xy, idx = shapely.get_coordinates(dense, return_index=True)
    col, row = ~prep.transform @ (xy[:, 0], xy[:, 1])
    r, c = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    h, w = prep.plain.shape
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    found = ((r[ok] * w + c[ok]), idx[ok].astype(np.int64))
    _road_cells.clear()
    _road_cells[key] = found
    return found


def flooded_edges(graph: RoadGraph, prep: Prepared, depth: np.ndarray) -> npt.NDArray[np.int64]:
    """Edge indices of roads with a point under more than ``ROAD_CUT_M`` of water."""
    cells, idx = _road_samples(graph, prep)
    under = depth.ravel()[cells] > ROAD_CUT_M
    return np.unique(idx[under])


@dataclass
class Scenario:
    """A depth grid and what lies under it."""

    prep: Prepared
    depth: npt.NDArray[np.float32]
    window: tuple[int, int, int, int]  # rows and columns holding every wet cell
    notes: list[str]
    flooded_edges: npt.NDArray[np.int64]
    graph: RoadGraph


# The last two scenarios: an evacuation right after its inundation, and the tiles of a time
# slider moving between two steps, do not redo them (a depth grid is 4 bytes a cell).
_last_scenario: dict[tuple[Any, ...], Scenario] = {}
_KEEP_SCENARIOS = 2
DRAWN_CELLS = 1_000_000  # most cells the flooded polygons are drawn from


def scenario(
    conn: psycopg.Connection,
    *,
    stages: Mapping[str, float] | None = None,
    rise_m: float | None = None,
    observed: bool = False,
) -> Scenario:
    prep = prepared(conn)
    by_zone, notes = stages_above_bed(conn, prep, stages=stages, rise_m=rise_m, observed=observed)
    graph = graph_for(conn)
    key = (id(prep), id(graph), tuple(sorted(by_zone.items())))
    found = _last_scenario.get(key)
    if found is not None:
        return found
    depth, window = prep.plain.depth(by_zone)
    sc = Scenario(prep, depth, window, notes, flooded_edges(graph, prep, depth), graph)
    while len(_last_scenario) >= _KEEP_SCENARIOS:
        _last_scenario.pop(next(iter(_last_scenario)))
    _last_scenario[key] = sc
    return sc


def inundate(
    conn: psycopg.Connection,
    *,
    stages: Mapping[str, float] | None = None,
    rise_m: float | None = None,
    observed: bool = False,
    close: bool = True,
) -> dict[str, Any]:
    """Depth from HAND for the stages given, what it reaches, and (``close``) the roads under
    more than 0.3 m of water closed in the shared road graph (the flood's earlier closures
    are lifted first: one scenario in force)."""
    sc = scenario(conn, stages=stages, rise_m=rise_m, observed=observed)
    prep = sc.prep
    r0, r1, c0, c1 = sc.window
    depth = sc.depth[r0:r1, c0:c1]  # every wet cell is in the window
    wet = depth > 0
    districts = _districts(conn)
    people = conn.execute(
        "SELECT district_code, population, ST_X(ST_PointOnSurface(geom)),"
        " ST_Y(ST_PointOnSurface(geom)) FROM ref.population_cell"
    ).fetchall()
    per_district: dict[str, float] = {}
    affected_people = 0.0
    if people:
        d_people = _sample(prep, depth, [r[2] for r in people], [r[3] for r in people])
        for r, d in zip(people, d_people, strict=True):
            if d > 0:
                per_district[r[0]] = per_district.get(r[0], 0.0) + float(r[1])
                affected_people += float(r[1])
    pois = conn.execute(
        "SELECT id, category, name_zh, ST_X(geom), ST_Y(geom) FROM ref.poi ORDER BY id"
    ).fetchall()
    hit_pois = []
    if pois:
        d_poi = _sample(prep, depth, [r[3] for r in pois], [r[4] for r in pois])
        hit_pois = [
            {"id": r[0], "category": r[1], "name_zh": r[2], "depth_m": round(float(d), 2)}
            for r, d in zip(pois, d_poi, strict=True)
            if d > 0
        ]
    road_ids = [int(sc.graph.edge_id[e]) for e in sc.flooded_edges]
    if close:
        reopen_roads(conn, source="flood")
        close_roads(
            conn, road_ids, source="flood", reason=f"inundation: water above {ROAD_CUT_M} m"
        )
    notes = list(sc.notes)
    classes = np.digitize(np.nan_to_num(depth), DEPTH_CLASSES_M, right=True).astype(np.uint8)
    classes[~wet] = 0
    # The map's polygons: a wide wet window is drawn in blocks of f × f cells (deepest class
    # of the block), at most DRAWN_CELLS of them; the counts above are cell by cell.
    f = max(1, math.ceil(math.sqrt(classes.size / DRAWN_CELLS)))
    if f > 1:
        h, w = classes.shape
        padded = np.zeros((math.ceil(h / f) * f, math.ceil(w / f) * f), dtype=np.uint8)
        padded[:h, :w] = classes
        classes = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).max(axis=(1, 3))
        notes.append(f"flooded polygons drawn on {f * prep.cell_m:g} m blocks")
    polys, props = [], []
    window_tr = prep.transform @ Affine.translation(c0, r0) @ Affine.scale(f)
    drawn = shapes(classes, classes > 0, transform=window_tr) if classes.size else ()
    for geom, value in drawn:
        k = int(value)
        polys.append(shapely.geometry.shape(geom))
        hi = DEPTH_CLASSES_M[k] if k < len(DEPTH_CLASSES_M) else None
        props.append({"class": k, "min_m": DEPTH_CLASSES_M[k - 1], "max_m": hi})
    by_category: dict[str, int] = {}
    for p in hit_pois:
        by_category[p["category"]] = by_category.get(p["category"], 0) + 1
    return {
        "wet_cells": int(wet.sum()),
        "area_km2": round(float(wet.sum()) * prep.cell_m**2 / 1e6, 3),
        "max_depth_m": round(float(depth.max()), 2) if wet.any() else 0.0,
        "mean_depth_m": round(float(depth[wet].mean()), 2) if wet.any() else 0.0,
        "people": round(affected_people),
        "districts": [
            {"code": code, "name_zh": districts.get(code, code), "people": round(n)}
            for code, n in sorted(per_district.items(), key=lambda kv: -kv[1])
        ],
        "pois": hit_pois,
        "pois_by_category": by_category,
        "roads_flooded": road_ids,
        "roads_closed": len(road_ids) if close else 0,
        "flooded": _geojson(_to_wgs(polys, prep.epsg, prep.cell_m / 2), props),
        "notes": notes,
    }


def reopen(conn: psycopg.Connection) -> int:
    """Lift every closure the flood made; returns how many roads reopened."""
    return reopen_roads(conn, source="flood")


# --------------------------------------------------------------------------- evacuation


def _without(graph: RoadGraph, edges: npt.NDArray[np.int64]) -> csr_matrix:
    """The reverse travel-time matrix with the arcs of ``edges`` taken out."""
    rev = graph.reverse.copy()
    cut = np.isin(graph.rev_edge, edges)
    rev.data = np.where(cut, 0.0, rev.data)
    rev.eliminate_zeros()
    return rev


def evacuate(
    conn: psycopg.Connection,
    *,
    stages: Mapping[str, float] | None = None,
    rise_m: float | None = None,
    observed: bool = False,
    routes: int = 50,
) -> dict[str, Any]:
    """People of the flooded population cells to shelters (``ref.poi`` category ``shelter``,
    with a capacity) by road travel time, avoiding roads under water, within capacities: a
    min-cost flow (:func:`apps.flood.evacuation.assign_shelters`).

    Returns the totals, a table per shelter and per district, and the ``routes`` largest
    flows as lines on the road network.
    """
    if not 0 <= routes <= 500:
        raise InvalidInput(f"routes {routes}: give 0 to 500")
    sc = scenario(conn, stages=stages, rise_m=rise_m, observed=observed)
    prep, graph = sc.prep, sc.graph
    notes = list(sc.notes)
    cells = conn.execute(
        "SELECT id, district_code, population, ST_X(ST_PointOnSurface(geom)),"
        " ST_Y(ST_PointOnSurface(geom)) FROM ref.population_cell ORDER BY id"
    ).fetchall()
    d_cells = (
        _sample(prep, sc.depth, [r[3] for r in cells], [r[4] for r in cells])
        if cells
        else np.zeros(0)
    )
    hit = [(r, round(float(r[2]))) for r, d in zip(cells, d_cells, strict=True) if d > 0]
    hit = [(r, n) for r, n in hit if n > 0]
    shelters = conn.execute(
        "SELECT id, name_zh, capacity, district_code, ST_X(geom), ST_Y(geom) FROM ref.poi"
        " WHERE category = 'shelter' AND capacity > 0 ORDER BY id"
    ).fetchall()
    if not shelters:
        raise InvalidInput("no shelters with a capacity (ref.poi, category shelter)")
    d_shelter = _sample(prep, sc.depth, [r[4] for r in shelters], [r[5] for r in shelters])
    if (d_shelter > 0).any():
        notes.append(f"{int((d_shelter > 0).sum())} shelter(s) are under water: not used")
        shelters = [r for r, d in zip(shelters, d_shelter, strict=True) if d <= 0]
    if not shelters:
        raise InvalidInput("every shelter with a capacity is under water")
    districts = _districts(conn)
    if not hit:
        return {
            "people": 0,
            "assigned": 0,
            "unassigned": 0,
            "mean_travel_min": None,
            "shelters": [],
            "districts": [],
            "routes": {"type": "FeatureCollection", "features": []},
            "notes": [*notes, "no one lives on the flooded cells"],
        }
    rev = _without(graph, sc.flooded_edges)
    s_snap = snap(graph, [r[4] for r in shelters], [r[5] for r in shelters])
    s_node = np.where(s_snap.fraction < 0.5, graph.src[s_snap.edge], graph.tgt[s_snap.edge])
    dist, pred = dijkstra(rev, directed=True, indices=s_node, return_predecessors=True)
    c_snap = snap(graph, [r[3] for r, _ in hit], [r[4] for r, _ in hit])
    e = c_snap.edge
    along = graph.cost[e]
    walk = c_snap.distance_m / WALK_M_S
    to_src = dist[:, graph.src[e]] + c_snap.fraction * along + walk
    to_tgt = dist[:, graph.tgt[e]] + (1 - c_snap.fraction) * along + walk
    travel = np.minimum(to_src, to_tgt).T  # cells x shelters
    start_node = np.where(to_src.T <= to_tgt.T, graph.src[e][:, None], graph.tgt[e][:, None])
    plan = assign_shelters([n for _, n in hit], [int(r[2]) for r in shelters], travel)
    assigned = plan.people.sum(axis=1)
    total = int(sum(n for _, n in hit))
    per_d: dict[str, list[float]] = {}
    for (r, n), a, k in zip(hit, assigned, range(len(hit)), strict=True):
        row = per_d.setdefault(r[1], [0, 0, 0.0])
        row[0] += n
        row[1] += int(a)
        row[2] += float((plan.people[k] * np.where(np.isfinite(travel[k]), travel[k], 0)).sum())
    flows = np.argwhere(plan.people > 0)
    order = np.argsort(-plan.people[flows[:, 0], flows[:, 1]])[:routes]
    lines, props = [], []
    n_nodes = graph.nodes
    for c, s in flows[order]:
        node = int(start_node[c, s])
        path: list[Any] = []
        while node != s_node[s] and node >= 0 and len(path) <= n_nodes:
            nxt = int(pred[s, node])
            if nxt < 0:
                break
            edge = graph.arc_lookup.get(node * (n_nodes + 1) + nxt)
            if edge is not None:
                path.append(graph.geoms_wgs[edge])
            node = nxt
        if path:
            lines.append(shapely.MultiLineString(path))
            props.append(
                {
                    "people": int(plan.people[c, s]),
                    "shelter_id": int(shelters[s][0]),
                    "minutes": round(float(travel[c, s]) / 60.0, 1),
                }
            )
    assigned_total = int(assigned.sum())
    return {
        "people": total,
        "assigned": assigned_total,
        "unassigned": int(plan.unassigned.sum()),
        "mean_travel_min": round(plan.total_person_seconds / assigned_total / 60.0, 1)
        if assigned_total
        else None,
        "shelters": [
            {
                "id": int(r[0]),
                "name_zh": r[1],
                "capacity": int(r[2]),
                "assigned": int(plan.people[:, k].sum()),
            }
            for k, r in enumerate(shelters)
            if plan.people[:, k].sum() > 0
        ],
        "districts": [
            {
                "code": code,
                "name_zh": districts.get(code, code),
                "people": int(v[0]),
                "assigned": int(v[1]),
                "unassigned": int(v[0] - v[1]),
                "mean_travel_min": round(v[2] / v[1] / 60.0, 1) if v[1] else None,
            }
            for code, v in sorted(per_d.items())
        ],
        "routes": _geojson(lines, props),
        "roads_avoided": len(sc.flooded_edges),
        "notes": notes,
    }
