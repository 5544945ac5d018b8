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


URI: Final = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS: Final = "http://www.opengis.net/def/crs/EPSG/0/3857"
TILE_SIZE: Final = 256
# OGC 17-083r4 Annex D: the scale at zoom 0 for 0.28 mm pixels, and the metres of one pixel.
SCALE_0: Final = 559082264.0287178
CELL_0: Final = WORLD / TILE_SIZE
MAX_LATITUDE: Final = 85.0511287798066  # the edge of the square world of EPSG:3857


def definition() -> dict[str, object]:
    """The tile matrix set as OGC Two Dimensional Tile Matrix Set 2.0 JSON.

    >>> d = definition()
    >>> d["tileMatrices"][1]["matrixWidth"], round(d["tileMatrices"][1]["cellSize"], 4)
    (2, 78271.517)
    """
    return {
        "id": ID,
        "title": "Google Maps Compatible for the World",
        "uri": URI,
        "crs": CRS,
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": SCALE_0 / (1 << z),
                "cellSize": CELL_0 / (1 << z),
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-HALF_WORLD, HALF_WORLD],
                "tileWidth": TILE_SIZE,
                "tileHeight": TILE_SIZE,
                "matrixWidth": 1 << z,
                "matrixHeight": 1 << z,
            }
            for z in range(MAX_ZOOM + 1)
        ],
    }


def limits(
    west: float, south: float, east: float, north: float, min_zoom: int, max_zoom: int
) -> list[dict[str, object]]:
    """The tiles (rows and columns, inclusive) that cover a lon/lat box at each zoom.

    >>> limits(113.0, 36.0, 113.5, 36.5, 0, 1)[1]["minTileCol"]
    1
    """
    south, north = max(south, -MAX_LATITUDE), min(north, MAX_LATITUDE)
    found: list[dict[str, object]] = []
    for z in range(min_zoom, max_zoom + 1):
        last = (1 << z) - 1
        col0, row0 = containing(west, north, z)
        col1, row1 = containing(east, south, z)
        found.append(
            {
                "tileMatrix": str(z),
                "minTileRow": min(max(row0, 0), last),
                "maxTileRow": min(max(row1, 0), last),
                "minTileCol": min(max(col0, 0), last),
                "maxTileCol": min(max(col1, 0), last),
            }
        )
    return found
