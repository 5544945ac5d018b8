"""The simulator's river and rain gauges: river levels that follow from the rain.

A river gauge's level comes from the rain that falls over its real catchment (the one
``changzhi flood prepare`` traced on the DEM, ``flood.catchment``), routed by a model that is
not the forecast's, so that the forecast (SCS curve number + SCS unit hydrograph, in
:mod:`apps.flood.service`) can be scored against it:

* the catchment is sampled at points (``ST_GeneratePoints``), each standing for an equal
  share of its area; each point gets the scenario's rain where it lies;
* each point has a saturation-excess soil bucket (runoff = P (W / Wm)², Xinanjiang-like) that
  spills into a nonlinear hillslope reservoir S = k Q^m (as :func:`runoff.nonlinear_reservoir`);
* the hillslope outflow travels to the gauge along the D8 flow path (``d8.tif``) at a channel
  velocity, a pure delay per point, and the points' flows add up at the gauge;
* discharge plus the pre-storm baseflow becomes stage through the gauge's rating
  (``flood.rating``).

When the database cannot be reached or the DEM is not prepared, a gauge stands for a disc of
:data:`FALLBACK_AREA_KM2` around itself with straight-line travel (``basin.source`` says so).

The live demo's storm (``sensors.scenarios.StormBand``) crosses the city in half an hour; a
real band takes hours (:data:`REAL_STORM_CROSSING_S`). The catchments then run at the same
pace: a scenario second is that many catchment seconds, so the rain depth, the floods and
their travel all keep their proportions, played fast.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import rasterio
import shapely

from apps.flood.runoff import Rating
from sensors.scenarios import Environment
from sensors.stations import StationModel
from sensors.world import StationSpec

__all__ = [
    "CHANNEL_VELOCITY_M_S",
    "FALLBACK_AREA_KM2",
    "GaugeBasin",
    "RainGauge",
    "RoutedCatchment",
    "WaterLevelGauge",
    "load_basins",
]

FloatArray = npt.NDArray[np.float64]

CHANNEL_VELOCITY_M_S = 1.2  # flood-wave celerity along the flow path
SINUOSITY = 1.3  # flow path over straight line, when no D8 path is known
FALLBACK_AREA_KM2 = 250.0  # a river gauge's catchment: hundreds of km²
REAL_STORM_CROSSING_S = 8 * 3600.0  # a frontal band takes hours to cross a city
POINTS = 48  # sample points per catchment
STEP_S = 60.0
SOIL_CAPACITY_MM = 60.0
SOIL_INITIAL_MM = 22.0
HILLSLOPE_K = 8.0  # S = k Q^m, S mm, Q mm/h
HILLSLOPE_M = 0.6

# ESRI D8 codes to (row, col) steps
_D8 = {1: (0, 1), 2: (1, 1), 4: (1, 0), 8: (1, -1), 16: (0, -1), 32: (-1, -1), 64: (-1, 0),
       128: (-1, 1)}  # fmt: skip


@dataclass(frozen=True)
class GaugeBasin:
    """What the simulator knows of one river gauge's catchment.

    Attributes
    ----------
    area_km2
        The whole area draining to the gauge.
    lon, lat
        Sample points inside it (WGS84), each standing for ``area_km2 / len(lon)``.
    travel_s
        Each point's travel time to the gauge along its flow path.
    rating
        The gauge's stage–discharge rating (None: one is assumed from its warning level).
    source
        ``"dem"`` (catchment and D8 paths from the prepared DEM) or ``"disc"`` (fallback).
    """

    area_km2: float
    lon: FloatArray
    lat: FloatArray
    travel_s: FloatArray
    rating: Rating | None
    source: str


class RoutedCatchment:
    """Rain over a basin's points → soil bucket → nonlinear hillslope reservoir → delayed
    flow at the gauge (m³/s), stepped minute by minute."""

    def __init__(self, basin: GaugeBasin, step_s: float = STEP_S) -> None:
        self.basin = basin
        self.step_s = step_s
        n = basin.lon.size
        self.soil = np.full(n, SOIL_INITIAL_MM)
        self.store = np.zeros(n)
        self.delay = np.rint(basin.travel_s / step_s).astype(np.int64)
        self.ring = np.zeros(int(self.delay.max(initial=0)) + 2)
        self.cursor = 0
        self.point_km2 = basin.area_km2 / max(n, 1)
        self.discharge = 0.0  # m³/s of storm runoff arriving at the gauge now

    def step(self, rain_mm_h: FloatArray) -> float:
        """Advance one step with the rain rate at each point; the flow now at the gauge."""
        h = self.step_s / 3600.0
        p = rain_mm_h * h
        spill = p * (self.soil / SOIL_CAPACITY_MM) ** 2
        self.soil = np.minimum(self.soil + p - spill, SOIL_CAPACITY_MM)
        self.store += spill
        q = np.minimum((self.store / HILLSLOPE_K) ** (1.0 / HILLSLOPE_M), self.store / h)
        self.store -= q * h
        size = self.ring.size
        np.add.at(self.ring, (self.cursor + self.delay) % size, q * self.point_km2 / 3.6)
        self.discharge = float(self.ring[self.cursor])
        self.ring[self.cursor] = 0.0
        self.cursor = (self.cursor + 1) % size
        return self.discharge

    def advance(
        self, env: Environment, t_from: float, t_to: float, time_scale: float = 1.0
    ) -> float:
        """Step from ``t_from`` to ``t_to`` (scenario seconds) with the scenario's rain; the
        flow at ``t_to``. A scenario second is ``time_scale`` seconds of the catchment's
        (a storm played fast plays its rivers as fast)."""
        t = t_from
        env_step = self.step_s / time_scale
        lon, lat = self.basin.lon, self.basin.lat
        while t + env_step <= t_to + 1e-6:
            mid = t + env_step / 2
            rain = np.array([env.rain_rate(mid, x, y) for x, y in zip(lon, lat, strict=True)])
            self.step(rain)
            t += env_step
        return self.discharge


def _walk_d8(
    d8: npt.NDArray[np.uint8], rows: np.ndarray, cols: np.ndarray, stop: np.ndarray, cell: float
) -> FloatArray:
    """Flow-path length (m) from each start cell until ``stop`` is reached (NaN if never)."""
    drow = np.zeros(256, dtype=np.int64)
    dcol = np.zeros(256, dtype=np.int64)
    dist = np.zeros(256)
    for d8_code, (dr, dc) in _D8.items():
        drow[d8_code], dcol[d8_code], dist[d8_code] = dr, dc, cell * math.hypot(dr, dc)
    r, c = rows.astype(np.int64).copy(), cols.astype(np.int64).copy()
    length = np.zeros(r.size)
    active = np.ones(r.size, dtype=bool)
    done = np.zeros(r.size, dtype=bool)
    height, width = d8.shape
    for _ in range(height + width + 4 * max(height, width)):  # longer than any D8 path
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        active &= inside
        arrived = active & stop[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]
        done |= arrived
        active &= ~arrived
        if not active.any():
            break
        code: npt.NDArray[np.intp] = d8[r[active], c[active]].astype(np.intp)
        moves = dist[code] > 0
        idx = np.flatnonzero(active)
        active[idx[~moves]] = False  # a sink or nodata before the gauge
        go = idx[moves]
        length[go] += dist[code[moves]]
        r[go] += drow[code[moves]]
        c[go] += dcol[code[moves]]
    return np.where(done, length, np.nan)


def load_basins(conn: psycopg.Connection, points: int = POINTS) -> dict[str, GaugeBasin]:
    """Each river gauge's basin from the prepared DEM, by site id (empty if not prepared).

    Points are drawn inside ``flood.catchment`` (reproducibly); their travel times follow the
    D8 flow path of the prepared ``d8.tif`` to the gauge.
    """
    from apps.flood.preparation import city_dem
    from gis_core.crs import WGS84, transform
    from gis_core.errors import InvalidInput

    rows = conn.execute(
        """
        SELECT c.site_id, c.area_km2, c.snap_m, ST_X(s.geom), ST_Y(s.geom), r.a, r.h0, r.b,
               ST_AsBinary(ST_GeneratePoints(c.geom, %s, 14))
        FROM flood.catchment c JOIN iot.monitoring_site s ON s.id = c.site_id
        LEFT JOIN flood.rating r ON r.site_id = c.site_id
        ORDER BY c.site_id
        """,
        (points,),
    ).fetchall()
    if not rows:
        return {}
    try:
        dem = city_dem(conn)
    except InvalidInput:
        return {}
    found = conn.execute(
        "SELECT out_dir FROM flood.prepared_dem WHERE dem_path = %s", (str(dem),)
    ).fetchone()
    d8_path = Path(found[0]) / "d8.tif" if found else None
    d8 = crs = tr = None
    if d8_path is not None and d8_path.exists():
        with rasterio.open(d8_path) as src:
            d8, crs, tr = src.read(1), src.crs, src.transform
    basins: dict[str, GaugeBasin] = {}
    for site_id, area, snap_m, glon, glat, a, h0, b, wkb in rows:
        pts = shapely.get_coordinates(shapely.from_wkb(bytes(wkb)))
        lon, lat = pts[:, 0].copy(), pts[:, 1].copy()
        travel = np.full(lon.size, np.nan)
        if d8 is not None and crs is not None and tr is not None:
            epsg = crs.to_epsg()
            xy = transform(lon, lat, WGS84, epsg)
            x, y = np.asarray(xy[0], dtype=float), np.asarray(xy[1], dtype=float)
            gxy = transform(float(glon), float(glat), WGS84, epsg)
            gx, gy = float(gxy[0]), float(gxy[1])  # type: ignore[arg-type]
            cell = abs(tr.a)
            cols, rws = ~tr @ (x, y)
            # The gauge's reach: cells within the snap distance (plus a cell) of the gauge.
            reach = max(float(snap_m or 0.0), cell) + 1.5 * cell
            gc, gr = ~tr @ (gx, gy)
            span = math.ceil(reach / cell) + 1
            r_lo, r_hi = max(int(gr) - span, 0), min(int(gr) + span + 1, d8.shape[0])
            c_lo, c_hi = max(int(gc) - span, 0), min(int(gc) + span + 1, d8.shape[1])
            wr, wc = np.mgrid[r_lo:r_hi, c_lo:c_hi]
            cx, cy = tr @ (wc + 0.5, wr + 0.5)
            near = np.hypot(cx - gx, cy - gy) <= reach
            stop = np.zeros(d8.shape, dtype=bool)
            stop[wr[near], wc[near]] = True
            travel = _walk_d8(d8, np.floor(rws), np.floor(cols), stop, cell)
            travel /= CHANNEL_VELOCITY_M_S
            # A point whose path ends in a sink before the gauge: straight line, winding.
            travel = np.where(np.isfinite(travel), travel, _straight_travel(lon, lat, glon, glat))
        else:
            travel = _straight_travel(lon, lat, glon, glat)
        rating = Rating(float(a), float(h0), float(b)) if a is not None else None
        basins[site_id] = GaugeBasin(float(area), lon, lat, travel, rating, "dem")
    return basins


def _straight_travel(lon: FloatArray, lat: FloatArray, glon: float, glat: float) -> FloatArray:
    kx = 111_320.0 * math.cos(math.radians(glat))
    d = np.hypot((lon - glon) * kx, (lat - glat) * 110_574.0)
    return d * SINUOSITY / CHANNEL_VELOCITY_M_S


def disc_basin(
    lon: float, lat: float, seed: str, area_km2: float = FALLBACK_AREA_KM2
) -> GaugeBasin:
    """A stand-in catchment: points spread over a disc of ``area_km2`` around the gauge."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    radius = math.sqrt(area_km2 / math.pi) * 1000.0
    rad = radius * np.sqrt(rng.uniform(0, 1, POINTS))
    ang = rng.uniform(0, 2 * math.pi, POINTS)
    kx = 111_320.0 * math.cos(math.radians(lat))
    plon = lon + rad * np.cos(ang) / kx
    plat = lat + rad * np.sin(ang) / 110_574.0
    return GaugeBasin(area_km2, plon, plat, _straight_travel(plon, plat, lon, lat), None, "disc")


def _basins_from_platform() -> dict[str, GaugeBasin]:
    """The running platform's basins (``gis_core.settings``); empty when it cannot be read."""
    try:
        from gis_core.settings import get_settings

        with psycopg.connect(get_settings().database_url, connect_timeout=3) as conn:
            return load_basins(conn)
    except (psycopg.Error, OSError, ValueError):
        return {}


class WaterLevelGauge(StationModel):
    """A river gauge whose level is the routed rain of its catchment through its rating.

    Before any storm the river stands 0.9–1.6 m under the warning level (its baseflow); how
    far a storm lifts it depends on how much rain falls over the catchment, where, and how
    far from the gauge.
    """

    kind = "water_level"

    @classmethod
    def build_all(
        cls,
        specs: Sequence[StationSpec],
        env: Environment,
        seed: int,
        basins: Mapping[str, GaugeBasin] | None = None,
    ) -> list[StationModel]:
        """The gauges with their basins: given, or read once from the platform's database."""
        if basins is None:
            basins = _basins_from_platform() if specs else {}
        return [cls(spec, env, seed, basins.get(spec.site_id or "")) for spec in specs]

    def __init__(
        self,
        spec: StationSpec,
        env: Environment,
        seed: int,
        basin: GaugeBasin | None = None,
    ) -> None:
        super().__init__(spec, env, seed)
        th = spec.thresholds
        self.warning = float(th.get("warning_m", 3.0))
        self.danger = float(th.get("danger_m", self.warning + 1.0))
        self.base = self.warning - self.rng.uniform(0.9, 1.6)
        self.basin = basin or disc_basin(self.lon, self.lat, f"{seed}-{spec.device_id}")
        # A gauge with no rating: Q = a (h - 0.2)^1.6 carrying 300 m³/s at the warning level.
        self.rating = self.basin.rating or Rating(
            300.0 / max(self.warning - 0.2, 0.1) ** 1.6, 0.2, 1.6
        )
        self.base = max(self.base, self.rating.h0 + 0.05)
        self.baseflow = float(self.rating.discharge(self.base)[()])
        self.routing = RoutedCatchment(self.basin)
        # The live demo's storm crosses the city in minutes: its rivers run as fast.
        self.time_scale = (
            max(REAL_STORM_CROSSING_S / env.storm.crossing_s, 1.0)
            if env.scenario == "storm"
            else 1.0
        )
        self.last_t = env.t0

    def level_at(self, t: float) -> float:
        """The noiseless stage at ``t`` (advancing the catchment to it)."""
        if t > self.last_t:
            self.routing.advance(self.env, self.last_t, t, self.time_scale)
            env_step = STEP_S / self.time_scale
            self.last_t += math.floor((t - self.last_t) / env_step + 1e-9) * env_step
        r = self.rating
        return r.h0 + ((self.baseflow + self.routing.discharge) / r.a) ** (1.0 / r.b)

    def read(self, t: float, dt: float) -> dict[str, Any]:
        level = self.level_at(t) + self.rng.gauss(0, 0.004)
        return {"level_m": round(level, 3)}


class RainGauge(StationModel):
    """A tipping-bucket gauge (0.2 mm a tip): rain since the previous reading."""

    kind = "rain"
    BUCKET_MM = 0.2

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        self.collected = 0.0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        self.collected += self.env.rain_between(t - dt, t, self.lon, self.lat)
        tips = math.floor(self.collected / self.BUCKET_MM + 1e-9)
        self.collected -= tips * self.BUCKET_MM
        return {"mm": round(tips * self.BUCKET_MM, 1)}
