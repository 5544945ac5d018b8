"""Inundation depth from HAND and a stage per reach, ponding in depressions, and what is hit.

Fluvial: a cell is wet at depth ``stage(reach) - HAND`` when that is positive and the cell
is 8-connected through wet cells to a stream cell of a reach with a stage (no isolated
"wet" hollows behind a ridge). The reach of a cell is the reach of the stream cell it
drains to (``drain`` from :func:`apps.flood.hydrology.height_above_nearest_drainage`).

Pluvial (rain-on-grid ponding): each depression (connected cells where the filled DEM is
above the original) receives the rain that falls on the cells draining into it,
``rain × contributing cells × cell area``; its water level is raised until the stored
volume equals that, never above the spill level (the filled surface). Infiltration and
the overflow onward to the next depression are ignored: a screening estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

__all__ = [
    "InundationError",
    "affected_pois",
    "affected_population",
    "flooded_polygons",
    "flooded_roads",
    "fluvial_depth",
    "ponding_depth",
]

_EIGHT = np.ones((3, 3), dtype=bool)


class InundationError(ValueError):
    """Inputs of different shapes, or stages that make no sense."""


def fluvial_depth(
    hand: npt.NDArray[np.floating],
    drain: npt.NDArray[np.integer],
    reach_of_cell: npt.NDArray[np.integer],
    stage_by_reach: dict[int, float],
) -> npt.NDArray[np.float32]:
    """Water depth (m) from HAND and a stage height (m above the channel bed) per reach.

    Parameters
    ----------
    hand, drain
        HAND and the flat index of each cell's drainage stream cell (-1 if none).
    reach_of_cell
        Reach id of each stream cell (0 off the streams).
    stage_by_reach
        Stage height above the bed per reach id; reaches not listed stay dry.
    """
    if not hand.shape == drain.shape == reach_of_cell.shape:
        raise InundationError("HAND, drain and reach rasters must have the same shape")
    if any(not np.isfinite(v) or v < 0 for v in stage_by_reach.values()):
        raise InundationError("stages must be finite and >= 0 m above the bed")
    ids = np.array(sorted(stage_by_reach), dtype=np.int64)
    levels = np.array([stage_by_reach[i] for i in ids], dtype=np.float64)
    flat_reach = reach_of_cell.ravel()
    d = drain.ravel()
    reach = np.where(d >= 0, flat_reach[np.maximum(d, 0)], 0).reshape(hand.shape)
    pos = np.searchsorted(ids, reach)
    known = (pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == reach) & (reach != 0)
    stage = np.where(known, levels[np.minimum(pos, ids.size - 1)], np.nan)
    with np.errstate(invalid="ignore"):
        depth = stage - hand
        wet = depth > 0
    labels, _ = ndimage.label(wet, structure=_EIGHT)
    seeded = np.unique(labels[(reach_of_cell != 0) & wet])
    connected = np.isin(labels, seeded[seeded > 0])
    return np.where(connected, depth, 0.0).astype(np.float32)


def ponding_depth(
    dem: npt.NDArray[np.floating],
    filled: npt.NDArray[np.floating],
    contributing_cells: npt.NDArray[np.floating],
    rain_mm: float,
    cell_area_m2: float,
) -> npt.NDArray[np.float32]:
    """Depth (m) of rain ponded in depressions (module docstring for the method).

    ``contributing_cells`` is the flow accumulation on the *unfilled* drainage into each
    depression; the maximum inside a depression is taken as its catchment.
    """
    if not dem.shape == filled.shape == contributing_cells.shape:
        raise InundationError("DEM, filled DEM and accumulation must have the same shape")
    if rain_mm < 0 or cell_area_m2 <= 0:
        raise InundationError("rain must be >= 0 mm and the cell area positive")
    capacity = np.asarray(filled, dtype=np.float64) - dem
    labels, n = ndimage.label(capacity > 0, structure=_EIGHT)
    out = np.zeros(dem.shape, dtype=np.float32)
    if n == 0 or rain_mm == 0:
        return out
    volume_in = (
        np.asarray(ndimage.maximum(contributing_cells, labels, np.arange(1, n + 1)))
        * rain_mm
        / 1000.0
        * cell_area_m2
    )
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels[sl] == lab
        bed = np.sort(dem[sl][inside].astype(np.float64))
        spill = float(filled[sl][inside].max())
        # volume below level L over the sorted beds: Σ (L - z_i) for z_i < L; piecewise linear
        k = np.arange(1, bed.size + 1)
        stored_at = (k * bed - np.cumsum(bed)) * cell_area_m2  # volume when L = bed[k-1]
        want = volume_in[lab - 1]
        j = int(np.searchsorted(stored_at, want, side="right"))
        level = bed[j - 1] + (want - stored_at[j - 1]) / (j * cell_area_m2)
        level = min(level, spill)
        out[sl][inside] = np.maximum(level - dem[sl][inside], 0.0)
    return out


def flooded_polygons(
    depth: npt.NDArray[np.floating], transform: Affine, min_depth_m: float = 0.0
) -> list[BaseGeometry]:
    """Polygons of cells deeper than ``min_depth_m``."""
    wet = (np.nan_to_num(depth) > min_depth_m).astype(np.uint8)
    return [
        shapely.geometry.shape(g)
        for g, v in shapes(wet, wet.astype(bool), transform=transform)
        if v
    ]


def affected_population(
    depth: npt.NDArray[np.floating], population: npt.NDArray[np.floating], min_depth_m: float = 0.0
) -> float:
    """People on cells deeper than ``min_depth_m`` (population grid on the same cells)."""
    if depth.shape != population.shape:
        raise InundationError("depth and population grids must have the same shape")
    return float(population[np.nan_to_num(depth) > min_depth_m].sum())


def affected_pois(
    points: Sequence[BaseGeometry], flooded: Sequence[BaseGeometry]
) -> npt.NDArray[np.bool_]:
    """Whether each point of interest lies in (or on the edge of) a flooded polygon."""
    if not flooded:
        return np.zeros(len(points), dtype=bool)
    tree = shapely.STRtree(list(flooded))
    hit = tree.query(list(points), predicate="intersects")
    out = np.zeros(len(points), dtype=bool)
    out[hit[0]] = True
    return out


def flooded_roads(
    roads: Sequence[BaseGeometry],
    depth: npt.NDArray[np.floating],
    transform: Affine,
    threshold_m: float = 0.3,
    step_m: float | None = None,
) -> npt.NDArray[np.bool_]:
    """Whether each road line has a point under more than ``threshold_m`` of water.

    Roads are sampled every ``step_m`` (default: half a cell) and read from the depth grid.
    """
    step = step_m or abs(transform.a) / 2
    h, w = depth.shape
    inv = ~transform
    out = np.zeros(len(roads), dtype=bool)
    for i, road in enumerate(roads):
        dist = np.arange(0.0, road.length + step, step)
        xy = shapely.get_coordinates(shapely.line_interpolate_point(road, dist))
        col, row = inv @ (xy[:, 0], xy[:, 1])
        r, c = np.floor(row).astype(int), np.floor(col).astype(int)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out[i] = bool((np.nan_to_num(depth[r[ok], c[ok]]) > threshold_m).any())
    return out
