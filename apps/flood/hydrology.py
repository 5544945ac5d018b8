"""Hydrological conditioning of a DEM and what follows from it: D8 directions, accumulation,
streams, catchments and HAND.

Every function takes plain numpy arrays (row 0 at the north, as rasterio reads them), the
cell size in metres where distances matter, and a boolean ``valid`` mask (False = nodata).
The sequential kernels (a priority queue, walks down flow paths) are compiled with numba;
each is O(N) or O(N log N) and touches only the arrays listed in its docstring.

Conventions
-----------
Flow directions use the ESRI D8 encoding, clockwise from east::

    32  64  128
    16   x    1
     8   4    2

pysheds' default ``dirmap=(64, 128, 1, 2, 4, 8, 16, 32)`` lists the same codes in the order
N, NE, E, SE, S, SW, W, NW, so the rasters are directly comparable. ``0`` means "no
direction" (nodata, or an undrained pit/flat before :func:`resolve_flats`).

Edges and nodata holes: a valid cell on the grid edge or 8-adjacent to nodata is an *outlet
candidate*. Like ESRI's ``NORMAL`` edge rule, it drains to its steepest lower valid neighbour
if it has one, otherwise out of the grid (its code points at the outside or nodata neighbour
and its receiver is ``-1``). Priority-flood seeds from exactly these cells, so water reaching a
nodata hole leaves the DEM there, as at the edge.

Examples
--------
>>> filled = fill_depressions(dem, valid)  # doctest: +SKIP
>>> fdir = flow_directions(filled, valid, 30.0, 30.0)  # doctest: +SKIP
>>> fdir = resolve_flats(filled, fdir, valid)  # doctest: +SKIP
>>> acc = flow_accumulation(fdir)  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Final

import numba
import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "CODES",
    "PYSHEDS_DIRMAP",
    "Catchment",
    "HydrologyError",
    "catchment",
    "fill_depressions",
    "flow_accumulation",
    "flow_directions",
    "height_above_nearest_drainage",
    "receivers",
    "resolve_flats",
    "snap_pour_point",
    "strahler_order",
    "streams",
]

#: ESRI D8 codes, index k = 0..7 clockwise from east.
CODES: Final = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=np.uint8)
#: The same codes in pysheds' order (N, NE, E, SE, S, SW, W, NW).
PYSHEDS_DIRMAP: Final = (64, 128, 1, 2, 4, 8, 16, 32)
_DR: Final = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)
_DC: Final = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)
_CODE_TO_K: Final = np.full(256, -1, dtype=np.int8)
_CODE_TO_K[CODES] = np.arange(8, dtype=np.int8)


class HydrologyError(ValueError):
    """An input a hydrological function cannot work with (shape, dtype, pour point...)."""


def _check_grid(dem: np.ndarray, valid: np.ndarray | None) -> npt.NDArray[np.bool_]:
    if dem.ndim != 2 or min(dem.shape) < 1:
        raise HydrologyError(f"the DEM must be a non-empty 2-D array, got shape {dem.shape}")
    if valid is None:
        valid = np.isfinite(dem)
    elif valid.shape != dem.shape:
        raise HydrologyError(f"valid mask shape {valid.shape} differs from DEM {dem.shape}")
    valid = np.asarray(valid, dtype=np.bool_)
    if not np.isfinite(dem[valid]).all():
        raise HydrologyError("the DEM has NaN or infinite heights in cells marked valid")
    return valid


def _check_dirs(fdir: np.ndarray) -> None:
    if fdir.ndim != 2 or fdir.dtype != np.uint8:
        raise HydrologyError(f"flow directions must be a 2-D uint8 array, got {fdir.dtype}")
    bad = ~np.isin(fdir, np.concatenate([CODES, [0]]))
    if bad.any():
        raise HydrologyError(
            f"flow directions hold {int(bad.sum())} values that are not ESRI D8 codes"
        )


# ---------------------------------------------------------------------------------------------
# depression filling
# ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _priority_flood(z: np.ndarray, valid: np.ndarray) -> None:  # pragma: no cover - jitted
    """Priority-Flood + pit queue (Barnes, Lehman & Mulla 2014, Algorithm 2), in place.

    Memory: ``z`` (the DEM, filled in place), one byte per cell of "closed" flags, the open
    heap (the flooded region's frontier) and a ring buffer of pit cells.
    """
    h, w = z.shape
    zf = z.ravel()
    vf = valid.ravel()
    closed = np.zeros(h * w, dtype=np.uint8)
    heap = [(np.float64(0.0), np.int64(0))]
    heap.pop()
    for r in range(h):
        for c in range(w):
            i = r * w + c
            if not vf[i]:
                continue
            seed = r == 0 or c == 0 or r == h - 1 or c == w - 1
            k = 0
            while not seed and k < 8:
                if not vf[(r + _DR[k]) * w + c + _DC[k]]:
                    seed = True
                k += 1
            if seed:
                closed[i] = 1
                heap.append((np.float64(zf[i]), np.int64(i)))
    heapq.heapify(heap)
    cap = 1024
    pit = np.empty(cap, dtype=np.int64)
    head = 0
    size = 0
    while size > 0 or len(heap) > 0:
        if size > 0:
            i = pit[head]
            head = (head + 1) % cap
            size -= 1
        else:
            i = heapq.heappop(heap)[1]
        r = i // w
        c = i - r * w
        zi = zf[i]
        for k in range(8):
            rr = r + _DR[k]
            cc = c + _DC[k]
            if rr < 0 or rr >= h or cc < 0 or cc >= w:
                continue
            j = rr * w + cc
            if closed[j] or not vf[j]:
                continue
            closed[j] = 1
            if zf[j] <= zi:
                zf[j] = zi
                if size == cap:  # grow the ring buffer, unrolling it
                    grown = np.empty(cap * 2, dtype=np.int64)
                    for q in range(size):
                        grown[q] = pit[(head + q) % cap]
                    pit = grown
                    head = 0
                    cap *= 2
                pit[(head + size) % cap] = j
                size += 1
            else:
                heapq.heappush(heap, (np.float64(zf[j]), np.int64(j)))


def fill_depressions(
    dem: npt.NDArray[np.floating], valid: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.float32]:
    """Fill every depression to its spill level (priority-flood, no epsilon).

    Parameters
    ----------
    dem
        Heights (m), 2-D. Copied to float32 (the input is left alone).
    valid
        False on nodata cells; default: the finite cells. Water reaching nodata leaves the
        grid there, as at the edge (cells next to nodata seed the flood).

    Returns
    -------
    numpy.ndarray
        float32 surface where every valid cell has a non-ascending path to an outlet. Filled
        depressions are exactly flat at their spill height; :func:`resolve_flats` gives them
        directions. Nodata cells keep their input value.

    Examples
    --------
    >>> dem = np.array([[5, 5, 5], [5, 1, 5], [5, 4, 5]], dtype=np.float32)
    >>> float(fill_depressions(dem)[1, 1])
    4.0
    """
    valid = _check_grid(dem, valid)
    z = np.array(dem, dtype=np.float32, copy=True)
    _priority_flood(z, valid)
    return z


# ---------------------------------------------------------------------------------------------
# D8 directions and flats
# ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _d8(
    z: np.ndarray, valid: np.ndarray, dist: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    h, w = z.shape
    for r in range(h):
        for c in range(w):
            if not valid[r, c]:
                out[r, c] = 0
                continue
            zc = z[r, c]
            best = 0.0
            code = 0
            outward = -1
            for k in range(8):
                rr = r + _DR[k]
                cc = c + _DC[k]
                if rr < 0 or rr >= h or cc < 0 or cc >= w or not valid[rr, cc]:
                    if outward < 0:
                        outward = k
                    continue
                slope = (zc - z[rr, cc]) / dist[k]
                if slope > best:  # strict: ties keep the first direction clockwise from east
                    best = slope
                    code = 1 << k
            if code == 0 and outward >= 0:
                code = 1 << outward
            out[r, c] = code


def flow_directions(
    dem: npt.NDArray[np.floating],
    valid: npt.NDArray[np.bool_] | None,
    dx: float,
    dy: float,
) -> npt.NDArray[np.uint8]:
    """D8 steepest-descent directions (ESRI codes), ``0`` on flats, pits and nodata.

    The drop is divided by the distance to the neighbour (``dx``, ``dy`` or their
    hypotenuse), so non-square cells are handled. Ties keep the first direction clockwise
    from east. Outlet candidates (edge or next to nodata) with no lower neighbour point out of
    the grid (module docstring).
    """
    valid = _check_grid(dem, valid)
    if not (dx > 0 and dy > 0):
        raise HydrologyError(f"cell size must be positive, got dx={dx}, dy={dy}")
    d = math.hypot(dx, dy)
    dist = np.array([dx, d, dy, d, dx, d, dy, d], dtype=np.float64)
    out = np.zeros(dem.shape, dtype=np.uint8)
    _d8(np.asarray(dem, dtype=np.float32), valid, dist, out)
    return out


@numba.njit(cache=True)
def _resolve_flats(
    z: np.ndarray, valid: np.ndarray, fdir: np.ndarray, labels: np.ndarray, boxes: np.ndarray
) -> int:  # pragma: no cover - jitted
    """Barnes, Lehman & Mulla (2014b) flat resolution, one flat at a time in its bounding box.

    Local arrays are the size of one flat's box, so memory stays at the label raster.
    Returns the number of flats that had no low edge (left undrained).
    """
    h, w = z.shape
    undrained = 0
    for f in range(boxes.shape[0]):
        lab = f + 1
        r0 = max(boxes[f, 0] - 1, 0)
        r1 = min(boxes[f, 1] + 1, h)
        c0 = max(boxes[f, 2] - 1, 0)
        c1 = min(boxes[f, 3] + 1, w)
        bh = r1 - r0
        bw = c1 - c0
        # 1: cell of this flat (no direction), 2: low edge (a direction, same height, adjacent)
        kind = np.zeros((bh, bw), dtype=np.uint8)
        away = np.zeros((bh, bw), dtype=np.int32)
        mask = np.zeros((bh, bw), dtype=np.int32)
        qr = np.empty(bh * bw, dtype=np.int32)
        qc = np.empty(bh * bw, dtype=np.int32)
        zf = np.float32(0.0)
        for r in range(r0, r1):
            for c in range(c0, c1):
                if labels[r, c] == lab:
                    kind[r - r0, c - c0] = 1
                    zf = z[r, c]
        n_low = 0
        n_high = 0
        hr = np.empty(bh * bw, dtype=np.int32)
        hc = np.empty(bh * bw, dtype=np.int32)
        for r in range(bh):
            for c in range(bw):
                if kind[r, c] != 1:
                    continue
                higher = False
                for k in range(8):
                    rr = r + _DR[k]
                    cc = c + _DC[k]
                    if rr < 0 or rr >= bh or cc < 0 or cc >= bw:
                        continue
                    gr = rr + r0
                    gc = cc + c0
                    if not valid[gr, gc]:
                        continue
                    if kind[rr, cc] == 0 and labels[gr, gc] == 0 and fdir[gr, gc] != 0:
                        if z[gr, gc] == zf:
                            kind[rr, cc] = 2
                            qr[n_low] = rr
                            qc[n_low] = cc
                            n_low += 1
                        elif z[gr, gc] > zf:
                            higher = True
                    elif kind[rr, cc] == 0 and z[gr, gc] > zf:
                        higher = True
                if higher:
                    hr[n_high] = r
                    hc[n_high] = c
                    n_high += 1
        if n_low == 0:
            undrained += 1
            continue
        # away from higher: BFS distance from the high edges (1 at the edge)
        top = 0
        if n_high > 0:
            for q in range(n_high):
                away[hr[q], hc[q]] = 1
            head = 0
            tail = n_high
            while head < tail:
                r = hr[head]
                c = hc[head]
                head += 1
                top = max(top, away[r, c])
                for k in range(8):
                    rr = r + _DR[k]
                    cc = c + _DC[k]
                    if 0 <= rr < bh and 0 <= cc < bw and kind[rr, cc] == 1 and away[rr, cc] == 0:
                        away[rr, cc] = away[r, c] + 1
                        hr[tail] = rr
                        hc[tail] = cc
                        tail += 1
        # towards lower: BFS distance from the low edges, doubled, plus the away gradient
        dist = np.zeros((bh, bw), dtype=np.int32)
        for q in range(n_low):
            dist[qr[q], qc[q]] = 1
        head = 0
        tail = n_low
        while head < tail:
            r = qr[head]
            c = qc[head]
            head += 1
            mask[r, c] = 2 * dist[r, c]
            if away[r, c] > 0:
                mask[r, c] += top - away[r, c] + 1
            for k in range(8):
                rr = r + _DR[k]
                cc = c + _DC[k]
                if 0 <= rr < bh and 0 <= cc < bw and kind[rr, cc] == 1 and dist[rr, cc] == 0:
                    dist[rr, cc] = dist[r, c] + 1
                    qr[tail] = rr
                    qc[tail] = cc
                    tail += 1
        # D8 over the mask: each flat cell drains to its lowest-mask neighbour in the flat
        for r in range(bh):
            for c in range(bw):
                if kind[r, c] != 1 or dist[r, c] == 0:
                    continue
                best = mask[r, c]
                code = 0
                for k in range(8):
                    rr = r + _DR[k]
                    cc = c + _DC[k]
                    inside = 0 <= rr < bh and 0 <= cc < bw
                    if inside and kind[rr, cc] != 0 and mask[rr, cc] < best:
                        best = mask[rr, cc]
                        code = 1 << k
                fdir[r + r0, c + c0] = code
    return undrained


def resolve_flats(
    dem: npt.NDArray[np.floating],
    fdir: npt.NDArray[np.uint8],
    valid: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.uint8]:
    """Give directions to flat cells (Barnes, Lehman & Mulla 2014, *Computers & Geosciences*
    62: "An efficient assignment of drainage direction over flat surfaces in raster digital
    elevation models").

    Each flat (8-connected cells of equal height with no direction) gets a gradient towards
    its low edges (cells of the same height that already drain) and, superimposed at half
    weight, a gradient away from higher terrain, so flow converges into the middle of the
    flat rather than hugging one side. The DEM itself is not altered.

    Parameters
    ----------
    dem
        Depression-filled heights (:func:`fill_depressions`).
    fdir
        Directions from :func:`flow_directions` on that DEM; modified in place and returned.
    valid
        False on nodata.

    Returns
    -------
    numpy.ndarray
        ``fdir`` with every flat cell that has a drained low edge given a direction. On a
        depression-filled DEM that is every flat cell.

    Notes
    -----
    Neighbours are compared by mask value only (no distance weighting), as in Barnes' code.
    """
    valid = _check_grid(dem, valid)
    _check_dirs(fdir)
    if fdir.shape != dem.shape:
        raise HydrologyError(f"directions shape {fdir.shape} differs from DEM {dem.shape}")
    flat = (fdir == 0) & valid
    # adjacent undirected cells have equal heights (else the higher would have a direction)
    labels, n = ndimage.label(flat, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return fdir
    objs = ndimage.find_objects(labels)
    boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in objs], dtype=np.int64)
    _resolve_flats(np.asarray(dem, dtype=np.float32), valid, fdir, labels, boxes)
    return fdir


# ---------------------------------------------------------------------------------------------
# receivers, accumulation, streams
# ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _receiver(
    fdir_flat: np.ndarray, code_to_k: np.ndarray, i: int, h: int, w: int
) -> int:  # pragma: no cover
    k = code_to_k[fdir_flat[i]]
    if k < 0:
        return -1
    r = i // w + _DR[k]
    c = i % w + _DC[k]
    if r < 0 or r >= h or c < 0 or c >= w:
        return -1
    return r * w + c


def receivers(fdir: npt.NDArray[np.uint8], valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Flat index of each cell's D8 receiver; ``-1`` where the flow leaves the grid or data.

    Vectorized numpy (8 bytes a cell): for small grids and for callers that want the graph.
    """
    _check_dirs(fdir)
    if valid.shape != fdir.shape:
        raise HydrologyError(f"valid mask shape {valid.shape} differs from {fdir.shape}")
    h, w = fdir.shape
    k = _CODE_TO_K[fdir].astype(np.int64)
    has = k >= 0
    rows, cols = np.indices((h, w))
    rr = rows + np.where(has, _DR[k], 0)
    cc = cols + np.where(has, _DC[k], 0)
    inside = has & valid & (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    out = np.where(inside, rr * w + cc, -1).ravel()
    lands = out >= 0
    out[lands] = np.where(valid.ravel()[out[lands]], out[lands], -1)
    return out


@numba.njit(cache=True)
def _accumulate(
    fdir: np.ndarray, valid: np.ndarray, code_to_k: np.ndarray, acc: np.ndarray
) -> None:  # pragma: no cover
    """Add each cell's ``acc`` to everything downstream, in topological order.

    Indegrees (one byte a cell) are counted; then from every source cell the walk goes
    downstream, handing the total on, and stops at a confluence until its last tributary
    arrives. No queue: memory is ``acc`` + the indegrees.
    """
    h, w = fdir.shape
    fd = fdir.ravel()
    vf = valid.ravel()
    af = acc.ravel()
    n = h * w
    indeg = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if vf[i]:
            j = _receiver(fd, code_to_k, i, h, w)
            if j >= 0 and vf[j]:
                indeg[j] += 1
    for i in range(n):
        if not vf[i] or indeg[i] != 0:
            continue
        j = i
        while True:
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not vf[r]:
                break
            af[r] += af[j]
            indeg[r] -= 1
            if indeg[r] > 0:
                break
            indeg[r] = 255  # done: the loop over i must not start from it again
            j = r


def flow_accumulation(
    fdir: npt.NDArray[np.uint8],
    valid: npt.NDArray[np.bool_] | None = None,
    weights: npt.NDArray[np.floating] | None = None,
) -> npt.NDArray[np.float64]:
    """Number of cells (or sum of ``weights``) draining through each cell, itself included.

    Parameters
    ----------
    fdir
        ESRI D8 codes (:func:`resolve_flats`).
    valid
        False on nodata; default: every cell valid.
    weights
        Optional per-cell amount (e.g. rain depth × cell area); default 1 per cell.

    Returns
    -------
    numpy.ndarray
        float64 (exact cell counts up to 2**53); 0 on nodata.

    Examples
    --------
    >>> fdir = np.array([[1, 1, 4]], dtype=np.uint8)  # west to east, then out to the south
    >>> flow_accumulation(fdir).tolist()
    [[1.0, 2.0, 3.0]]
    """
    _check_dirs(fdir)
    if valid is None:
        valid = np.ones(fdir.shape, dtype=bool)
    if valid.shape != fdir.shape:
        raise HydrologyError(f"valid mask shape {valid.shape} differs from {fdir.shape}")
    if weights is None:
        acc = valid.astype(np.float64)
    else:
        if weights.shape != fdir.shape:
            raise HydrologyError(f"weights shape {weights.shape} differs from {fdir.shape}")
        acc = np.where(valid, np.asarray(weights, dtype=np.float64), 0.0)
    _accumulate(np.ascontiguousarray(fdir), np.ascontiguousarray(valid), _CODE_TO_K, acc)
    return acc


def streams(
    accumulation: npt.NDArray[np.floating], threshold_cells: float
) -> npt.NDArray[np.bool_]:
    """Stream cells: accumulation at or above ``threshold_cells`` (a cell count)."""
    if not threshold_cells >= 1:
        raise HydrologyError(f"stream threshold must be at least 1 cell, got {threshold_cells}")
    return np.asarray(accumulation >= threshold_cells)


@numba.njit(cache=True)
def _strahler(
    fdir: np.ndarray, stream: np.ndarray, code_to_k: np.ndarray, order: np.ndarray
) -> None:  # pragma: no cover
    h, w = fdir.shape
    fd = fdir.ravel()
    sf = stream.ravel()
    of = order.ravel()
    n = h * w
    indeg = np.zeros(n, dtype=np.uint8)
    top = np.zeros(n, dtype=np.uint8)
    count = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if sf[i]:
            j = _receiver(fd, code_to_k, i, h, w)
            if j >= 0 and sf[j]:
                indeg[j] += 1
    for i in range(n):
        if not sf[i] or indeg[i] != 0 or of[i] != 0:
            continue
        j = i
        while True:
            if top[j] == 0:
                of[j] = 1
            else:
                of[j] = top[j] + (1 if count[j] >= 2 else 0)
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not sf[r]:
                break
            if of[j] > top[r]:
                top[r] = of[j]
                count[r] = 1
            elif of[j] == top[r]:
                count[r] += 1
            indeg[r] -= 1
            if indeg[r] > 0:
                break
            j = r


def strahler_order(
    fdir: npt.NDArray[np.uint8], stream: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint8]:
    """Strahler order of each stream cell (0 off the streams).

    A source is order 1; where two or more tributaries of the highest incoming order meet,
    the order goes up by one, otherwise it carries on.
    """
    _check_dirs(fdir)
    order = np.zeros(fdir.shape, dtype=np.uint8)
    _strahler(np.ascontiguousarray(fdir), np.ascontiguousarray(stream), _CODE_TO_K, order)
    return order


# ---------------------------------------------------------------------------------------------
# catchments and HAND
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catchment:
    """The area draining to one pour point."""

    row: int
    col: int
    mask: npt.NDArray[np.bool_]
    cells: int
    area_m2: float


def snap_pour_point(
    accumulation: npt.NDArray[np.floating], row: float, col: float, radius_cells: int
) -> tuple[int, int]:
    """The cell of highest accumulation within ``radius_cells`` (a disc) of ``(row, col)``.

    Ties go to the cell nearest the given point.
    """
    h, w = accumulation.shape
    r, c = math.floor(row), math.floor(col)
    if not (0 <= r < h and 0 <= c < w):
        raise HydrologyError(f"pour point row {row}, col {col} lies outside the {h}×{w} grid")
    if radius_cells < 0:
        raise HydrologyError(f"snap radius must be >= 0 cells, got {radius_cells}")
    r0, r1 = max(r - radius_cells, 0), min(r + radius_cells + 1, h)
    c0, c1 = max(c - radius_cells, 0), min(c + radius_cells + 1, w)
    rr, cc = np.mgrid[r0:r1, c0:c1]
    d2 = (rr - r) ** 2 + (cc - c) ** 2
    window = np.where(d2 <= radius_cells**2, accumulation[r0:r1, c0:c1], -np.inf)
    best = window.max()
    pick = np.flatnonzero((window == best).ravel())
    k = pick[np.argmin(d2.ravel()[pick])]
    return int(rr.ravel()[k]), int(cc.ravel()[k])


@numba.njit(cache=True)
def _drains_to(
    fdir: np.ndarray, valid: np.ndarray, code_to_k: np.ndarray, target: int
) -> np.ndarray:  # pragma: no cover
    """1 for cells whose flow path reaches ``target``, walking down with memoisation."""
    h, w = fdir.shape
    fd = fdir.ravel()
    vf = valid.ravel()
    n = h * w
    state = np.zeros(n, dtype=np.uint8)  # 0 unknown, 1 reaches target, 2 does not
    state[target] = 1
    for i in range(n):
        if state[i] != 0 or not vf[i]:
            continue
        j = i
        steps = 0
        while state[j] == 0 and steps <= n:
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not vf[r]:
                break
            j = r
            steps += 1
        verdict = state[j] if state[j] != 0 else np.uint8(2)
        j = i
        while state[j] == 0:
            state[j] = verdict
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not vf[r]:
                break
            j = r
    return state.reshape(h, w) == 1


def catchment(
    fdir: npt.NDArray[np.uint8],
    accumulation: npt.NDArray[np.floating],
    row: float,
    col: float,
    *,
    cell_area_m2: float,
    snap_radius_cells: int = 0,
    valid: npt.NDArray[np.bool_] | None = None,
) -> Catchment:
    """The catchment (watershed) of a pour point, snapped to the strongest flow nearby.

    Parameters
    ----------
    fdir, accumulation
        D8 codes and :func:`flow_accumulation` counts.
    row, col
        Pour point in pixel coordinates (``~transform * (x, y)``).
    cell_area_m2
        Area of one cell, for ``area_m2``.
    snap_radius_cells
        Search radius for :func:`snap_pour_point`; 0 keeps the given cell.
    """
    _check_dirs(fdir)
    if valid is None:
        valid = np.ones(fdir.shape, dtype=bool)
    r, c = snap_pour_point(accumulation, row, col, snap_radius_cells)
    if not valid[r, c]:
        raise HydrologyError(f"pour point ({r}, {c}) is on nodata")
    mask = _drains_to(
        np.ascontiguousarray(fdir), np.ascontiguousarray(valid), _CODE_TO_K, r * fdir.shape[1] + c
    )
    cells = int(mask.sum())
    return Catchment(r, c, mask, cells, cells * float(cell_area_m2))


@numba.njit(cache=True)
def _nearest_drainage(
    fdir: np.ndarray,
    valid: np.ndarray,
    stream: np.ndarray,
    code_to_k: np.ndarray,
    drain: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """``drain[i]``: flat index of the first stream cell on i's flow path, -1 if none.

    Two walks per unknown path (find, then write), so each cell is written once: O(N).
    """
    h, w = fdir.shape
    fd = fdir.ravel()
    vf = valid.ravel()
    sf = stream.ravel()
    n = h * w
    unknown = -2
    for i in range(n):
        drain[i] = i if (sf[i] and vf[i]) else unknown
    for i in range(n):
        if drain[i] != unknown or not vf[i]:
            if not vf[i]:
                drain[i] = -1
            continue
        j = i
        while drain[j] == unknown:
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not vf[r]:
                break
            j = r
        found = drain[j] if drain[j] != unknown else -1
        j = i
        while drain[j] == unknown:
            drain[j] = found
            r = _receiver(fd, code_to_k, j, h, w)
            if r < 0 or not vf[r]:
                break
            j = r


@numba.njit(cache=True)
def _hand_from_drain(z: np.ndarray, drain: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    zf = z.ravel()
    of = out.ravel()
    for i in range(zf.size):
        d = drain[i]
        of[i] = zf[i] - zf[d] if d >= 0 else np.nan


def height_above_nearest_drainage(
    dem: npt.NDArray[np.floating],
    fdir: npt.NDArray[np.uint8],
    stream: npt.NDArray[np.bool_],
    valid: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """HAND (Rennó et al. 2008; Nobre et al. 2011): height of each cell above the stream cell
    its D8 path reaches first.

    Parameters
    ----------
    dem
        Heights to difference; the conditioned (filled) DEM, so HAND >= 0 along every path.
    fdir, stream
        D8 codes and the stream mask (:func:`streams`).

    Returns
    -------
    hand : numpy.ndarray
        float32 metres; NaN on nodata and on cells whose path leaves the grid before meeting
        a stream.
    drain : numpy.ndarray
        int32 flat index of that stream cell (-1 where none), so a stage given per stream cell
        or reach can be looked up for every cell.
    """
    valid = _check_grid(dem, valid)
    _check_dirs(fdir)
    if stream.shape != dem.shape or fdir.shape != dem.shape:
        raise HydrologyError("DEM, directions and stream mask must have the same shape")
    if dem.size >= 2**31:
        raise HydrologyError("grids of 2**31 cells or more need a tiled HAND")
    drain = np.empty(dem.size, dtype=np.int32)
    _nearest_drainage(
        np.ascontiguousarray(fdir), valid, np.ascontiguousarray(stream), _CODE_TO_K, drain
    )
    hand = np.empty(dem.shape, dtype=np.float32)
    _hand_from_drain(np.asarray(dem, dtype=np.float32), drain, hand)
    return hand, drain.reshape(dem.shape)
