"""Inundation depth as web-map tiles, per scenario and per forecast step (the time slider).

A tile is the scenario's depth grid (on the prepared DEM, in its CRS) sampled at the centres
of a 256 × 256 EPSG:3857 tile, coloured by depth class and transparent where dry. A forecast
step's scenario is every forecast gauge's stage at that step (:func:`forecast_steps`).
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile

from apps.flood import service
from gis_core.errors import InvalidInput, NotFound

__all__ = ["DEPTH_COLOURS", "depth_tile", "forecast_steps"]

TILE = 256
ORIGIN = 20037508.342789244  # half the EPSG:3857 world
# RGBA per depth class (service.DEPTH_CLASSES_M edges): shallow light blue to deep navy
DEPTH_COLOURS = np.array(
    [
        [0, 0, 0, 0],
        [198, 219, 239, 170],
        [107, 174, 214, 190],
        [49, 130, 189, 205],
        [8, 81, 156, 220],
        [8, 48, 107, 230],
        [37, 0, 80, 240],
    ],
    dtype=np.uint8,
)

_transformers: dict[int, Transformer] = {}
_steps: dict[tuple[datetime, float], dict[str, Any]] = {}
_lock = threading.Lock()


def _to_grid(epsg: int) -> Transformer:
    with _lock:
        found = _transformers.get(epsg)
        if found is None:
            found = _transformers[epsg] = Transformer.from_crs(3857, epsg, always_xy=True)
        return found


def _png(rgba: npt.NDArray[np.uint8]) -> bytes:
    with MemoryFile() as mem:
        with mem.open(
            driver="PNG",
            width=TILE,
            height=TILE,
            count=4,
            dtype="uint8",
            transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(TILE)),  # keeps GDAL quiet
        ) as dst:
            dst.write(rgba)
        return bytes(mem.read())


def render(
    depth: npt.NDArray[np.float32], transform: Affine, epsg: int, z: int, x: int, y: int
) -> bytes:
    """The depth grid drawn on tile ``z/x/y`` (nearest cell, transparent where dry)."""
    if not 0 <= z <= 22 or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist")
    res = 2 * ORIGIN / (TILE * 2**z)
    west, north = -ORIGIN + x * TILE * res, ORIGIN - y * TILE * res
    px = west + (np.arange(TILE) + 0.5) * res
    py = north - (np.arange(TILE) + 0.5) * res
    mx, my = np.meshgrid(px, py)
    gx, gy = _to_grid(epsg).transform(mx, my)
    col, row = ~transform @ (gx, gy)
    r, c = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    h, w = depth.shape
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    d = np.zeros((TILE, TILE), dtype=np.float32)
    d[inside] = depth[r[inside], c[inside]]
    classes = np.digitize(np.nan_to_num(d), service.DEPTH_CLASSES_M, right=True)
    classes[d <= 0] = 0
    rgba = DEPTH_COLOURS[np.minimum(classes, len(DEPTH_COLOURS) - 1)]
    return _png(np.moveaxis(rgba, -1, 0).copy())


def forecast_steps(
    conn: psycopg.Connection, *, horizon_h: float = 6.0, now: datetime | None = None
) -> dict[str, Any]:
    """Every forecast gauge's stage per 15-minute step ahead (kept per quarter hour)."""
    if not 0.5 <= horizon_h <= 24:
        raise InvalidInput(f"horizon_h {horizon_h}: give 0.5 to 24 hours")
    stop = now or datetime.now(UTC)
    slot = stop.replace(minute=stop.minute - stop.minute % 15, second=0, microsecond=0)
    key = (slot, horizon_h)
    with _lock:
        found = _steps.get(key)
    if found is not None:
        return found
    sites = [
        r[0]
        for r in conn.execute(
            "SELECT c.site_id FROM flood.catchment c JOIN flood.rating r USING (site_id)"
            " ORDER BY c.site_id"
        ).fetchall()
    ]
    notes: list[str] = []
    stages: dict[str, list[float]] = {}
    times: list[datetime] = []
    for site in sites:
        try:
            fc = service.forecast(conn, site, now=slot, hours=12, horizon_h=horizon_h)
        except (InvalidInput, NotFound) as exc:
            notes.append(str(exc))
            continue
        stages[site] = fc["forecast_m"]
        times = fc["times"][len(fc["observed_m"]) :]
    if not stages:
        raise InvalidInput("no river gauge can be forecast now: " + "; ".join(notes[:3]))
    out = {
        "now": slot,
        "step_min": service.STEP_MIN,
        "steps": [
            {"step": k, "time": t, "stages": {s: v[k] for s, v in stages.items()}}
            for k, t in enumerate(times)
        ],
        "notes": notes,
    }
    with _lock:
        _steps.clear()
        _steps[key] = out
    return out


def depth_tile(
    conn: psycopg.Connection,
    z: int,
    x: int,
    y: int,
    *,
    rise_m: float | None = None,
    step: int | None = None,
) -> bytes:
    """Tile of the depth of a uniform rise, or of forecast step ``step``'s stages."""
    if (rise_m is None) == (step is None):
        raise InvalidInput("give exactly one of: rise_m, step (a forecast step)")
    if step is not None:
        steps = forecast_steps(conn)["steps"]
        if not 0 <= step < len(steps):
            raise InvalidInput(f"step {step}: the forecast has steps 0 to {len(steps) - 1}")
        sc = service.scenario(conn, stages=steps[step]["stages"])
    else:
        sc = service.scenario(conn, rise_m=rise_m)
    prep = sc.prep
    if not math.isfinite(prep.cell_m):
        raise NotFound("the prepared DEM has no cell size")
    return render(sc.depth, prep.transform, prep.epsg, z, x, y)
