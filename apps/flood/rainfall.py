"""Rainfall surfaces from gauge accumulations: IDW, Thiessen polygons, ordinary kriging;
isohyets; areal rainfall per polygon.

Gauges are given as metric coordinates (e.g. EPSG:4547) and rain depths in mm over one
window. A surface is a float32 grid on an affine transform (row 0 north).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import contourpy
import numba
import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from rasterio.features import geometry_mask
from shapely.geometry.base import BaseGeometry

__all__ = [
    "GaugeError",
    "RainSurface",
    "areal_rainfall",
    "idw",
    "isohyets",
    "kriging",
    "rain_surface",
    "thiessen",
    "thiessen_areal",
]

Method = Literal["kriging", "idw", "thiessen"]


class GaugeError(ValueError):
    """Gauge inputs that cannot make a surface (shapes, NaN, negative rain)."""


@dataclass(frozen=True)
class RainSurface:
    """A rain grid and how it was made (``method`` may differ from what was asked)."""

    depth_mm: npt.NDArray[np.float32]
    transform: Affine
    method: str
    notes: list[str] = field(default_factory=list)


def _gauges(x: npt.ArrayLike, y: npt.ArrayLike, mm: npt.ArrayLike) -> tuple[np.ndarray, ...]:
    gx, gy, gz = (np.asarray(v, dtype=np.float64).ravel() for v in (x, y, mm))
    if not (gx.size == gy.size == gz.size):
        raise GaugeError(f"gauge x, y and mm differ in length: {gx.size}, {gy.size}, {gz.size}")
    if gx.size == 0:
        raise GaugeError("no gauges given")
    if not (np.isfinite(gx).all() and np.isfinite(gy).all() and np.isfinite(gz).all()):
        raise GaugeError("gauge coordinates and rain must be finite numbers")
    if (gz < 0).any():
        raise GaugeError(f"negative rain at gauge(s) {np.flatnonzero(gz < 0).tolist()}")
    return gx, gy, gz


def _centres(transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    cols = np.arange(shape[1]) + 0.5
    rows = np.arange(shape[0]) + 0.5
    xs = transform.c + cols * transform.a
    ys = transform.f + rows * transform.e
    return xs, ys


def idw(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    mm: npt.ArrayLike,
    transform: Affine,
    shape: tuple[int, int],
    *,
    power: float = 2.0,
) -> npt.NDArray[np.float32]:
    """Inverse-distance weighting (Shepard 1968), exact at gauges; row blocks bound memory."""
    gx, gy, gz = _gauges(x, y, mm)
    xs, ys = _centres(transform, shape)
    out = np.empty(shape, dtype=np.float32)
    step = max(1, 2_000_000 // max(shape[1] * gx.size, 1))
    for r0 in range(0, shape[0], step):
        yy = ys[r0 : r0 + step, None, None]
        d2 = (xs[None, :, None] - gx) ** 2 + (yy - gy) ** 2
        with np.errstate(divide="ignore"):
            wgt = d2 ** (-power / 2.0)
        hit = d2 == 0.0
        # a cell centre on a gauge takes the gauge's value exactly
        wgt = np.where(hit.any(axis=-1, keepdims=True), hit.astype(np.float64), wgt)
        out[r0 : r0 + step] = (wgt @ gz) / wgt.sum(axis=-1)
    return out


def thiessen(x: npt.ArrayLike, y: npt.ArrayLike, boundary: BaseGeometry) -> list[BaseGeometry]:
    """Thiessen (Voronoi) polygon of each gauge, clipped to ``boundary``, in gauge order."""
    gx, gy, _ = _gauges(x, y, np.zeros(np.size(x)))
    points = shapely.points(gx, gy)
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=boundary)
    parts = np.asarray(shapely.get_parts(cells))
    # voronoi_polygons does not keep input order: match each polygon to the gauge inside it
    owner = shapely.STRtree(parts).query(points, predicate="intersects")
    out: list[BaseGeometry] = [shapely.Polygon()] * gx.size
    for g, p in zip(owner[0], owner[1], strict=True):
        out[g] = shapely.intersection(parts[p], boundary)
    return out


def thiessen_areal(
    x: npt.ArrayLike, y: npt.ArrayLike, mm: npt.ArrayLike, area: BaseGeometry
) -> float:
    """Areal rain over ``area`` by Thiessen weights: Σ mm_i × |cell_i ∩ area| / |area|."""
    _, _, gz = _gauges(x, y, mm)
    cells = thiessen(x, y, area)
    weights = shapely.area(np.asarray(cells, dtype=object))
    return float(weights @ gz / weights.sum())


@numba.njit(cache=True)
def _spherical_grid(
    dx2: np.ndarray, dy2: np.ndarray, weights: np.ndarray, psill: float, rng: float, nugget: float
) -> np.ndarray:  # pragma: no cover - jitted
    """Σ_i w_i · (-γ(d_i)) + w_n per cell, γ spherical; d from per-gauge squared offsets."""
    n, cols = dx2.shape
    rows = dy2.shape[1]
    out = np.empty((rows, cols), dtype=np.float64)
    rng2 = rng * rng
    sill = psill + nugget
    for r in range(rows):
        for c in range(cols):
            acc = weights[n]
            for i in range(n):
                d2 = dx2[i, c] + dy2[i, r]
                if d2 >= rng2:  # beyond the range: the sill, no square root needed
                    acc -= weights[i] * sill
                elif d2 <= 1e-20:
                    continue  # on a gauge: pykrige's exact match, γ = 0
                else:
                    h = math.sqrt(d2) / rng
                    acc -= weights[i] * (psill * (1.5 * h - 0.5 * h * h * h) + nugget)
            out[r, c] = acc
    return out


def kriging(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    mm: npt.ArrayLike,
    transform: Affine,
    shape: tuple[int, int],
    *,
    variogram_model: str = "spherical",
) -> tuple[npt.NDArray[np.float32], dict[str, float]]:
    """Ordinary kriging with a variogram fitted to the gauges (pykrige); negatives clipped.

    pykrige fits the variogram; the estimate is pykrige's ordinary-kriging system solved once
    instead of per cell: with A the (n+1)² kriging matrix (-γ between gauges, 0 on its
    diagonal, bordered by ones) and b(p) = [-γ(|p - x_i|); 1], the estimate Zᵀ (A⁻¹ b)[:n]
    equals cᵀ b(p) with c = A⁻ᵀ [Z; 0], so a grid is one pass over cells × gauges.
    Returns the grid and the fitted variogram parameters.
    """
    from pykrige.ok import OrdinaryKriging
    from scipy.linalg import inv

    gx, gy, gz = _gauges(x, y, mm)
    ok = OrdinaryKriging(gx, gy, gz, variogram_model=variogram_model, nlags=6)
    xs, ys = _centres(transform, shape)
    vparams = [float(v) for v in ok.variogram_model_parameters]
    n = gz.size
    d = np.hypot(gx[:, None] - gx[None, :], gy[:, None] - gy[None, :])
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = -ok.variogram_function(ok.variogram_model_parameters, d)
    np.fill_diagonal(a, 0.0)
    a[n, :n] = a[:n, n] = 1.0
    weights = inv(a).T @ np.append(gz, 0.0)
    dx2 = (xs[None, :] - gx[:, None]) ** 2
    dy2 = (ys[None, :] - gy[:, None]) ** 2
    if variogram_model == "spherical":
        psill, rng, nugget = vparams
        z = _spherical_grid(dx2, dy2, weights, psill, rng, nugget)
    else:  # other models: the same product, in numpy row blocks
        z = np.empty(shape)
        for r in range(shape[0]):
            dist = np.sqrt(dx2 + dy2[:, r : r + 1])
            gamma = ok.variogram_function(ok.variogram_model_parameters, dist)
            gamma[dist <= 1e-10] = 0.0
            z[r] = weights[n] - weights[:n] @ gamma
    params = dict(zip(("sill", "range", "nugget"), vparams, strict=False))
    if variogram_model == "spherical":
        params["sill"] += params["nugget"]  # pykrige reports the partial sill
    return np.clip(z, 0.0, None).astype(np.float32), params


def rain_surface(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    mm: npt.ArrayLike,
    transform: Affine,
    shape: tuple[int, int],
    *,
    method: Method = "kriging",
) -> RainSurface:
    """The surface by ``method``, falling back when the gauges cannot support it.

    No rain anywhere gives a zero grid (method ``"none"``); fewer than 3 gauges cannot
    fit a variogram, so kriging falls back to IDW; a kriging solve that fails (e.g. all
    gauges equal, a singular system) falls back to IDW too. ``notes`` says why.
    """
    gx, gy, gz = _gauges(x, y, mm)
    if not (gz > 0).any():
        return RainSurface(
            np.zeros(shape, dtype=np.float32), transform, "none", ["no rain at any gauge"]
        )
    notes: list[str] = []
    if method == "kriging":
        if gz.size < 3:
            notes.append(f"kriging needs >= 3 gauges, {gz.size} reported: used IDW")
        elif np.ptp(gz) == 0:
            notes.append("all gauges report the same rain: no variogram to fit, used IDW")
        else:
            try:
                grid, params = kriging(gx, gy, gz, transform, shape)
            except (np.linalg.LinAlgError, ValueError) as exc:
                notes.append(f"kriging failed ({exc}): used IDW")
            else:
                notes.append(
                    "spherical variogram: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items())
                )
                return RainSurface(grid, transform, "kriging", notes)
        return RainSurface(idw(gx, gy, gz, transform, shape), transform, "idw", notes)
    if method == "idw":
        return RainSurface(idw(gx, gy, gz, transform, shape), transform, "idw", notes)
    if method == "thiessen":
        xs, ys = _centres(transform, shape)
        xx, yy = np.meshgrid(xs, ys)
        d2 = (xx[..., None] - gx) ** 2 + (yy[..., None] - gy) ** 2
        return RainSurface(gz[np.argmin(d2, axis=-1)].astype(np.float32), transform, "thiessen")
    raise GaugeError(f"unknown rain surface method {method!r}: kriging, idw or thiessen")


def isohyets(
    surface: RainSurface, levels: npt.ArrayLike
) -> tuple[list[BaseGeometry], list[BaseGeometry]]:
    """Isohyet lines at ``levels`` and filled bands between consecutive levels (contourpy).

    Returns ``(lines, bands)`` in map coordinates: ``lines[i]`` a MultiLineString at
    ``levels[i]``, ``bands[i]`` a MultiPolygon of ``levels[i] <= rain < levels[i+1]``.
    """
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size < 2 or (np.diff(lv) <= 0).any():
        raise GaugeError("isohyet levels must be at least two, strictly increasing")
    h, w = surface.depth_mm.shape
    xs, ys = _centres(surface.transform, (h, w))
    gen = contourpy.contour_generator(
        xs,
        ys,
        surface.depth_mm,
        line_type=contourpy.LineType.Separate,
        fill_type=contourpy.FillType.OuterOffset,
    )
    lines = [shapely.MultiLineString([ln for ln in gen.lines(v) if len(ln) >= 2]) for v in lv]
    bands: list[BaseGeometry] = []
    for lo, hi in itertools.pairwise(lv):
        polys = []
        points, offsets = gen.filled(lo, hi)[:2]  # OuterOffset: (points, offsets)
        for pts, offs in zip(points, offsets, strict=True):
            ring_ends = np.asarray(offs, dtype=np.int64)
            rings = [np.asarray(pts)[a:b] for a, b in itertools.pairwise(ring_ends)]
            polys.append(shapely.Polygon(rings[0], rings[1:]))
        bands.append(shapely.MultiPolygon(polys))
    return lines, bands


def areal_rainfall(surface: RainSurface, areas: Sequence[BaseGeometry]) -> npt.NDArray[np.float64]:
    """Mean rain (mm) of the grid cells whose centres fall inside each polygon.

    A polygon smaller than a cell takes the cell under its centroid, so none comes back
    empty unless it lies off the grid (NaN then).
    """
    h, w = surface.depth_mm.shape
    out = np.full(len(areas), np.nan)
    inv = ~surface.transform
    for i, area in enumerate(areas):
        inside = ~geometry_mask([area], (h, w), surface.transform, all_touched=False)
        if inside.any():
            out[i] = float(surface.depth_mm[inside].mean())
            continue
        c, r = inv @ (area.centroid.x, area.centroid.y)
        if 0 <= r < h and 0 <= c < w:
            out[i] = float(surface.depth_mm[int(r), int(c)])
    return out
