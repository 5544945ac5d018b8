"""The WebMercatorQuad tile matrix set (OGC 17-083r4), once: tile addresses, their bounds in
EPSG:3857 and the tile that holds a point. The vector tiles and the relief tiles both use it.

>>> bounds(1, 1, 0)[0], bounds(1, 1, 0)[3]
(0.0, 20037508.342789244)
>>> containing(0.0, 0.0, 1)
(1, 1)
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

ID: Final = "WebMercatorQuad"
MAX_ZOOM: Final = 22
HALF_WORLD: Final = 20037508.342789244  # metres from the origin to the edge of EPSG:3857
WORLD: Final = 2 * HALF_WORLD


class TileOutOfRange(ValueError):
    """A tile address outside the matrix: the message says which part."""


def check(z: int, x: int, y: int) -> None:
    """Raise :class:`TileOutOfRange` unless z/x/y is a tile of the matrix (x: column, y: row)."""
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (z, x, y)):
        raise TileOutOfRange(f"tile indices must be integers: {z}/{x}/{y}")
    if not 0 <= z <= MAX_ZOOM:
        raise TileOutOfRange(f"tileMatrix {z} is outside {ID} (0..{MAX_ZOOM})")
    n = 1 << int(z)
    if not (0 <= x < n and 0 <= y < n):
        raise TileOutOfRange(f"tile {z}/{y}/{x} (row/col) lies outside the matrix (0..{n - 1})")


def bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """EPSG:3857 bounds (minx, miny, maxx, maxy) of tile z/x/y."""
    check(z, x, y)
    size = WORLD / (1 << int(z))
    minx = -HALF_WORLD + x * size
    maxy = HALF_WORLD - y * size
    return minx, maxy - size, minx + size, maxy


def containing(lon: float, lat: float, z: int) -> tuple[int, int]:
    """(col, row) of the tile at zoom ``z`` that holds a lon/lat point."""
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y
