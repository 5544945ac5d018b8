"""Terrain: deterministic refinement of a coarse real DEM, and relief tiles for web maps.

The only elevation that ships offline is coarse (NOAA ETOPO1 at 0.1°, about 11 km). ``refine_dem``
turns it into a 30–90 m DEM in a metric CRS that stays true to the real grid at its own scale:

1. the real heights are interpolated with a cubic spline (scipy), so averaging the result back to
   the coarse cells gives the real values again (a block-mean correction closes the gap left by
   spline smoothing and by the added detail);
2. seeded fractal detail (value noise on a hashed, rotated lattice; fBm blended with ridged noise
   in the mountains) is added, its amplitude growing with height above the local floor, so
   plains stay flat and mountains get ridges; the lattice is anchored to projected coordinates,
   so the same place gets the same detail whatever the output bounds or resolution;
3. a dendritic valley network is cut into it (drainage found by priority flood on a ~250 m
   grid, incision growing with drained area, graded to the local base level);
4. valleys are carved along given real river lines: every channel descends monotonically
   downstream (a minimum gradient through the whole network, tributaries included) and lies
   below the terrain across it, with a smooth cross-section that widens where the cut is deep.

The result is a *refinement*, not a survey: say so wherever it is shown (the GeoTIFF tags do).

``render_tile`` serves XYZ / WebMercatorQuad PNG tiles (hillshade, hypsometric tint or both) from
such a DEM; ``ReliefTileStore`` keeps rendered tiles on disk.

Examples
--------
>>> refine_dem("etopo1_window.tif", "dem90.tif", rivers=lines)  # doctest: +SKIP
>>> png = render_tile("dem90.tif", 10, 834, 408, style="shaded_relief")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import heapq
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from scipy import ndimage, sparse
from shapely.geometry import LineString, MultiLineString, box
from shapely.geometry.base import BaseGeometry

from gis_core import tilematrix
from gis_core.plane import M_PER_DEG_LON_EQUATOR
from gis_core.tilematrix import TileOutOfRange

__all__ = [
    "DEFAULT_RAMP",
    "NODATA",
    "STYLES",
    "ReliefTileStore",
    "TileOutOfRange",
    "clear_dataset_cache",
    "dem_stats",
    "hillshade",
    "hypsometric_tint",
    "refine_dem",
    "render_tile",
    "tile_bounds",
]

FloatArray: TypeAlias = npt.NDArray[np.float32]
Style: TypeAlias = Literal["hillshade", "hypsometric", "shaded_relief"]

NODATA: Final = -32768.0
STYLES: Final = ("hillshade", "hypsometric", "shaded_relief")
SOURCE_CITATION: Final = (
    "NOAA ETOPO1 1 arc-minute global relief model (Amante & Eakins 2009, NOAA Technical "
    "Memorandum NESDIS NGDC-24, doi:10.7289/V5C8276M), public domain"
)
_EARTH_R: Final = 6378137.0
_CHUNK_PIXELS: Final = 1 << 22
_NODE_STEP: Final = 16
_OVERVIEWS: Final = (2, 4, 8, 16, 32, 64)
_RIDGE_MEAN: Final = 0.83  # E|n| of the normalised value noise, measured
_NOISE_STD: Final = 0.275  # std of the raw B-spline value noise, measured

#: Hypsometric stops (metres, RGB): greens low, tans and browns high, pale at the top.
DEFAULT_RAMP: Final[tuple[tuple[float, tuple[int, int, int]], ...]] = (
    (-500.0, (70, 120, 170)),
    (0.0, (108, 160, 104)),
    (200.0, (140, 184, 112)),
    (500.0, (190, 208, 138)),
    (800.0, (228, 222, 158)),
    (1100.0, (222, 194, 136)),
    (1400.0, (200, 160, 112)),
    (1800.0, (172, 126, 92)),
    (2300.0, (150, 112, 100)),
    (3000.0, (196, 186, 180)),
    (4500.0, (248, 248, 248)),
)


# --------------------------------------------------------------------------------------------
# interpolation helpers
# --------------------------------------------------------------------------------------------


def _weights_matrix(u: np.ndarray, n: int, *, cubic: bool) -> sparse.csr_matrix:
    """Sparse (len(u), n) matrix interpolating a 1-D lattice at fractional positions ``u``.

    Linear or Catmull-Rom (interpolating cubic); indices beyond the lattice are clamped.
    """
    u = np.asarray(u, dtype=np.float64)
    i0 = np.floor(u).astype(np.int64)
    t = u - i0
    if cubic:
        t2, t3 = t * t, t * t * t
        w = np.stack(
            [
                0.5 * (-t3 + 2 * t2 - t),
                0.5 * (3 * t3 - 5 * t2 + 2),
                0.5 * (-3 * t3 + 4 * t2 + t),
                0.5 * (t3 - t2),
            ],
            axis=1,
        )
        cols = i0[:, None] + np.arange(-1, 3)[None, :]
    else:
        w = np.stack([1.0 - t, t], axis=1)
        cols = i0[:, None] + np.arange(0, 2)[None, :]
    rows = np.repeat(np.arange(len(u)), w.shape[1])
    m = sparse.coo_matrix(
        (w.ravel().astype(np.float32), (rows, np.clip(cols, 0, n - 1).ravel())),
        shape=(len(u), n),
    )
    return m.tocsr()  # duplicates from clamping are summed, which keeps weights summing to 1


def _separable(
    lattice: np.ndarray, wy: sparse.csr_matrix, wx: sparse.csr_matrix
) -> npt.NDArray[np.float32]:
    """``wy @ lattice @ wx.T`` without a dense matrix bigger than the output."""
    tmp = np.asarray(wy @ lattice.astype(np.float32, copy=False), dtype=np.float32)
    return np.ascontiguousarray(np.asarray(wx @ tmp.T, dtype=np.float32).T)


def _hash_uniform(i: np.ndarray, j: np.ndarray, octave: int, seed: int) -> np.ndarray:
    """Deterministic pseudo-random numbers in [-1, 1) for integer lattice points (splitmix64)."""
    mask = (1 << 64) - 1
    key = np.uint64((seed * 0x9E3779B97F4A7C15 + octave * 0xD1B54A32D192ED03) & mask)
    with np.errstate(over="ignore"):
        h = i.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= j.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        h ^= key
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return ((h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 23)) - np.float32(1.0)


def _value_noise(
    xs: np.ndarray, ys: np.ndarray, wavelength: float, octave: int, seed: int
) -> FloatArray:
    """Smooth value noise on the grid ``ys`` × ``xs`` (metres), about unit standard deviation.

    Cubic B-spline through a hashed random lattice, rotated by a per-octave angle so that no
    octave's lattice lines up with the pixel grid or with another octave (plain value noise
    looks blocky).
    """
    h = _hash_uniform(np.array([octave, octave]), np.array([-7, -11]), 99, seed)
    theta = float(h[0]) * math.pi
    ct, st = math.cos(theta), math.sin(theta)
    off = float(h[1]) * 1000.0
    xg = xs[None, :] / wavelength
    yg = ys[:, None] / wavelength
    u = xg * ct - yg * st + off
    v = xg * st + yg * ct - off
    i_lo, i_hi = math.floor(u.min()) - 2, math.floor(u.max()) + 3
    j_lo, j_hi = math.floor(v.min()) - 2, math.floor(v.max()) + 3
    ii, jj = np.meshgrid(np.arange(i_lo, i_hi + 1), np.arange(j_lo, j_hi + 1))
    lattice = _hash_uniform(ii, jj, octave, seed)
    coords = np.stack([(v - j_lo).astype(np.float32), (u - i_lo).astype(np.float32)])
    del u, v
    out = ndimage.map_coordinates(lattice, coords, order=3, prefilter=False, output=np.float32)
    out *= np.float32(1.0 / _NOISE_STD)
    return out


# --------------------------------------------------------------------------------------------
# refinement
# --------------------------------------------------------------------------------------------


@dataclass
class _Grid:
    """The output grid and the map from its pixels to fractional coarse-grid row/col."""

    transform: Affine
    width: int
    height: int
    res: float
    node_rows: np.ndarray  # (nr, nc) fractional coarse row at node pixels
    node_cols: np.ndarray

    def coarse_coords(self, r0: int, r1: int) -> tuple[FloatArray, FloatArray]:
        """Fractional coarse (row, col) for output rows r0..r1, all columns."""
        wy = _weights_matrix(np.arange(r0, r1) / _NODE_STEP, self.node_rows.shape[0], cubic=False)
        wx = _weights_matrix(
            np.arange(self.width) / _NODE_STEP, self.node_rows.shape[1], cubic=False
        )
        return _separable(self.node_rows, wy, wx), _separable(self.node_cols, wy, wx)

    def xs(self) -> np.ndarray:
        return self.transform.c + (np.arange(self.width) + 0.5) * self.res

    def ys(self, r0: int, r1: int) -> np.ndarray:
        return self.transform.f - (np.arange(r0, r1) + 0.5) * self.res

    def chunks(self) -> Iterator[tuple[int, int]]:
        step = max(16, _CHUNK_PIXELS // max(self.width, 1))
        for r0 in range(0, self.height, step):
            yield r0, min(self.height, r0 + step)


def _make_grid(
    coarse_transform: Affine,
    coarse_crs: CRS,
    dst_crs: CRS,
    bounds_dst: tuple[float, float, float, float],
    res: float,
) -> _Grid:
    minx, miny, maxx, maxy = bounds_dst
    # Snap to multiples of the resolution so grids of the same area line up run after run.
    x0, y1 = math.floor(minx / res) * res, math.ceil(maxy / res) * res
    width = math.ceil((maxx - x0) / res)
    height = math.ceil((y1 - miny) / res)
    transform = Affine(res, 0.0, x0, 0.0, -res, y1)
    # Project a sparse node lattice and interpolate linearly between nodes: the projection is
    # smooth, so this is exact to well under a millimetre and far cheaper than every pixel.
    nr = height // _NODE_STEP + 2
    nc = width // _NODE_STEP + 2
    px = x0 + (np.arange(nc) * _NODE_STEP + 0.5) * res
    py = y1 - (np.arange(nr) * _NODE_STEP + 0.5) * res
    gx, gy = np.meshgrid(px, py)
    tr = Transformer.from_crs(dst_crs, coarse_crs, always_xy=True)
    sx, sy = tr.transform(gx, gy)
    inv = ~coarse_transform
    col = inv.a * sx + inv.b * sy + inv.c - 0.5
    row = inv.d * sx + inv.e * sy + inv.f - 0.5
    return _Grid(transform, width, height, res, row.astype(np.float32), col.astype(np.float32))


def _spline_sample(coeffs: np.ndarray, rows: FloatArray, cols: FloatArray) -> FloatArray:
    out = ndimage.map_coordinates(
        coeffs, [rows.ravel(), cols.ravel()], order=3, mode="nearest", prefilter=False
    )
    return out.astype(np.float32).reshape(rows.shape)


def _smooth_sample(grid: np.ndarray, rows: FloatArray, cols: FloatArray) -> FloatArray:
    """Approximating cubic B-spline: smooth (no kinks at cell centres) and no overshoot."""
    out = ndimage.map_coordinates(
        grid, [rows.ravel(), cols.ravel()], order=3, mode="nearest", prefilter=False
    )
    return out.astype(np.float32).reshape(rows.shape)


def _linear_sample(grid: np.ndarray, rows: FloatArray, cols: FloatArray) -> FloatArray:
    out = ndimage.map_coordinates(grid, [rows.ravel(), cols.ravel()], order=1, mode="nearest")
    return out.astype(np.float32).reshape(rows.shape)


def _soft_clamp(
    a: FloatArray, lo: FloatArray | None, hi: FloatArray | None, softness: float
) -> FloatArray:
    """Clamp to [lo, hi] with a smooth (softplus) knee, so clamped areas keep their shape."""
    s = np.float32(softness)
    out = a
    if lo is not None:
        out = lo + s * np.logaddexp(np.float32(0.0), (out - lo) / s)
    if hi is not None:
        out = hi - s * np.logaddexp(np.float32(0.0), (hi - out) / s)
    return out.astype(np.float32, copy=False)


def _coarse_index(rows: FloatArray, cols: FloatArray, shape: tuple[int, int]) -> np.ndarray:
    r = np.clip(np.rint(rows), 0, shape[0] - 1).astype(np.int64)
    c = np.clip(np.rint(cols), 0, shape[1] - 1).astype(np.int64)
    return r * shape[1] + c


def _fill_nearest(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if valid.all():
        return a
    if not valid.any():
        raise ValueError("the coarse grid has no valid cell")
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return a[tuple(idx)]


def _as_lines(geoms: Iterable[BaseGeometry]) -> list[LineString]:
    out: list[LineString] = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        if isinstance(g, LineString):
            out.append(g)
        elif isinstance(g, MultiLineString):
            out.extend(g.geoms)
        elif hasattr(g, "geoms"):
            out.extend(_as_lines(g.geoms))
        elif hasattr(g, "boundary"):
            out.extend(_as_lines([g.boundary]))
    return out


def _river_network(
    rivers: Iterable[BaseGeometry], dst_crs: CRS, clip: BaseGeometry, snap_m: float
) -> list[LineString]:
    """Project, clip and node the river lines: small gaps closed, split at every junction."""
    tr = Transformer.from_crs(CRS.from_epsg(4326), dst_crs, always_xy=True)
    lines = []
    for line in _as_lines(rivers):
        projected = shapely.transform(
            line, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
        )
        lines.extend(_as_lines([projected.intersection(clip)]))
    lines = [ln for ln in lines if ln.length > 0]
    if not lines:
        return []
    # Digitised networks leave gaps of a few metres at confluences: bridge dangling ends to the
    # nearest other line so water has somewhere to go.
    tree = shapely.STRtree(lines)
    bridges: list[LineString] = []
    for k, ln in enumerate(lines):
        for end in (shapely.Point(ln.coords[0]), shapely.Point(ln.coords[-1])):
            for other in tree.query(end.buffer(snap_m)):
                if other == k:
                    continue
                d = lines[other].distance(end)
                if 0 < d <= snap_m:
                    bridges.append(shapely.shortest_line(end, lines[other]))
                    break
    merged = shapely.unary_union([*lines, *bridges])
    return [ln for ln in _as_lines([shapely.line_merge(merged)]) if ln.length > 0]


def _carve_profiles(
    segments: list[LineString],
    sample: Any,
    step: float,
    depth: float,
    min_slope: float,
    smooth_m: float,
    reach: float,
    bend_m: float = 250.0,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Bed elevation along each segment, monotone downstream through the whole network.

    Returns, per segment, its densified (n, 2) coordinates ordered downstream, the bed values,
    the (smoothed) depth of the cut below the ground and the unit tangents (n, 2).
    """
    key = lambda xy: (round(xy[0], 1), round(xy[1], 1))  # noqa: E731
    nodes: dict[tuple[float, float], int] = {}
    edges: list[tuple[int, int, np.ndarray]] = []
    for seg in segments:
        pts = np.asarray(shapely.segmentize(seg, step).coords)[:, :2]
        if len(pts) > 8:
            # Digitised courses have sharp vertices; real channels bend smoothly. Ends stay put
            # so the network stays connected.
            tips = pts[[0, -1]].copy()
            pts = ndimage.gaussian_filter1d(pts, bend_m / step, axis=0, mode="nearest")
            pts[[0, -1]] = tips
        a = nodes.setdefault(key(pts[0]), len(nodes))
        b = nodes.setdefault(key(pts[-1]), len(nodes))
        edges.append((a, b, pts))
    n = len(nodes)
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for e, (a, b, _) in enumerate(edges):
        adj[a].append((b, e))
        adj[b].append((a, e))
    node_xy = np.zeros((n, 2))
    for (x, y), k in nodes.items():
        node_xy[k] = (x, y)
    node_z = sample(node_xy)

    # Each connected network drains to its lowest end (or lowest node if it has no end).
    dist = np.full(n, np.inf)
    comp = np.full(n, -1)
    for start in range(n):
        if comp[start] >= 0:
            continue
        members, stack = [], [start]
        comp[start] = start
        while stack:
            v = stack.pop()
            members.append(v)
            for w, _ in adj[v]:
                if comp[w] < 0:
                    comp[w] = start
                    stack.append(w)
        ends = [v for v in members if len(adj[v]) == 1] or members
        outlet = min(ends, key=lambda v: (node_z[v], v))
        # Dijkstra by channel length from the outlet orients every segment downstream.
        dist[outlet] = 0.0
        heap = [(0.0, outlet)]
        while heap:
            d, v = heapq.heappop(heap)
            if d > dist[v]:
                continue
            for w, e in adj[v]:
                nd = d + float(segments[e].length)
                if nd < dist[w]:
                    dist[w] = nd
                    heapq.heappush(heap, (nd, w))

    inflow = np.full(n, np.inf)
    order = sorted(range(len(edges)), key=lambda e: -max(dist[edges[e][0]], dist[edges[e][1]]))
    empty = np.empty(0)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    out = [(empty, empty, empty, empty)] * len(edges)
    sigma = max(smooth_m / step, 0.0)
    for e in order:
        a, b, pts = edges[e]
        if dist[a] < dist[b]:
            a, b, pts = b, a, pts[::-1]
        # A river is the lowest line of its valley: take the lowest of the terrain under the
        # line and across it (to the valley rims), so the channel ends up below both banks even
        # where the coarse grid smeared the valley sideways.
        tangent = np.gradient(pts, axis=0)
        if len(pts) > 3:
            tangent = ndimage.gaussian_filter1d(tangent, max(sigma, 1.0), axis=0, mode="nearest")
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        normal /= np.maximum(np.hypot(normal[:, 0], normal[:, 1]), 1e-9)[:, None]
        z = np.min([sample(pts + k * reach * normal) for k in (-1.0, -0.5, 0.0, 0.5, 1.0)], axis=0)
        if sigma > 0 and len(z) > 3:
            z = ndimage.gaussian_filter1d(z, sigma, mode="nearest")
        seglen = np.hypot(*np.diff(pts, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seglen)])
        q = z - depth + min_slope * s
        q[0] = min(q[0], inflow[a])
        # Running minimum with a minimum gradient: bed(i) <= bed(i-1) - min_slope * ds.
        bed = np.minimum.accumulate(q) - min_slope * s
        inflow[b] = min(inflow[b], bed[-1])
        # How deep the valley is cut below the ground it crosses, smoothed along the river so
        # the valley width (which follows it) does not flicker from pixel to pixel.
        cut = np.maximum(sample(pts) - bed, 0.0)
        if len(cut) > 3:
            cut = ndimage.gaussian_filter1d(cut, 4.0 * max(sigma, 1.0), mode="nearest")
        out[e] = (pts, bed, cut, normal[:, ::-1] * [1.0, -1.0])
    return out


def refine_dem(
    coarse_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    resolution_m: float = 90.0,
    bounds_wgs84: Sequence[float] | None = None,
    rivers: Iterable[BaseGeometry] | None = None,
    dst_epsg: int = 4547,
    seed: int = 20090301,
    valley_depth_m: float = 30.0,
    valley_halfwidth_m: float = 2000.0,
    detail_wavelength_m: float = 6000.0,
    detail_relief_fraction: float = 0.35,
    detail_min_m: float = 2.0,
    detail_max_m: float = 250.0,
    min_river_slope: float = 2e-4,
    max_wall_slope: float = 0.6,
    erosion_strength_m: float = 40.0,
    erosion_cell_m: float = 250.0,
    correction_iterations: int = 2,
) -> Path:
    """Refine a coarse real DEM into a fine, deterministic DEM in a metric CRS.

    Parameters
    ----------
    coarse_path
        Coarse elevation raster (e.g. the ETOPO1 0.1° window), any CRS (EPSG:4326 assumed when
        it has none), heights in metres.
    out_path
        GeoTIFF to write (float32, tiled, deflate + floating-point predictor, overviews). Written
        to a temporary file first and moved into place, so readers never see half a file.
    resolution_m
        Output pixel size in metres of ``dst_epsg`` (30–90 m is the intended range).
    bounds_wgs84
        ``(west, south, east, north)`` in degrees; default: the coarse raster's extent. Pixels
        outside this box (which is not a rectangle in the metric CRS) are nodata.
    rivers
        Real river lines in WGS84 (LineString / MultiLineString); valleys are carved along them.
    dst_epsg
        Output CRS; default CGCS2000 3-degree Gauss-Krüger CM 114°E (EPSG:4547).
    seed
        Seed of the fractal detail; the same inputs and seed give an identical DEM.
    valley_depth_m
        Depth of the channel below the along-river smoothed terrain before the downstream
        constraint (which can only deepen it).
    valley_halfwidth_m
        Half width of the valley cross-section; widened where the cut is deep so walls stay
        below ``max_wall_slope``.
    detail_wavelength_m
        Longest wavelength of the fractal detail; octaves halve down to two pixels.
    detail_relief_fraction, detail_min_m, detail_max_m
        Detail amplitude = fraction × height above the local floor (the lowest of the 3×3
        surrounding coarse cells), clipped to [min, max] metres.
    min_river_slope
        Minimum downstream gradient of every channel (m/m).
    max_wall_slope
        Steepest valley wall the cross-section may produce (m/m).
    erosion_strength_m
        Depth of valleys draining 1 km² in the synthetic drainage network cut into the detail
        (deeper as the drained area grows, never below the local base level); 0 disables it.
    erosion_cell_m
        Cell size of that network (the finest valley spacing it can make).
    correction_iterations
        Block-mean correction passes (0 disables it).

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    out_path = Path(out_path)
    res = float(resolution_m)
    if res <= 0:
        raise ValueError("resolution_m must be positive")
    dst_crs = CRS.from_epsg(dst_epsg)
    with rasterio.open(coarse_path) as src:
        coarse = src.read(1, masked=True).astype(np.float32)
        c_transform = src.transform
        c_crs = src.crs or CRS.from_epsg(4326)
        c_bounds = src.bounds
    if c_transform.b != 0 or c_transform.d != 0:
        raise ValueError("rotated coarse rasters are not supported")
    valid_c = ~np.ma.getmaskarray(coarse) & np.isfinite(coarse.filled(np.nan))
    heights = _fill_nearest(coarse.filled(np.nan).astype(np.float64), valid_c)

    wgs84 = CRS.from_epsg(4326)
    if bounds_wgs84 is None:
        bounds_wgs84 = transform_bounds(c_crs, wgs84, *c_bounds, densify_pts=21)
    west, south, east, north = (float(v) for v in bounds_wgs84)
    if not (west < east and south < north):
        raise ValueError("bounds_wgs84 must be (west, south, east, north)")
    bounds_dst = transform_bounds(wgs84, dst_crs, west, south, east, north, densify_pts=101)
    grid = _make_grid(c_transform, c_crs, dst_crs, bounds_dst, res)
    shape = (grid.height, grid.width)

    # Footprint: the WGS84 box as a curved polygon in the metric CRS, and valid coarse cells.
    tr = Transformer.from_crs(wgs84, dst_crs, always_xy=True)
    foot = shapely.segmentize(box(west, south, east, north), 0.01)
    foot = shapely.transform(foot, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    valid = rasterize([(foot, 1)], out_shape=shape, transform=grid.transform, dtype="uint8") > 0

    coeffs = ndimage.spline_filter(heights, order=3, mode="nearest")
    lo3 = ndimage.minimum_filter(heights, 3, mode="nearest")
    hi3 = ndimage.maximum_filter(heights, 3, mode="nearest")
    relief = hi3 - lo3
    # Mountains (relief above ~400 m per 3 cells) get ridged noise, plains rounded fBm.
    ridged_weight = np.clip((relief - 150.0) / 400.0, 0.0, 1.0)
    wavelengths: list[float] = []
    lam = float(detail_wavelength_m)
    while lam >= 2.0 * res and len(wavelengths) < 12:
        wavelengths.append(lam)
        lam /= 2.0
    gains = [0.5**k for k in range(len(wavelengths))]
    norm = sum(gains) or 1.0
    xs = grid.xs()

    surface = np.empty(shape, dtype=np.float32)
    for r0, r1 in grid.chunks():
        rows, cols = grid.coarse_coords(r0, r1)
        block = _spline_sample(coeffs, rows, cols)
        # A cubic spline overshoots next to escarpments (1300 m beside 100 m in one cell step):
        # keep it within the (smoothly interpolated) range of the surrounding real cells.
        lo = _smooth_sample(lo3, rows, cols)
        block = _soft_clamp(block, lo, _smooth_sample(hi3, rows, cols), 15.0)
        # Detail grows with height above the local floor: plains and valley floors stay
        # smooth, slopes and summits get rough, and nothing sinks below the real floor.
        amp = np.clip(detail_relief_fraction * (block - lo), detail_min_m, detail_max_m)
        rw = _linear_sample(ridged_weight, rows, cols)
        valid[r0:r1] &= _linear_sample(valid_c.astype(np.float32), rows, cols) > 0.5
        ys = grid.ys(r0, r1)
        fbm = np.zeros_like(block)
        ridge = np.zeros_like(block)
        for k, (wl, g) in enumerate(zip(wavelengths, gains, strict=True)):
            n = _value_noise(xs, ys, wl, k, seed)
            fbm += g * n
            ridge += g * (1.0 - np.abs(n))
        fbm /= norm
        ridge = ridge / norm - (1.0 - _RIDGE_MEAN)
        block += amp * ((1.0 - rw) * fbm + rw * ridge)
        surface[r0:r1] = block
        del rows, cols, lo, amp, rw, fbm, ridge, block

    if erosion_strength_m > 0:
        _erode_drainage(
            surface,
            res,
            cell_m=erosion_cell_m,
            strength_m=erosion_strength_m,
            wall_slope=max_wall_slope,
        )

    # Block-mean correction: add back, spline-smoothly, what each coarse cell lost or gained to
    # smoothing and detail. Cells cut by the footprint edge hold too few pixels to judge.
    ncells = heights.size
    for _ in range(max(0, correction_iterations)):
        sums = np.zeros(ncells)
        counts = np.zeros(ncells)
        for r0, r1 in grid.chunks():
            rows, cols = grid.coarse_coords(r0, r1)
            idx = _coarse_index(rows, cols, heights.shape)
            m = valid[r0:r1]
            sums += np.bincount(idx[m], weights=surface[r0:r1][m], minlength=ncells)
            counts += np.bincount(idx[m], minlength=ncells)
        resid = np.zeros(ncells)
        has = counts >= 0.5 * counts.max()
        resid[has] = heights.ravel()[has] - sums[has] / counts[has]
        rc = ndimage.spline_filter(resid.reshape(heights.shape), order=3, mode="nearest")
        for r0, r1 in grid.chunks():
            rows, cols = grid.coarse_coords(r0, r1)
            block = surface[r0:r1]
            block += _spline_sample(rc, rows, cols)
            # Beside an escarpment the plain cell would have to sink far below its real floor
            # to balance the ramp: accept a biased mean there rather than a pit.
            floor = _smooth_sample(lo3, rows, cols) - 2.0 * detail_min_m
            block[:] = _soft_clamp(block, floor, None, 20.0)

    tags: dict[str, Any] = {}
    if rivers is not None:
        tags.update(
            _carve_valleys(
                surface,
                grid,
                rivers,
                dst_crs,
                depth=valley_depth_m,
                halfwidth=valley_halfwidth_m,
                min_slope=min_river_slope,
                max_wall_slope=max_wall_slope,
            )
        )

    surface[~valid] = NODATA
    del valid
    tags.update(
        {
            "TIFFTAG_IMAGEDESCRIPTION": (
                f"Refinement of NOAA ETOPO1 (Amante & Eakins 2009) to {res:g} m: cubic-spline "
                "interpolation with block-mean correction, seeded fractal detail and valleys "
                "carved along real river lines. Not a survey."
            ),
            "SOURCE": SOURCE_CITATION,
            "METHOD": "refinement of NOAA ETOPO1 (Amante & Eakins 2009)",
            "COARSE_INPUT": Path(coarse_path).name,
            "SEED": str(seed),
            "RESOLUTION_M": f"{res:g}",
            "DST_EPSG": str(dst_epsg),
            "BOUNDS_WGS84": f"{west:.6f},{south:.6f},{east:.6f},{north:.6f}",
            "VALLEY_DEPTH_M": f"{valley_depth_m:g}",
            "VALLEY_HALFWIDTH_M": f"{valley_halfwidth_m:g}",
            "DETAIL_WAVELENGTH_M": f"{detail_wavelength_m:g}",
            "DETAIL_RELIEF_FRACTION": f"{detail_relief_fraction:g}",
            "DETAIL_MIN_MAX_M": f"{detail_min_m:g},{detail_max_m:g}",
            "MIN_RIVER_SLOPE": f"{min_river_slope:g}",
            "MAX_WALL_SLOPE": f"{max_wall_slope:g}",
            "EROSION_STRENGTH_M": f"{erosion_strength_m:g}",
            "EROSION_CELL_M": f"{erosion_cell_m:g}",
            "CORRECTION_ITERATIONS": str(correction_iterations),
            "UNITS": "metre",
        }
    )
    _write_geotiff(surface, grid.transform, dst_crs, out_path, tags)
    return out_path


def _priority_flood(z: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Drainage tree of a grid draining to its edges (priority flood, Barnes et al. 2014).

    Returns the visiting order (downstream first), each cell's downstream neighbour (-1 at
    the edge) and the depression-filled surface: every cell drains to the edge.
    """
    h, w = z.shape
    zf: list[float] = z.astype(np.float64).ravel().tolist()
    parent = [-1] * (h * w)
    seen = bytearray(h * w)
    edge = np.zeros((h, w), dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    heap = [(zf[i], i) for i in np.flatnonzero(edge).tolist()]
    for _, i in heap:
        seen[i] = 1
    heapq.heapify(heap)
    order: list[int] = []
    steps = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        zi, i = pop(heap)
        order.append(i)
        r, c = divmod(i, w)
        for dr, dc in steps:
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w:
                j = rr * w + cc
                if not seen[j]:
                    seen[j] = 1
                    parent[j] = i
                    zj = zf[j]
                    if zj <= zi:
                        zj = zf[j] = zi + 1e-3  # a gentle slope across filled pits and flats
                    push(heap, (zj, j))
    return order, parent, np.asarray(zf).reshape(h, w)


def _erode_drainage(
    surface: FloatArray, res: float, *, cell_m: float, strength_m: float, wall_slope: float
) -> None:
    """Cut a dendritic valley network into ``surface`` in place.

    On a grid of ``cell_m`` cells the drainage tree is found by priority flood; each cell is
    incised by strength × (drained km²)^0.45, at most 80 % of its height above the lowest
    ground within ~5 km (so valleys grade to the plains rather than below them); the cuts are
    widened into V-shaped valleys with walls of ``wall_slope`` and added back with a cubic
    upsampling, so valleys look like valleys at 30 m as well as at 90 m.
    """
    k = max(1, round(cell_m / res))
    h, w = surface.shape
    hk, wk = -(-h // k), -(-w // k)
    padded = np.pad(surface, ((0, hk * k - h), (0, wk * k - w)), mode="edge")
    coarse = padded.reshape(hk, k, wk, k).mean(axis=(1, 3), dtype=np.float64)
    del padded
    if min(hk, wk) < 4:
        return
    cell = k * res
    order, parent, filled = _priority_flood(coarse)
    area = [cell * cell / 1e6] * (hk * wk)
    for i in reversed(order):
        p = parent[i]
        if p >= 0:
            area[p] += area[i]
    acc = np.asarray(area).reshape(hk, wk)
    base = ndimage.minimum_filter(coarse, size=max(3, int(5000 / cell) | 1), mode="nearest")
    cut = np.minimum(strength_m * acc**0.45, 0.8 * (coarse - base))
    # Filled pits and flats would drain along parallel artificial lines: leave them uncut
    # (they read as basins and alluvial flats).
    cut *= np.clip(1.0 - (filled - coarse) / 5.0, 0.0, 1.0)
    cut = ndimage.gaussian_filter(cut, 0.7)
    # Cone dilation: a cut of depth d spreads to the sides, losing wall_slope per metre.
    rad = 4
    yy, xx = np.mgrid[-rad : rad + 1, -rad : rad + 1]
    cone = -wall_slope * cell * np.hypot(yy, xx)
    cone[np.hypot(yy, xx) > rad] = -1e9
    cut = np.maximum(ndimage.grey_dilation(cut, structure=cone, mode="nearest"), 0.0)
    wy = _weights_matrix((np.arange(h) + 0.5) / k - 0.5, hk, cubic=True)
    wx = _weights_matrix((np.arange(w) + 0.5) / k - 0.5, wk, cubic=True)
    step = max(16, _CHUNK_PIXELS // max(w, 1))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        surface[r0:r1] -= np.maximum(_separable(cut, wy[r0:r1], wx), 0.0)


def _carve_valleys(
    surface: FloatArray,
    grid: _Grid,
    rivers: Iterable[BaseGeometry],
    dst_crs: CRS,
    *,
    depth: float,
    halfwidth: float,
    min_slope: float,
    max_wall_slope: float,
) -> dict[str, str]:
    """Carve channels and valleys into ``surface`` in place; returns tags describing it."""
    res = grid.res
    h, w = surface.shape
    x0, y1 = grid.transform.c, grid.transform.f
    clip = box(x0, y1 - h * res, x0 + w * res, y1)
    segments = _river_network(rivers, dst_crs, clip, snap_m=max(4 * res, 1000.0))
    if not segments:
        return {"RIVERS": "0 segments"}

    def sample(xy: np.ndarray) -> np.ndarray:
        rows = (y1 - xy[:, 1]) / res - 0.5
        cols = (xy[:, 0] - x0) / res - 0.5
        return ndimage.map_coordinates(surface, [rows, cols], order=1, mode="nearest").astype(
            np.float64
        )

    step = res / 4.0  # fine enough that every pixel the line crosses gets a bed value
    profiles = _carve_profiles(
        segments, sample, step, depth, min_slope, smooth_m=max(3 * res, 500.0), reach=halfwidth
    )
    bed = np.full(surface.shape, np.inf, dtype=np.float32)
    cut_px = np.zeros(surface.shape, dtype=np.float32)
    # Where in its pixel the line passes: distances to the line itself, not to a staircase of
    # pixel centres, whose ripples would show as ribs on steep valley walls.
    off_x = np.zeros(surface.shape, dtype=np.float32)
    off_y = np.zeros(surface.shape, dtype=np.float32)
    tan_x = np.zeros(surface.shape, dtype=np.float32)
    tan_y = np.zeros(surface.shape, dtype=np.float32)
    for pts, z, cut, tangent in profiles:
        r = np.floor((y1 - pts[:, 1]) / res).astype(np.int64)
        c = np.floor((pts[:, 0] - x0) / res).astype(np.int64)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        # Several samples fall in one pixel: keep the lowest, so the pixel chain still descends.
        np.minimum.at(bed, (r[ok], c[ok]), z[ok].astype(np.float32))
        np.maximum.at(cut_px, (r[ok], c[ok]), cut[ok].astype(np.float32))
        off_x[r[ok], c[ok]] = pts[ok, 0] - (x0 + (c[ok] + 0.5) * res)
        off_y[r[ok], c[ok]] = (y1 - (r[ok] + 0.5) * res) - pts[ok, 1]
        tan_x[r[ok], c[ok]] = tangent[ok, 0]
        tan_y[r[ok], c[ok]] = -tangent[ok, 1]  # in row direction
    channel = np.isfinite(bed)
    ir, ic = ndimage.distance_transform_edt(~channel, return_distances=False, return_indices=True)
    # f'(t) of (1 - t²)² peaks at 1.54: widen the valley where the cut is deep.
    wall = 1.54 / max(max_wall_slope, 1e-3)
    reach = np.float32(10 * res)
    for r0, r1 in grid.chunks():
        sl = slice(r0, r1)
        near_r, near_c = ir[sl], ic[sl]
        bed_n = bed[near_r, near_c]
        width = np.maximum(np.float32(halfwidth), wall * cut_px[near_r, near_c])
        rows = np.arange(r0, r1, dtype=np.float32)[:, None]
        cols = np.arange(w, dtype=np.float32)[None, :]
        dx = (near_c - cols) * np.float32(res) + off_x[near_r, near_c]
        dy = (near_r - rows) * np.float32(res) + off_y[near_r, near_c]
        # Distance to the river's local tangent line through that point: the nearest pixel
        # centre of a rasterised line can sit several pixels along the river from the true
        # foot of the perpendicular (at staircase corners).
        along = np.clip(dx * tan_x[near_r, near_c] + dy * tan_y[near_r, near_c], -reach, reach)
        across = np.sqrt(np.maximum(dx * dx + dy * dy - along * along, 0.0))
        t = np.minimum(across / width, 1.0)
        shape_f = (1.0 - t * t) ** 2
        s = surface[sl]
        carved = s - np.maximum(s - bed_n, 0.0) * shape_f
        surface[sl] = np.where(channel[sl], bed[sl], carved)
    n_px = int(channel.sum())
    return {
        "RIVERS": f"{len(segments)} segments, {n_px} channel pixels",
        "RIVER_CARVING": (
            "bed = along-river smoothed terrain - depth, running minimum downstream with a "
            "minimum gradient through the network; cross-section bed + (terrain - bed)"
            "*(1 - (1 - (d/w)^2)^2)"
        ),
    }


def _write_geotiff(
    data: FloatArray, transform: Affine, crs: CRS, out_path: Path, tags: dict[str, Any]
) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".tif", dir=out_path.parent, prefix=".tmp-dem-")
    os.close(fd)
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
        "zlevel": 6,
        "BIGTIFF": "IF_SAFER",
    }
    try:
        with rasterio.open(tmp_name, "w", **profile) as dst:
            dst.write(data, 1)
            desc = tags.pop("TIFFTAG_IMAGEDESCRIPTION", None)
            dst.update_tags(**tags)
            if desc:
                dst.update_tags(TIFFTAG_IMAGEDESCRIPTION=desc)
            dst.set_band_description(1, "elevation (m), refinement of NOAA ETOPO1")
            dst.update_tags(1, UNITS="metre")
            factors = [f for f in _OVERVIEWS if min(data.shape) // f >= 8]
            if factors:
                dst.build_overviews(factors, Resampling.average)
                dst.update_tags(ns="rio_overview", resampling="average")
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the tile server may be another user
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def dem_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Bounds, CRS, resolution and min/max/mean of a DEM (nodata ignored).

    Returns
    -------
    dict
        ``crs``, ``bounds``, ``res``, ``width``, ``height``, ``min``, ``max``, ``mean``,
        ``valid_fraction`` and the dataset tags.
    """
    with rasterio.open(path) as ds:
        a = ds.read(1, masked=True)
        valid = a.compressed()
        return {
            "crs": ds.crs.to_string() if ds.crs else None,
            "bounds": tuple(ds.bounds),
            "res": ds.res,
            "width": ds.width,
            "height": ds.height,
            "min": float(valid.min()) if valid.size else None,
            "max": float(valid.max()) if valid.size else None,
            "mean": float(valid.mean(dtype=np.float64)) if valid.size else None,
            "valid_fraction": valid.size / a.size,
            "tags": ds.tags(),
        }


# --------------------------------------------------------------------------------------------
# shading and colour
# --------------------------------------------------------------------------------------------


def hillshade(
    elev: np.ndarray,
    cellsize_x: float | np.ndarray,
    cellsize_y: float | np.ndarray | None = None,
    *,
    azimuth: float = 315.0,
    altitude: float = 45.0,
    z_factor: float = 1.0,
    multidirectional: bool = False,
) -> FloatArray:
    """Hillshade in [0, 1] by Horn's method, for a north-up grid (row 0 at the top).

    Parameters
    ----------
    elev
        2-D elevations; edge pixels use replicated neighbours; NaN propagates.
    cellsize_x, cellsize_y
        Ground size of a pixel in the units of ``elev`` (metres); scalars or per-row arrays of
        shape (rows, 1) — in Web Mercator the ground size shrinks with cos(latitude).
    azimuth, altitude
        Light direction in degrees: azimuth clockwise from north, altitude above the horizon.
    z_factor
        Vertical exaggeration.
    multidirectional
        Blend lights from 225°, 270°, 315° and 360°, weighted by aspect (as GDAL's
        ``-multidirectional``), which keeps slopes facing away from 315° readable.
    """
    if cellsize_y is None:
        cellsize_y = cellsize_x
    z = np.pad(np.asarray(elev, dtype=np.float32), 1, mode="edge")
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dz_east = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * np.asarray(cellsize_x, np.float32))
    dz_north = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * np.asarray(cellsize_y, np.float32))
    dz_east *= z_factor
    dz_north *= z_factor
    # Unit surface normal (-dz/dE, -dz/dN, 1) / |.|, lit by a unit vector towards the sun.
    inv = 1.0 / np.sqrt(1.0 + dz_east * dz_east + dz_north * dz_north)
    alt = math.radians(altitude)

    def lit(az_deg: float) -> FloatArray:
        az = math.radians(az_deg)
        lx, ly, lz = math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt)
        return np.clip((-dz_east * lx - dz_north * ly + lz) * inv, 0.0, 1.0)

    if not multidirectional:
        return lit(azimuth).astype(np.float32)
    aspect = np.arctan2(-dz_east, -dz_north)  # downslope direction, clockwise from north
    total = np.zeros_like(inv)
    weights = np.zeros_like(inv)
    for az in (225.0, 270.0, 315.0, 360.0):
        wgt = np.sin(aspect - math.radians(az)) ** 2 + 1e-3
        total += wgt * lit(az)
        weights += wgt
    return (total / weights).astype(np.float32)


def hypsometric_tint(
    elev: np.ndarray, ramp: Sequence[tuple[float, tuple[int, int, int]]] = DEFAULT_RAMP
) -> npt.NDArray[np.float32]:
    """RGB in [0, 255] (float32, shape (3, rows, cols)) by linear interpolation of ``ramp``."""
    stops = np.array([s for s, _ in ramp], dtype=np.float64)
    colours = np.array([col for _, col in ramp], dtype=np.float32)
    flat = np.nan_to_num(np.asarray(elev, dtype=np.float64), nan=stops[0]).ravel()
    out = np.empty((3, flat.size), dtype=np.float32)
    for k in range(3):
        out[k] = np.interp(flat, stops, colours[:, k])
    return out.reshape((3, *np.shape(elev)))


# --------------------------------------------------------------------------------------------
# tiles
# --------------------------------------------------------------------------------------------


# The relief tiles are WebMercatorQuad tiles (gis_core.tilematrix).
tile_bounds = tilematrix.bounds


@dataclass(frozen=True)
class _DemInfo:
    path: str
    stamp: tuple[int, int]
    crs: CRS
    transform: Affine
    width: int
    height: int
    res: float
    overviews: tuple[int, ...]
    bounds_3857: tuple[float, float, float, float]


_INFO_LOCK = threading.Lock()
_INFO: dict[str, _DemInfo] = {}
# rasterio datasets are not thread-safe: every thread keeps its own handles.
_LOCAL = threading.local()


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _dem_info(path: str | os.PathLike[str]) -> _DemInfo:
    key = os.path.realpath(path)
    stamp = _stamp(key)
    info = _INFO.get(key)
    if info is not None and info.stamp == stamp:
        return info
    with rasterio.open(key) as ds:
        if ds.crs is None:
            raise ValueError(f"{path}: DEM has no CRS")
        b3857 = transform_bounds(ds.crs, "EPSG:3857", *ds.bounds, densify_pts=21)
        info = _DemInfo(
            path=key,
            stamp=stamp,
            crs=ds.crs,
            transform=ds.transform,
            width=ds.width,
            height=ds.height,
            res=float(abs(ds.transform.a)),
            overviews=tuple(ds.overviews(1)),
            bounds_3857=b3857,
        )
    with _INFO_LOCK:
        _INFO[key] = info
    return info


def _handle(info: _DemInfo, level: int) -> Any:
    """This thread's open dataset for ``info`` at overview ``level`` (-1: full resolution)."""
    handles: dict[tuple[str, tuple[int, int], int], Any] | None = getattr(_LOCAL, "handles", None)
    if handles is None:
        handles = _LOCAL.handles = {}
    k = (info.path, info.stamp, level)
    ds = handles.get(k)
    if ds is None:
        for old in [o for o in handles if o[0] == info.path and o[1] != info.stamp]:
            handles.pop(old).close()
        kwargs = {} if level < 0 else {"overview_level": level}
        ds = handles[k] = rasterio.open(info.path, **kwargs)
    return ds


def _from_3857(info: _DemInfo) -> Transformer:
    """This thread's EPSG:3857 -> DEM CRS transformer (pyproj transformers are not shared)."""
    cache: dict[str, Transformer] | None = getattr(_LOCAL, "transformers", None)
    if cache is None:
        cache = _LOCAL.transformers = {}
    key = info.crs.to_wkt()
    tr = cache.get(key)
    if tr is None:
        tr = cache[key] = Transformer.from_crs("EPSG:3857", info.crs, always_xy=True)
    return tr


def _warp_to_tile(
    info: _DemInfo, west: float, north: float, res: float, n: int, ground: float
) -> FloatArray | None:
    """The DEM resampled onto an n×n EPSG:3857 grid (NaN outside the DEM), or None if empty.

    Source coordinates come from a 17×17 lattice of exactly projected points, interpolated
    (Catmull-Rom) in between; heights are sampled with a cubic spline when magnifying and
    bilinearly otherwise, from the coarsest overview still as fine as the tile. This stays
    clear of GDAL in-memory datasets, which are slower per tile and warn spuriously when
    used from several threads.
    """
    level, factor = -1, 1
    step = info.res if info.crs.is_projected else info.res * M_PER_DEG_LON_EQUATOR
    for k, f in enumerate(info.overviews):
        if step * f <= ground:
            level, factor = k, f
    ds = _handle(info, level)
    nodes = np.linspace(0.0, n - 1.0, 17)
    gx, gy = np.meshgrid(west + (nodes + 0.5) * res, north - (nodes + 0.5) * res)
    sx, sy = _from_3857(info).transform(gx, gy)
    inv = ~ds.transform
    ncol = inv.a * sx + inv.b * sy + inv.c - 0.5
    nrow = inv.d * sx + inv.e * sy + inv.f - 0.5
    if not (np.isfinite(ncol).all() and np.isfinite(nrow).all()):
        return None
    margin = 3  # room for the cubic kernel
    col0 = max(0, math.floor(ncol.min()) - margin)
    row0 = max(0, math.floor(nrow.min()) - margin)
    col1 = min(ds.width, math.ceil(ncol.max()) + margin + 1)
    row1 = min(ds.height, math.ceil(nrow.max()) + margin + 1)
    if col1 <= col0 or row1 <= row0:
        return None
    src = ds.read(1, window=Window(col0, row0, col1 - col0, row1 - row0)).astype(np.float32)
    valid = np.isfinite(src)
    if ds.nodata is not None and not math.isnan(ds.nodata):
        valid &= src != np.float32(ds.nodata)
    if not valid.any():
        return None
    src = _fill_nearest(src, valid)
    w = _weights_matrix(np.arange(n) * (16.0 / (n - 1.0)), 17, cubic=True)
    rows = _separable(nrow - row0, w, w).ravel()
    cols = _separable(ncol - col0, w, w).ravel()
    inside = ndimage.map_coordinates(
        valid.astype(np.float32), [rows, cols], order=1, mode="constant", cval=0.0
    )
    order = 3 if step * factor > ground else 1
    out = ndimage.map_coordinates(src, [rows, cols], order=order, mode="nearest")
    out = out.astype(np.float32)
    out[inside < 0.5] = np.nan
    return out.reshape(n, n)


def clear_dataset_cache() -> None:
    """Close this thread's dataset handles and forget cached DEM metadata."""
    handles = getattr(_LOCAL, "handles", {})
    for ds in handles.values():
        ds.close()
    handles.clear()
    with _INFO_LOCK:
        _INFO.clear()


def _encode_png(rgba: npt.NDArray[np.uint8]) -> bytes:
    _, h, w = rgba.shape
    # A dummy transform keeps rasterio from warning about a non-georeferenced PNG.
    with MemoryFile() as mem:
        with mem.open(
            driver="PNG",
            width=w,
            height=h,
            count=rgba.shape[0],
            dtype="uint8",
            transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(h)),
            ZLEVEL=4,
        ) as dst:
            dst.write(rgba)
        return bytes(mem.read())


@functools.lru_cache(maxsize=8)
def _transparent_png(tile_size: int) -> bytes:
    return _encode_png(np.zeros((4, tile_size, tile_size), dtype=np.uint8))


def render_tile(
    dem_path: str | os.PathLike[str],
    z: int,
    x: int,
    y: int,
    *,
    style: Style = "hillshade",
    tile_size: int = 256,
    azimuth: float = 315.0,
    altitude: float = 45.0,
    z_factor: float = 1.0,
    multidirectional: bool = False,
    ramp: Sequence[tuple[float, tuple[int, int, int]]] = DEFAULT_RAMP,
) -> bytes:
    """Render WebMercatorQuad tile z/x/y of a DEM as an RGBA PNG.

    The DEM window under the tile (from the overview nearest the tile's ground resolution) is
    warped to EPSG:3857 with a two-pixel margin so the hillshade kernel has real neighbours at
    the tile edge: adjacent tiles join without seams. Slopes use the ground size of a pixel
    (Mercator size × cos(latitude), row by row), so relief is not exaggerated towards the poles.

    Parameters
    ----------
    dem_path
        Single-band DEM in any projected or geographic CRS, heights in metres.
    z, x, y
        Tile indices (XYZ scheme, y down from the north).
    style
        ``"hillshade"`` (grey), ``"hypsometric"`` (colour by elevation) or ``"shaded_relief"``
        (colour × shade).
    tile_size
        Edge length in pixels (256 or 512 usually).
    azimuth, altitude, z_factor, multidirectional
        See :func:`hillshade`.
    ramp
        Hypsometric stops ``(metres, (r, g, b))`` in increasing order.

    Returns
    -------
    bytes
        PNG; pixels outside the DEM footprint or on nodata are fully transparent, and a tile
        that misses the DEM entirely is a shared constant.

    Raises
    ------
    TileOutOfRange
        For z/x/y outside the tile matrix.
    ValueError
        For an unknown style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    info = _dem_info(dem_path)
    bx0, by0, bx1, by1 = info.bounds_3857
    if minx >= bx1 or maxx <= bx0 or miny >= by1 or maxy <= by0:
        return _transparent_png(tile_size)

    pad = 2
    res = (maxx - minx) / tile_size
    n = tile_size + 2 * pad
    # Ground size of a pixel, row by row: Mercator scale is 1/cos(latitude).
    row_y = maxy + (pad - 0.5 - np.arange(n)) * res
    coslat = np.cos(np.arctan(np.sinh(row_y / _EARTH_R))).astype(np.float32)[:, None]
    ground = float(res * np.cos(np.arctan(np.sinh(((miny + maxy) / 2) / _EARTH_R))))
    dst = _warp_to_tile(info, minx - pad * res, maxy + pad * res, res, n, ground)
    if dst is None:
        return _transparent_png(tile_size)
    inner = (slice(pad, pad + tile_size), slice(pad, pad + tile_size))
    elev = dst[inner]
    alpha = np.isfinite(elev)
    if not alpha.any():
        return _transparent_png(tile_size)

    rgba = np.zeros((4, tile_size, tile_size), dtype=np.uint8)
    if style == "hypsometric":
        rgb = hypsometric_tint(elev, ramp)
    else:
        # Fill the footprint edge so the kernel does not spread NaN one pixel inwards.
        filled = np.where(np.isfinite(dst), dst, np.nanmean(elev)).astype(np.float32)
        cell = res * coslat
        hs = hillshade(
            filled,
            cell,
            cell,
            azimuth=azimuth,
            altitude=altitude,
            z_factor=z_factor,
            multidirectional=multidirectional,
        )[inner]
        if style == "hillshade":
            rgb = np.broadcast_to(255.0 * hs, (3, tile_size, tile_size))
        else:
            # Flat ground keeps the tint (hs on flat = sin(altitude)); lit slopes brighten.
            shade = np.clip(hs / math.sin(math.radians(altitude)), 0.0, 1.3)
            rgb = hypsometric_tint(elev, ramp) * (0.3 + 0.7 * shade)
    rgba[:3] = np.clip(rgb, 0, 255).astype(np.uint8)
    rgba[3] = np.where(alpha, 255, 0).astype(np.uint8)
    rgba[:3, ~alpha] = 0
    return _encode_png(rgba)


class ReliefTileStore:
    """Rendered relief tiles on disk as ``cache_dir / style / z / x / y.png``.

    Writes go to a temporary file in the same directory and are moved into place, so concurrent
    readers and writers never see a partial tile. Tiles that miss the DEM are not stored (they
    are a shared constant anyway). Delete the directory when the DEM changes.
    """

    def __init__(
        self,
        dem_path: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str],
        *,
        tile_size: int = 256,
    ) -> None:
        self.dem_path = Path(dem_path)
        self.cache_dir = Path(cache_dir)
        self.tile_size = tile_size

    def path_for(self, style: str, z: int, x: int, y: int) -> Path:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}")
        tile_bounds(z, x, y)  # validates, so no path is built from bad input
        return self.cache_dir / style / str(z) / str(x) / f"{y}.png"

    def get(self, z: int, x: int, y: int, style: Style = "hillshade") -> bytes:
        """The tile from disk, rendering and storing it on a miss."""
        path = self.path_for(style, z, x, y)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        data = render_tile(self.dem_path, z, x, y, style=style, tile_size=self.tile_size)
        if data is _transparent_png(self.tile_size):
            return data
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{y}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return data
