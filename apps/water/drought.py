"""Agricultural and meteorological drought: grades, SPI, a drought map and a 7-day outlook.

- Agricultural drought grade by GB/T 32136-2015 from relative soil moisture
  ``R = a × mean_i(w_i / f_c,i) × 100 %`` over the soil layers of the crop stage's depth, with
  ``a`` the crop-stage coefficient. Grades (Table of 5.2): 无旱 R > 60, 轻旱 50 < R ≤ 60,
  中旱 40 < R ≤ 50, 重旱 30 < R ≤ 40, 特旱 R ≤ 30 — each upper bound belongs to the drier
  grade's neighbour above it exactly as written: 60 is 轻旱, 30 is 特旱.
- SPI (McKee et al. 1993; WMO-No. 1090) from monthly precipitation with the
  ``climate-indices`` library (gamma with the zero-precipitation mixture ``H = q + (1-q)G``),
  graded by GB/T 20481-2017: 无旱 SPI > -0.5, 轻旱 -1.0 < SPI ≤ -0.5, 中旱 -1.5 < SPI ≤ -1.0,
  重旱 -2.0 < SPI ≤ -1.5, 特旱 SPI ≤ -2.0.
- A drought map: probe relative moisture interpolated by inverse distance weighting onto a
  grid, masked to cropland, graded per cell, with areas per district and grade.
- A 7-day outlook from a daily bucket (Manabe 1969) with ET0 by Hargreaves (FAO-56 eq. 52).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from affine import Affine
from rasterio import features
from shapely.geometry.base import BaseGeometry

AGRICULTURAL_STANDARD = "GB/T 32136-2015"
METEOROLOGICAL_STANDARD = "GB/T 20481-2017"

GRADE_NAMES = ("无旱", "轻旱", "中旱", "重旱", "特旱")  # grade 0..4
NOT_GRADED = -1

# Upper bounds (inclusive) of 特旱, 重旱, 中旱, 轻旱; above the last is 无旱.
_MOISTURE_BOUNDS = np.array([30.0, 40.0, 50.0, 60.0])
_SPI_BOUNDS = np.array([-2.0, -1.5, -1.0, -0.5])


class DroughtError(ValueError):
    """Inputs the drought computations cannot use as given."""


@dataclass(frozen=True)
class StageRule:
    """How relative moisture is taken in one crop stage: the depth and the coefficient ``a``."""

    depth_cm: float
    coefficient: float


class CropStage(StrEnum):
    SOWING = "sowing"  # 播种期
    SEEDLING = "seedling"  # 苗期
    CRITICAL = "critical"  # 水分临界期
    OTHER = "other"  # 其余发育期


# Coefficients as GB/T 32136-2015 gives them (苗期 1.1, 水分临界期 0.9, others 1). The depths
# (0-20 cm at sowing, 0-50 cm after) follow the agrometeorological practice of the QX/T crop
# drought standards; pass your own table where the province's rules differ.
DEFAULT_STAGE_RULES: Mapping[CropStage, StageRule] = {
    CropStage.SOWING: StageRule(20.0, 1.0),
    CropStage.SEEDLING: StageRule(50.0, 1.1),
    CropStage.CRITICAL: StageRule(50.0, 0.9),
    CropStage.OTHER: StageRule(50.0, 1.0),
}


@dataclass(frozen=True)
class RelativeMoisture:
    """Relative soil moisture per probe and what was left out."""

    percent: np.ndarray  # R per probe, %; NaN when no layer was usable
    flagged: np.ndarray  # (probes, layers) bool: reading below 0 or above saturation
    layers_used: int
    stage: CropStage
    standard: str = AGRICULTURAL_STANDARD


def relative_moisture(
    vwc: np.ndarray,
    layer_bottoms_cm: Sequence[float],
    field_capacity: np.ndarray | float,
    saturation: np.ndarray | float,
    stage: CropStage | str = CropStage.OTHER,
    rules: Mapping[CropStage, StageRule] = DEFAULT_STAGE_RULES,
) -> RelativeMoisture:
    """Relative soil moisture R (%) of each probe over its crop stage's layers.

    Parameters
    ----------
    vwc
        Volumetric water content, %, shape ``(probes, layers)``.
    layer_bottoms_cm
        Bottom depth of each layer, increasing (e.g. ``[10, 20, 30, 40, 50]``).
    field_capacity, saturation
        Volumetric %, scalars or broadcastable to ``vwc``. A reading below zero or above
        saturation is a faulty probe: flagged and left out of the mean.
    stage
        Crop stage; selects the layers (bottom ≤ stage depth) and the coefficient ``a``.

    Examples
    --------
    >>> r = relative_moisture(np.array([[12.0, 15.0, 18.0]]), [10, 20, 30], 30.0, 45.0, "sowing")
    >>> round(float(r.percent[0]), 6)  # (12/30 + 15/30) / 2 × 100
    45.0
    """
    readings = np.atleast_2d(np.asarray(vwc, dtype=float))
    bottoms = np.asarray(layer_bottoms_cm, dtype=float)
    if readings.shape[1] != bottoms.size:
        raise DroughtError(
            f"vwc has {readings.shape[1]} layers but {bottoms.size} layer depths were given"
        )
    if bottoms.size == 0 or np.any(np.diff(bottoms) <= 0) or bottoms[0] <= 0:
        raise DroughtError("layer depths must be positive and increasing")
    try:
        fc = np.broadcast_to(np.asarray(field_capacity, dtype=float), readings.shape)
        sat = np.broadcast_to(np.asarray(saturation, dtype=float), readings.shape)
    except ValueError:
        raise DroughtError("field capacity or saturation does not match the vwc shape") from None
    if np.any(~(fc > 0)) or np.any(~(sat >= fc)):
        raise DroughtError("field capacity must be positive and not above saturation")
    rule = _stage_rule(stage, rules)
    layers = bottoms <= rule.depth_cm + 1e-9
    if not layers.any():
        raise DroughtError(
            f"no layer lies within the {rule.depth_cm:g} cm of stage {stage!s}; "
            f"the shallowest layer ends at {bottoms[0]:g} cm"
        )
    flagged = (readings < 0) | (readings > sat)
    usable = layers & ~flagged & ~np.isnan(readings)
    ratio = np.where(usable, readings / fc, 0.0)
    count = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(count > 0, rule.coefficient * ratio.sum(axis=1) / count * 100.0, np.nan)
    return RelativeMoisture(percent, flagged, int(layers.sum()), CropStage(stage))


def _stage_rule(stage: CropStage | str, rules: Mapping[CropStage, StageRule]) -> StageRule:
    try:
        return rules[CropStage(stage)]
    except (ValueError, KeyError):
        known = ", ".join(s.value for s in rules)
        raise DroughtError(f"crop stage {stage!r} is not one of: {known}") from None


def _grade(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    # searchsorted 'left': a value equal to a bound counts as not above it, so it takes the
    # drier grade, as "50 < R ≤ 60" puts 60 in 轻旱 and "R ≤ 30" puts 30 in 特旱.
    grade = bounds.size - np.searchsorted(bounds, arr, side="left")
    return np.where(np.isnan(arr), NOT_GRADED, grade).astype(np.int8)


def moisture_grade(percent: np.ndarray | float) -> np.ndarray:
    """GB/T 32136-2015 grade 0 (无旱) .. 4 (特旱) of relative moisture R (%); -1 for NaN.

    >>> moisture_grade(np.array([60.01, 60.0, 50.0, 40.0, 30.01, 30.0])).tolist()
    [0, 1, 2, 3, 3, 4]
    """
    return _grade(np.asarray(percent, dtype=float), _MOISTURE_BOUNDS)


def spi_grade(spi_values: np.ndarray | float) -> np.ndarray:
    """GB/T 20481-2017 meteorological drought grade 0 (无旱) .. 4 (特旱) of SPI; -1 for NaN.

    >>> spi_grade(np.array([-0.49, -0.5, -1.0, -1.5, -1.99, -2.0])).tolist()
    [0, 1, 2, 3, 3, 4]
    """
    return _grade(np.asarray(spi_values, dtype=float), _SPI_BOUNDS)


def spi(
    monthly_precip_mm: Sequence[float] | np.ndarray,
    scale_months: int,
    start_year: int,
    calibration: tuple[int, int] | None = None,
) -> np.ndarray:
    """Standardized precipitation index of monthly totals (climate-indices, gamma).

    Parameters
    ----------
    monthly_precip_mm
        Monthly totals from January of ``start_year`` on; NaN where missing.
    scale_months
        Accumulation period (1, 3, 6, 12, ...).
    calibration
        First and last year of the reference period (WMO recommends at least 30 years);
        default: the whole series.

    Returns
    -------
    numpy.ndarray
        SPI per month (NaN for the first ``scale_months - 1`` months), clipped by the library
        to ±3.09.
    """
    from climate_indices import compute, indices

    precip = np.asarray(monthly_precip_mm, dtype=float)
    if precip.ndim != 1 or precip.size < 24:
        raise DroughtError("SPI needs a one-dimensional series of at least 24 monthly totals")
    if np.any(precip[~np.isnan(precip)] < 0):
        raise DroughtError("monthly precipitation cannot be negative")
    if not 1 <= scale_months <= 72:
        raise DroughtError(f"SPI scale must be 1..72 months, got {scale_months}")
    last_year = start_year + (precip.size - 1) // 12
    first, final = calibration or (start_year, last_year)
    if not start_year <= first < final <= last_year:
        raise DroughtError(
            f"calibration {first}-{final} must lie within the series' {start_year}-{last_year}"
        )
    # the library logs each call at info level and warns on all-zero months (dry seasons)
    logging.getLogger("climate_indices").setLevel(logging.WARNING)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        values = indices.spi(
            precip,
            scale_months,
            indices.Distribution.gamma,
            start_year,
            first,
            final,
            compute.Periodicity.monthly,
        )
    return np.asarray(values, dtype=float)[: precip.size]


def idw(
    probe_x: np.ndarray,
    probe_y: np.ndarray,
    values: np.ndarray,
    grid_x: np.ndarray,
    grid_y: np.ndarray,
    power: float = 2.0,
    max_distance: float | None = None,
) -> np.ndarray:
    """Inverse distance weighted values at grid points (Shepard 1968), vectorized.

    A grid point on a probe takes the probe's value; with ``max_distance`` only probes within
    it count, and a point with none is NaN. Probes with NaN values are ignored.
    """
    px, py, pv = (np.asarray(a, dtype=float).ravel() for a in (probe_x, probe_y, values))
    if not px.size == py.size == pv.size:
        raise DroughtError("probe x, y and values differ in length")
    keep = ~np.isnan(pv)
    px, py, pv = px[keep], py[keep], pv[keep]
    if px.size == 0:
        raise DroughtError("no probe has a value to interpolate")
    if power <= 0:
        raise DroughtError(f"IDW power must be positive, got {power}")
    gx = np.asarray(grid_x, dtype=float)
    gy = np.asarray(grid_y, dtype=float)
    flat_x, flat_y = gx.ravel(), gy.ravel()
    out = np.empty(flat_x.size)
    # chunks keep the (points × probes) distance matrix within a few tens of MB
    step = max(1, 2_000_000 // px.size)
    for start in range(0, flat_x.size, step):
        sl = slice(start, start + step)
        dist = np.hypot(flat_x[sl, None] - px, flat_y[sl, None] - py)
        with np.errstate(divide="ignore"):
            weight = dist**-power
        if max_distance is not None:
            weight[dist > max_distance] = 0.0
        exact = dist == 0
        hit = exact.any(axis=1)
        weight[hit] = exact[hit].astype(float)
        total = weight.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sl] = np.where(total > 0, weight @ pv / total, np.nan)
    return out.reshape(gx.shape)


@dataclass(frozen=True)
class DroughtMap:
    """Gridded relative moisture and grades over cropland, with areas by district and grade."""

    moisture: np.ndarray  # R %, NaN off cropland
    grade: np.ndarray  # 0..4, -1 off cropland or without a probe in reach
    transform: Affine
    areas: pd.DataFrame  # district x grade name, km²; graded_km2, mean_percent, grade
    district: np.ndarray  # index into ``areas`` of each cell's district, -1 outside them
    standard: str = AGRICULTURAL_STANDARD

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of every cell's centre, in the grid's metric CRS."""
        rows, cols = self.grade.shape
        col_idx, row_idx = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
        t = self.transform
        return t.c + t.a * col_idx + t.b * row_idx, t.f + t.d * col_idx + t.e * row_idx


def zone_areas(
    zone: np.ndarray,
    names: Sequence[str],
    grade: np.ndarray,
    moisture: np.ndarray,
    cell_area_m2: float,
) -> pd.DataFrame:
    """km² of each grade per zone, the graded total, the mean R and the grade of that mean.

    ``zone`` holds each cell's index into ``names`` (-1: no zone). A zone's grade is the
    GB/T 32136 grade of its cells' mean relative moisture (the area-weighted mean, cells being
    equal), -1 for a zone without graded cells.

    >>> a = zone_areas(np.array([0, 0, 1, -1]), ["a", "b"], np.array([0, 2, 1, 0]),
    ...                np.array([70.0, 45.0, 55.0, 80.0]), 1e6)
    >>> a["中旱"].tolist(), a["mean_percent"].tolist(), a["grade"].tolist()
    ([1.0, 0.0], [57.5, 55.0], [1, 1])
    """
    n = len(names)
    graded = (grade >= 0) & (zone >= 0)
    z = zone[graded].astype(np.int64)
    # one bincount over (zone, grade) pairs instead of a loop over zones
    pair = z * len(GRADE_NAMES) + grade[graded]
    counts = np.bincount(pair, minlength=n * len(GRADE_NAMES)).reshape(n, len(GRADE_NAMES))
    areas = pd.DataFrame(counts * cell_area_m2 / 1e6, index=list(names), columns=list(GRADE_NAMES))
    areas.index.name = "zone"
    areas["graded_km2"] = areas.sum(axis=1)
    cells = np.bincount(z, minlength=n)
    total = np.bincount(z, weights=moisture[graded], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cells > 0, total / cells, np.nan)
    areas["mean_percent"] = mean
    areas["grade"] = moisture_grade(mean)
    return areas


def nearest_in_zone(
    x: np.ndarray,
    y: np.ndarray,
    zone: np.ndarray,
    site_x: np.ndarray,
    site_y: np.ndarray,
    site_zone: np.ndarray,
) -> np.ndarray:
    """Index of the nearest site in the same zone for each point (-1 where the zone has none).

    Splits a district's cells among its towns (each cell to the closest town seat of its
    district), the usual way to report by town when only the seats' points are known.

    >>> nearest_in_zone(np.array([0.0, 9.0, 8.6]), np.zeros(3), np.array([0, 0, 1]),
    ...                 np.array([1.0, 10.0, 8.0]), np.zeros(3), np.array([0, 1, 1])).tolist()
    [0, 0, 2]
    """
    from scipy.spatial import cKDTree

    out = np.full(np.shape(x), -1, dtype=np.int64)
    sx, sy, sz = (np.asarray(a) for a in (site_x, site_y, site_zone))
    for z in np.unique(sz):
        mine = np.flatnonzero(sz == z)
        cells = zone == z
        if not cells.any():
            continue
        _, k = cKDTree(np.column_stack([sx[mine], sy[mine]])).query(
            np.column_stack([x[cells], y[cells]])
        )
        out[cells] = mine[k]
    return out


def drought_map(
    probe_x: np.ndarray,
    probe_y: np.ndarray,
    probe_percent: np.ndarray,
    transform: Affine,
    shape: tuple[int, int],
    cropland: Iterable[BaseGeometry],
    districts: Mapping[str, BaseGeometry],
    power: float = 2.0,
    max_distance: float | None = None,
) -> DroughtMap:
    """Interpolate, mask to cropland, grade each cell and sum areas per district and grade.

    Parameters
    ----------
    probe_x, probe_y, probe_percent
        Probe positions (same projected, metric CRS as ``transform``) and relative moisture R.
    transform, shape
        The grid: an affine transform in metres and ``(rows, cols)``.
    cropland
        Cropland polygons; only cells whose centre falls in one are graded.
    districts
        District code or name to polygon; each cell counts for the district its centre is in.

    Returns
    -------
    DroughtMap
        ``areas`` (see :func:`zone_areas`) has one row per district and one column per grade
        name (km²), plus ``graded_km2``, ``mean_percent`` and ``grade``; cell area is
        ``|a × e|`` of the transform.
    """
    rows, cols = shape
    if rows <= 0 or cols <= 0:
        raise DroughtError(f"grid shape must be positive, got {shape}")
    cell_area_m2 = abs(transform.a * transform.e)
    if abs(transform.a) < 1.0 or abs(transform.e) < 1.0:
        raise DroughtError("the grid transform must be in metres (a cell under 1 m wide?)")
    col_idx, row_idx = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    cx = transform.c + transform.a * col_idx + transform.b * row_idx
    cy = transform.f + transform.d * col_idx + transform.e * row_idx
    moisture = idw(probe_x, probe_y, probe_percent, cx, cy, power, max_distance)
    crops = [g for g in cropland if g is not None and not g.is_empty]
    on_crops = (
        features.rasterize(
            ((g, 1) for g in crops), out_shape=shape, transform=transform, fill=0
        ).astype(bool)
        if crops
        else np.zeros(shape, dtype=bool)
    )
    moisture = np.where(on_crops, moisture, np.nan)
    grade = moisture_grade(moisture)
    names = list(districts)
    zone = (
        features.rasterize(
            ((geom, i + 1) for i, geom in enumerate(districts.values())),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
        )
        if names
        else np.zeros(shape, dtype=np.int32)
    ) - 1
    areas = zone_areas(zone, names, grade, moisture, cell_area_m2)
    areas.index.name = "district"
    return DroughtMap(moisture, grade, transform, areas, zone)


def extraterrestrial_radiation(latitude_deg: float, day_of_year: np.ndarray) -> np.ndarray:
    """Daily extraterrestrial radiation Ra, MJ m⁻² day⁻¹ (FAO-56 eqs. 21-25).

    >>> round(float(extraterrestrial_radiation(-20.0, np.array([246]))[0]), 1)  # FAO-56 ex. 8
    32.2
    """
    if not -90 < latitude_deg < 90:
        raise DroughtError(f"latitude must be within (-90, 90), got {latitude_deg}")
    doy = np.asarray(day_of_year, dtype=float)
    phi = np.radians(latitude_deg)
    dr = 1 + 0.033 * np.cos(2 * np.pi / 365 * doy)
    decl = 0.409 * np.sin(2 * np.pi / 365 * doy - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    gsc = 0.0820  # solar constant, MJ m⁻² min⁻¹
    return (
        24
        * 60
        / np.pi
        * gsc
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )


def hargreaves_et0(
    tmin_c: np.ndarray, tmax_c: np.ndarray, latitude_deg: float, day_of_year: np.ndarray
) -> np.ndarray:
    """Reference evapotranspiration, mm/day, by Hargreaves and Samani (1985), FAO-56 eq. 52.

    ``ET0 = 0.0023 (Tmean + 17.8) (Tmax - Tmin)^0.5 × 0.408 Ra``, Tmean the mean of Tmax and
    Tmin. Needs only temperature, which is why it suits a forecast; FAO-56 notes it may
    over-predict in humid and under-predict in windy dry conditions.
    """
    tmin = np.asarray(tmin_c, dtype=float)
    tmax = np.asarray(tmax_c, dtype=float)
    if np.any(tmax < tmin):
        raise DroughtError("a day's maximum temperature is below its minimum")
    ra_mm = 0.408 * extraterrestrial_radiation(latitude_deg, day_of_year)
    return 0.0023 * ((tmax + tmin) / 2 + 17.8) * np.sqrt(tmax - tmin) * ra_mm


@dataclass(frozen=True)
class Outlook:
    """Relative moisture and grade per probe and day, and where the grade changes."""

    percent: np.ndarray  # (probes, days)
    grade: np.ndarray  # (probes, days)
    et0_mm: np.ndarray  # (days,)
    changed: np.ndarray  # (probes, days) bool: grade differs from the day before
    worsening: np.ndarray  # (probes,) bool: the last day is drier than today


def outlook(
    percent_today: np.ndarray,
    field_capacity_vwc: np.ndarray | float,
    root_depth_mm: float,
    rain_mm: Sequence[float],
    tmin_c: Sequence[float],
    tmax_c: Sequence[float],
    latitude_deg: float,
    first_day_of_year: int,
    crop_coefficient: float = 1.0,
    stage_coefficient: float = 1.0,
) -> Outlook:
    """Daily soil water outlook (typically 7 days) from a forecast of rain and temperature.

    A bucket (Manabe 1969): storage ``W`` (mm) of the root zone, full at field capacity
    ``W_fc = f_c × depth``. Each day rain fills it, water above field capacity drains away,
    and evapotranspiration ``ET = Kc × ET0 × min(1, W / (0.75 W_fc))`` empties it. The
    relative moisture is ``W / W_fc × 100``; grades use ``stage_coefficient × R``.

    Parameters
    ----------
    percent_today
        Relative moisture R (%) per probe today (without the stage coefficient).
    field_capacity_vwc
        Field capacity as a volume fraction (0..1), per probe or one value.
    root_depth_mm
        Depth of the root zone the probes stand for.
    rain_mm, tmin_c, tmax_c
        The forecast, one value a day.
    """
    r0 = np.atleast_1d(np.asarray(percent_today, dtype=float))
    rain = np.asarray(rain_mm, dtype=float)
    days = rain.size
    if days == 0 or len(tmin_c) != days or len(tmax_c) != days:
        raise DroughtError("rain, tmin and tmax must have one value a day, at least one day")
    if np.any(rain < 0):
        raise DroughtError("forecast rain cannot be negative")
    if root_depth_mm <= 0:
        raise DroughtError(f"root depth must be positive, got {root_depth_mm}")
    fc = np.broadcast_to(np.asarray(field_capacity_vwc, dtype=float), r0.shape)
    if np.any(~((fc > 0) & (fc < 1))):
        raise DroughtError("field capacity must be a volume fraction between 0 and 1")
    if np.any(r0[~np.isnan(r0)] < 0):
        raise DroughtError("relative moisture cannot be negative")
    doy = (first_day_of_year - 1 + np.arange(days)) % 365 + 1
    et0 = hargreaves_et0(np.asarray(tmin_c), np.asarray(tmax_c), latitude_deg, doy)
    w_fc = fc * root_depth_mm
    storage = np.minimum(r0 / 100.0 * w_fc, w_fc)
    percent = np.empty((r0.size, days))
    for day in range(days):  # each day depends on the one before
        storage = np.minimum(storage + rain[day], w_fc)
        beta = np.minimum(1.0, storage / (0.75 * w_fc))
        storage = np.maximum(storage - crop_coefficient * et0[day] * beta, 0.0)
        percent[:, day] = storage / w_fc * 100.0
    grade = moisture_grade(stage_coefficient * percent)
    before = np.concatenate([moisture_grade(stage_coefficient * r0)[:, None], grade[:, :-1]], 1)
    changed = grade != before
    return Outlook(percent, grade, et0, changed, grade[:, -1] > before[:, 0])
