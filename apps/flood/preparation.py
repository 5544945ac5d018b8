"""The city's hydrology in the database: the prepare chain run on the loaded DEM, its COGs
under ``<var>/flood/``, streams and gauge catchments written to ``flood.*``; and the
reference data the application synthesizes (each river gauge's rating).

``changzhi flood prepare`` runs :func:`prepare_city`; ``changzhi up`` starts the
``flood-prepare`` worker, which runs it once when the loaded DEM has not been prepared (or
its catchments were dropped by a reload) and exits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import rasterio
import shapely
from rasterio.features import shapes

from apps.flood import hydrology as hy
from apps.flood.prepare import _write_cog, prepare_dem, read_band
from gis_core.application import SynthContext
from gis_core.crs import WGS84, transform, transform_geometry
from gis_core.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

# A stream starts where this much drains, and never from fewer than MIN_STREAM_CELLS cells
# (on a coarse DEM one cell can be a square kilometre).
STREAM_AREA_KM2 = 2.0
MIN_STREAM_CELLS = 12
SNAP_RADIUS_M = 600.0  # a gauge is moved onto the strongest flow within this distance


@dataclass(frozen=True)
class CityHydrology:
    """What :func:`prepare_city` did."""

    dem_path: str
    out_dir: str
    cells: int
    prepare_s: float
    streams: int
    catchments: int
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dem_path": self.dem_path,
            "out_dir": self.out_dir,
            "cells": self.cells,
            "prepare_s": round(self.prepare_s, 2),
            "streams": self.streams,
            "catchments": self.catchments,
            "notes": self.notes,
        }


def city_dem(conn: psycopg.Connection) -> Path:
    """The loaded reference dataset's DEM (``ref.dataset.dem_path``)."""
    row = conn.execute(
        "SELECT dem_path FROM ref.dataset WHERE dem_path IS NOT NULL ORDER BY loaded_at DESC"
        " LIMIT 1"
    ).fetchone()
    if row is None:
        raise NotFound("no DEM: load the reference dataset first (changzhi data load)")
    path = Path(row[0])
    if not path.exists():
        raise NotFound(f"the dataset's DEM {path} is missing: reload the reference dataset")
    return path


def needs_preparing(conn: psycopg.Connection) -> bool:
    """Whether the loaded DEM lacks a preparation, or its gauges lack catchments."""
    try:
        dem = city_dem(conn)
    except NotFound:
        return False
    row = conn.execute(
        "SELECT out_dir FROM flood.prepared_dem WHERE dem_path = %s", (str(dem),)
    ).fetchone()
    if row is None or not (Path(row[0]) / "zones.tif").exists():
        return True
    gauges, catchments = conn.execute(
        "SELECT (SELECT count(*) FROM iot.monitoring_site WHERE kind = 'water_level'),"
        " (SELECT count(*) FROM flood.catchment)"
    ).fetchone() or (0, 0)
    return bool(gauges) and not catchments


def _stream_lines(
    order: np.ndarray, fdir: np.ndarray, valid: np.ndarray, tr: Any
) -> tuple[list[shapely.LineString], list[int]]:
    """Stream cells joined to their receivers, merged into lines of one Strahler order."""
    w = order.shape[1]
    recv = hy.receivers(fdir, valid)
    cells = np.flatnonzero(order.ravel() > 0)
    to = recv[cells]
    keep = to >= 0
    cells, to = cells[keep], to[keep]
    keep = order.ravel()[to] > 0
    cells, to = cells[keep], to[keep]
    lines: list[shapely.LineString] = []
    orders: list[int] = []
    if cells.size == 0:
        return lines, orders

    def xy(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, c = np.divmod(flat, w)
        return tr.c + (c + 0.5) * tr.a, tr.f + (r + 0.5) * tr.e

    x0, y0 = xy(cells)
    x1, y1 = xy(to)
    seg_order = order.ravel()[cells]
    coords = np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y1])], axis=1)
    segments = shapely.linestrings(coords)
    for k in np.unique(seg_order):
        merged = shapely.line_merge(shapely.MultiLineString(list(segments[seg_order == k])))
        parts = shapely.get_parts(merged)
        lines.extend(parts)
        orders.extend([int(k)] * len(parts))
    return lines, orders


def _mask_polygon(mask: np.ndarray, tr: Any, tolerance: float) -> shapely.MultiPolygon:
    polys = [shapely.geometry.shape(g) for g, v in shapes(mask.view(np.uint8), mask, transform=tr)]
    merged = shapely.union_all(polys).simplify(tolerance)
    parts = [p for p in shapely.get_parts(merged) if isinstance(p, shapely.Polygon)]
    return shapely.MultiPolygon(parts)


def prepare_city(
    conn: psycopg.Connection, var_dir: Path, *, stream_area_km2: float = STREAM_AREA_KM2
) -> CityHydrology:
    """Prepare the loaded DEM and write streams and gauge catchments (the caller commits).

    Parameters
    ----------
    conn
        The platform database, with the reference dataset loaded.
    var_dir
        The platform's ``var/`` folder; COGs go to ``<var_dir>/flood/<dem name>/``.
    stream_area_km2
        Drained area that starts a stream (at least ``MIN_STREAM_CELLS`` cells).
    """
    if not 0 < stream_area_km2 <= 1000:
        raise InvalidInput(f"stream area {stream_area_km2} km²: give 0 to 1000")
    dem = city_dem(conn)
    out = Path(var_dir) / "flood" / dem.stem
    with rasterio.open(dem) as src:
        cell = abs(src.transform.a)
        epsg = src.crs.to_epsg() if src.crs else None
    if epsg is None:
        raise InvalidInput(f"{dem}: the DEM's CRS has no EPSG code")
    area = max(stream_area_km2, MIN_STREAM_CELLS * cell * cell / 1e6)
    t0 = time.perf_counter()
    run = prepare_dem(dem, out, stream_area_km2=area)
    prepare_s = time.perf_counter() - t0
    notes = list(run.notes)

    with rasterio.open(run.filled) as src:
        tr, profile = src.transform, {"crs": src.crs, "transform": src.transform}
        filled = src.read(1)
        valid = np.isfinite(filled)
        if src.nodata is not None and not math.isnan(src.nodata):
            valid &= filled != np.float32(src.nodata)
    fdir = read_band(run.directions)
    order = read_band(run.streams)
    acc = read_band(run.accumulation)
    # The drainage cell of every cell, kept for inundation (HAND says how high, drain where).
    _, drain = hy.height_above_nearest_drainage(filled, fdir, order > 0, valid)
    _write_cog(out / "drain.tif", drain, profile, -1, "flat index of the drainage stream cell")

    lines, orders = _stream_lines(order, fdir, valid, tr)
    conn.execute("DELETE FROM flood.stream")
    if lines:
        wgs = transform_geometry(np.asarray(lines, dtype=object), epsg, WGS84)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO flood.stream (strahler, length_m, geom)"
                " VALUES (%s, %s, ST_GeomFromWKB(%s, 4326))",
                [
                    (k, float(line.length), shapely.to_wkb(g))
                    for k, line, g in zip(orders, lines, wgs, strict=True)
                ],
            )

    gauges = conn.execute(
        "SELECT id, name_zh, ST_X(geom), ST_Y(geom) FROM iot.monitoring_site"
        " WHERE kind = 'water_level' ORDER BY id"
    ).fetchall()
    conn.execute("DELETE FROM flood.catchment")
    inv = ~tr
    radius = max(2, math.ceil(SNAP_RADIUS_M / cell))
    found: list[tuple[str, np.ndarray, float]] = []
    rows = []
    for site_id, name, lon, lat in gauges:
        x, y = transform(lon, lat, WGS84, epsg)
        col, row = inv @ (x, y)
        try:
            basin = hy.catchment(
                fdir,
                acc,
                row,
                col,
                cell_area_m2=cell * cell,
                snap_radius_cells=radius,
                valid=valid,
            )
        except hy.HydrologyError as exc:
            notes.append(f"gauge {site_id}: no catchment ({exc})")
            continue
        if basin.cells < 2:
            notes.append(f"gauge {site_id}: its catchment is a single cell, skipped")
            continue
        ox, oy = tr @ (basin.col + 0.5, basin.row + 0.5)
        rr, cc = np.nonzero(basin.mask)
        length = float(np.hypot((cc - basin.col) * cell, (rr - basin.row) * cell).max())
        relief = float(filled[basin.mask].max() - filled[basin.row, basin.col])
        geom = transform_geometry(_mask_polygon(basin.mask, tr, cell / 2), epsg, WGS84)
        rows.append(
            (
                site_id,
                name,
                basin.area_m2 / 1e6,
                basin.cells,
                max(length, cell),
                max(relief, 0.0),
                float(math.hypot(ox - x, oy - y)),
                shapely.to_wkb(geom),
            )
        )
        found.append((site_id, basin.mask, basin.area_m2))
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO flood.catchment (site_id, name_zh, area_km2, cells, length_m,"
                " relief_m, snap_m, geom) VALUES (%s, %s, %s, %s, %s, %s, %s,"
                " ST_Multi(ST_GeomFromWKB(%s, 4326)))",
                rows,
            )
    # Zones: each cell belongs to the nearest gauge downstream, i.e. the smallest catchment
    # holding it (nested catchments: paint the large ones first).
    zones = np.zeros(fdir.shape, dtype=np.int16)
    zone_ids: dict[str, str] = {}
    for k, (site_id, mask, _) in enumerate(sorted(found, key=lambda f: -f[2]), start=1):
        zones[mask] = k
        zone_ids[str(k)] = site_id
    _write_cog(out / "zones.tif", zones, profile, 0, "river gauge zone (flood.prepared_dem)")

    conn.execute(
        """
        INSERT INTO flood.prepared_dem (dem_path, out_dir, cells, valid_cells, cell_size_m,
            stream_threshold_cells, zones, notes, prepare_s)
        VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
        ON CONFLICT (dem_path) DO UPDATE SET out_dir = excluded.out_dir, cells = excluded.cells,
            valid_cells = excluded.valid_cells, cell_size_m = excluded.cell_size_m,
            stream_threshold_cells = excluded.stream_threshold_cells, zones = excluded.zones,
            notes = excluded.notes, prepare_s = excluded.prepare_s, prepared_at = now()
        """,
        (
            str(dem),
            str(out),
            run.cells,
            run.valid_cells,
            cell,
            run.stream_threshold_cells,
            orjson.dumps(zone_ids).decode(),
            orjson.dumps(notes).decode(),
            prepare_s,
        ),
    )
    return CityHydrology(str(dem), str(out), run.cells, prepare_s, len(lines), len(rows), notes)


def synthesize(conn: psycopg.Connection, context: SynthContext) -> dict[str, int]:
    """A stage-discharge rating for every river gauge, reproducible from the seed.

    Q = a (h - h0)^b with b = 1.6 (a wide natural channel), h0 the bed a little above the
    gauge datum and ``a`` such that the warning stage carries a few hundred m³/s.
    """
    conn.execute("DELETE FROM flood.rating")
    sites = conn.execute(
        "SELECT id, thresholds FROM iot.monitoring_site WHERE kind = 'water_level' ORDER BY id"
    ).fetchall()
    rng = np.random.default_rng([context.seed, 14])
    rows = []
    for site_id, thresholds in sites:
        warning = float((thresholds or {}).get("warning_m", 3.0))
        h0 = round(float(rng.uniform(0.05, 0.35)), 2)
        q_warning = float(rng.uniform(150.0, 600.0))
        b = 1.6
        a = q_warning / (warning - h0) ** b
        rows.append((site_id, round(a, 3), h0, b))
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO flood.rating (site_id, a, h0, b) VALUES (%s, %s, %s, %s)", rows
            )
    return {"flood.rating": len(rows)}


def prepare_once() -> None:
    """The ``flood-prepare`` worker: prepare the loaded DEM if it needs it, then exit."""
    from gis_core.db import connect
    from gis_core.settings import get_settings

    settings = get_settings()
    with connect(settings.database_url) as conn:
        if not needs_preparing(conn):
            return
        report = prepare_city(conn, settings.platform.var_dir)
        conn.commit()
    log.info("flood: prepared %s (%d cells)", report.dem_path, report.cells)
