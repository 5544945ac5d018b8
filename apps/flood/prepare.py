"""The DEM-wide preparation run: filled DEM, D8 directions, accumulation, streams and HAND,
written as Cloud-Optimized GeoTIFFs, with peak memory held to about 16 bytes a cell.

Priority-flood and accumulation are global (a cell's answer can depend on the far side of
the grid), so the grid is held whole, but only in compact arrays, and each stage frees what
the next does not need. Bytes per cell held at the peak of each stage:

=============================  =========================================================  ====
stage                          arrays                                                     B/c
=============================  =========================================================  ====
read                           elevation float32 (read window by window, no copy), valid    5
fill                           + closed flags uint8 (inside the kernel), open heap*          6
directions, flats              + direction uint8, flat labels int32 (freed after)           10
accumulation                   elevation, valid, direction, count uint32, indegree uint8    11
HAND                           elevation, valid, direction, stream uint8, drain int32,      15
                               HAND float32 (accumulation written out and freed first)
=============================  =========================================================  ====

\\* The heap holds the flooded region's frontier (16 B an entry); on real terrain that is a
small fraction of the cells. Each raster is written window by window to a tiled GeoTIFF and
then copied to a COG by GDAL, which streams blocks through its own bounded cache.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from rasterio.windows import Window
from scipy import ndimage

from apps.flood import hydrology as hy

__all__ = ["PreparedDem", "prepare_dem"]

_ROWS_PER_WINDOW = 512
_GDAL_CACHE_MB = 64


@dataclass(frozen=True)
class PreparedDem:
    """Paths of the COGs written by :func:`prepare_dem`, and what the run found."""

    filled: Path
    directions: Path
    accumulation: Path
    streams: Path
    hand: Path
    cells: int
    valid_cells: int
    stream_threshold_cells: int
    notes: list[str] = field(default_factory=list)


def _windows(height: int, width: int) -> Iterator[tuple[Window, slice]]:
    for r0 in range(0, height, _ROWS_PER_WINDOW):
        r1 = min(height, r0 + _ROWS_PER_WINDOW)
        yield Window(0, r0, width, r1 - r0), slice(r0, r1)


def _write_cog(
    path: Path, array: np.ndarray, profile: dict[str, Any], nodata: float | int | None, desc: str
) -> Path:
    """Write ``array`` window by window to a tiled GeoTIFF, then copy it to a COG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tif", dir=path.parent, prefix=".tmp-flood-")
    os.close(fd)
    out_tmp = path.with_name(f".{path.name}.partial")
    prof = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": profile["crs"],
        "transform": profile["transform"],
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    try:
        with rasterio.open(tmp, "w", **prof) as dst:
            for win, rows in _windows(*array.shape):
                dst.write(array[rows], 1, window=win)
            dst.set_band_description(1, desc)
        predictor = "3" if array.dtype.kind == "f" else "2"
        # GDAL's block cache defaults to 5 % of RAM: bound it so the copy streams
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
            rasterio.shutil.copy(
                tmp,
                out_tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR=predictor,
                BIGTIFF="IF_SAFER",
            )
        os.replace(out_tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        out_tmp.unlink(missing_ok=True)
    return path


def prepare_dem(
    dem_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    stream_area_km2: float = 1.0,
) -> PreparedDem:
    """Condition a DEM and derive directions, accumulation, streams and HAND, as COGs.

    Parameters
    ----------
    dem_path
        A single-band DEM in a metric CRS (e.g. ``ensure_dem``'s EPSG:4547 GeoTIFF).
    out_dir
        Folder for ``filled.tif``, ``d8.tif`` (ESRI codes), ``accumulation.tif`` (cells),
        ``streams.tif`` (Strahler order, 0 off-stream) and ``hand.tif`` (m).
    stream_area_km2
        Drained area that starts a stream.

    Returns
    -------
    PreparedDem
    """
    out = Path(out_dir)
    with rasterio.open(dem_path) as src:
        if src.crs is None or not src.crs.is_projected:
            raise hy.HydrologyError(f"{dem_path}: the DEM needs a projected (metric) CRS")
        profile = {"crs": src.crs, "transform": src.transform}
        dx, dy = abs(src.transform.a), abs(src.transform.e)
        h, w = src.height, src.width
        nodata = src.nodata
        z = np.empty((h, w), dtype=np.float32)
        for win, rows in _windows(h, w):
            src.read(1, window=win, out=z[rows])
    valid = np.isfinite(z)
    if nodata is not None and not math.isnan(nodata):
        valid &= z != np.float32(nodata)
    nodata_out = float(nodata) if nodata is not None else -32768.0
    notes: list[str] = []

    hy._priority_flood(z, valid)
    filled = _write_cog(out / "filled.tif", z, profile, nodata_out, "depression-filled DEM (m)")

    fdir = np.zeros((h, w), dtype=np.uint8)
    d = math.hypot(dx, dy)
    hy._d8(z, valid, np.array([dx, d, dy, d, dx, d, dy, d]), fdir)
    labels, n_flats = ndimage.label((fdir == 0) & valid, structure=np.ones((3, 3), dtype=bool))
    if n_flats:
        boxes = np.array(
            [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)],
            dtype=np.int64,
        )
        undrained = hy._resolve_flats(z, valid, fdir, labels, boxes)
        if undrained:
            notes.append(f"{undrained} flats had no outlet and keep direction 0")
    del labels
    directions = _write_cog(out / "d8.tif", fdir, profile, 0, "D8 flow direction (ESRI codes)")

    acc = valid.astype(np.uint32)
    hy._accumulate(fdir, valid, hy._CODE_TO_K, acc)
    accumulation = _write_cog(out / "accumulation.tif", acc, profile, 0, "upstream cells")
    threshold = max(1, round(stream_area_km2 * 1e6 / (dx * dy)))
    stream = (acc >= threshold).view(np.uint8)
    del acc

    order = np.zeros((h, w), dtype=np.uint8)
    hy._strahler(fdir, stream.view(bool), hy._CODE_TO_K, order)
    streams_path = _write_cog(out / "streams.tif", order, profile, 0, "Strahler order")
    del order
    drain = np.empty(h * w, dtype=np.int32)
    hy._nearest_drainage(fdir, valid, stream.view(bool), hy._CODE_TO_K, drain)
    del stream
    hand = np.empty((h, w), dtype=np.float32)
    hy._hand_from_drain(z, drain, hand)
    del drain
    hand[~valid] = np.nan
    hand_path = _write_cog(out / "hand.tif", hand, profile, float("nan"), "HAND (m)")
    return PreparedDem(
        filled=filled,
        directions=directions,
        accumulation=accumulation,
        streams=streams_path,
        hand=hand_path,
        cells=h * w,
        valid_cells=int(valid.sum()),
        stream_threshold_cells=threshold,
        notes=notes,
    )


def read_band(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """Band 1 of a raster (for tests and small grids)."""
    with rasterio.open(path) as src:
        return src.read(1)
