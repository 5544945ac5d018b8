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
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

__all__ = [
    "FloodPlain",
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


@dataclass(frozen=True)
class FloodPlain:
    """The cells any allowed stage can wet, indexed once per prepared DEM, so a scenario
    touches only them (the same depths as :func:`fluvial_depth`).

    A cell can be wet only if it drains to a reach and its HAND is at most the highest stage
    allowed; on a city DEM that is a fraction of the grid, and its wet part a smaller one.
    """

    shape: tuple[int, int]
    index: npt.NDArray[np.int32]  # flat cell index, by reach then HAND
    hand: npt.NDArray[np.float32]
    stream: npt.NDArray[np.bool_]  # the cell is a stream cell of a reach (seeds wetness)
    reaches: npt.NDArray[np.int32]  # reach ids, ascending
    starts: npt.NDArray[np.int64]  # where each reach's cells begin (and end: one more)

    @classmethod
    def build(
        cls,
        hand: npt.NDArray[np.floating],
        drain: npt.NDArray[np.integer],
        reach_of_cell: npt.NDArray[np.integer],
        max_stage_m: float,
    ) -> FloodPlain:
        if not hand.shape == drain.shape == reach_of_cell.shape:
            raise InundationError("HAND, drain and reach rasters must have the same shape")
        d = drain.ravel()
        flat_reach = reach_of_cell.ravel()
        with np.errstate(invalid="ignore"):
            low = (hand.ravel() <= max_stage_m) & (d >= 0)
        index = np.flatnonzero(low)
        reach = flat_reach[d[index]].astype(np.int32)
        keep = reach != 0
        index, reach = index[keep], reach[keep]
        cell_hand = hand.ravel()[index].astype(np.float32)
        # By reach, then HAND: a stage wets a prefix of its reach's cells.
        order = np.lexsort((cell_hand, reach))
        index, reach, cell_hand = index[order], reach[order], cell_hand[order]
        reaches, starts = np.unique(reach, return_index=True)
        return cls(
            (int(hand.shape[0]), int(hand.shape[1])),
            index.astype(np.int32),
            cell_hand,
            flat_reach[index] != 0,
            reaches.astype(np.int32),
            np.append(starts, index.size).astype(np.int64),
        )

    def depth(
        self, stage_by_reach: dict[int, float]
    ) -> tuple[npt.NDArray[np.float32], tuple[int, int, int, int]]:
        """Depth grid (m) and the window ``(row0, row1, col0, col1)`` holding every wet cell."""
        if any(not np.isfinite(v) or v < 0 for v in stage_by_reach.values()):
            raise InundationError("stages must be finite and >= 0 m above the bed")
        out = np.zeros(self.shape, dtype=np.float32)
        parts, depths = [], []
        for reach_id, level in stage_by_reach.items():
            k = int(np.searchsorted(self.reaches, reach_id))
            if k == self.reaches.size or self.reaches[k] != reach_id:
                continue  # a reach with no cells that can be wet
            lo, hi = self.starts[k], self.starts[k + 1]
            n_wet = int(np.searchsorted(self.hand[lo:hi], level, side="left"))
            parts.append(np.arange(lo, lo + n_wet))
            depths.append(level - self.hand[lo : lo + n_wet])
        wet = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if wet.size == 0:
            return out, (0, 0, 0, 0)
        depth = np.concatenate(depths).astype(np.float32)
        joined_depth_of = depth  # aligned with ``wet``
        width = self.shape[1]
        rows, cols = np.divmod(self.index[wet].astype(np.int64), width)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        grid = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        grid[rows - r0, cols - c0] = True
        labels, n = ndimage.label(grid, structure=_EIGHT)
        cell_label = labels[rows - r0, cols - c0]
        seeded = np.zeros(n + 1, dtype=bool)
        seeded[cell_label[self.stream[wet]]] = True
        seeded[0] = False
        joined = seeded[cell_label]
        out.ravel()[self.index[wet[joined]]] = joined_depth_of[joined]
        if not joined.any():
            return out, (0, 0, 0, 0)
        rows, cols = rows[joined], cols[joined]
        return out, (
            int(rows.min()),
            int(rows.max()) + 1,
            int(cols.min()),
            int(cols.max()) + 1,
        )


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
