"""Elevations from the reference DEM at lon/lat points (rasterio; any DEM CRS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform as warp_transform


def elevation_at(dem_path: Path | str, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Elevation (m) of the DEM cell under each lon/lat point; NaN off the DEM or on nodata.

    Raises
    ------
    FileNotFoundError
        The DEM file is not there (the reference dataset names one it no longer has).
    """
    path = Path(dem_path)
    if not path.is_file():
        raise FileNotFoundError(f"the DEM {path} is missing: reload the reference dataset")
    lons = np.atleast_1d(np.asarray(lon, dtype=float))
    lats = np.atleast_1d(np.asarray(lat, dtype=float))
    out = np.full(lons.shape, np.nan)
    if lons.size == 0:
        return out
    with rasterio.open(path) as ds:
        xs, ys = warp_transform("EPSG:4326", ds.crs, lons.tolist(), lats.tolist())
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, ys)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < ds.height) & (cols >= 0) & (cols < ds.width)
        if inside.any():
            band = ds.read(1, masked=True)
            values = band[rows[inside], cols[inside]]
            out[inside] = np.ma.filled(values.astype(float), np.nan)
    return out
