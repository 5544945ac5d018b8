"""Coordinate reference systems used by the platform.

EPSG codes are handled by pyproj; GCJ-02 (the obfuscated datum of Chinese web maps, which PROJ
does not implement) is handled here, forward in closed form and inverse by fixed-point iteration.

Examples
--------
>>> parse_crs("http://www.opengis.net/def/crs/EPSG/0/4490")
4490
>>> x, y = transform(113.1164, 36.1954, "WGS84", 4547)
>>> round(float(x)), round(float(y))
(420527, 4007586)
"""

from __future__ import annotations

import functools
import math
import re
from typing import Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer

__all__ = [
    "CGCS2000",
    "CGCS2000_GK_CM114",
    "GCJ02",
    "WEB_MERCATOR",
    "WGS84",
    "CRSLike",
    "UnknownCRSError",
    "gcj02_to_wgs84",
    "get_transformer",
    "out_of_china",
    "parse_crs",
    "transform",
    "transform_geometry",
    "wgs84_to_gcj02",
]

WGS84: Final = 4326
CGCS2000: Final = 4490
#: CGCS2000 / 3-degree Gauss-Kruger CM 114E: metric work over Changzhi (false easting 500 km).
CGCS2000_GK_CM114: Final = 4547
WEB_MERCATOR: Final = 3857
GCJ02: Final = "GCJ02"

CRS: TypeAlias = int | Literal["GCJ02"]
CRSLike: TypeAlias = int | str
ArrayLike: TypeAlias = float | npt.ArrayLike

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323

_ALIASES: Final[dict[str, CRS]] = {
    "WGS84": WGS84,
    "WGS-84": WGS84,
    "WGS 84": WGS84,
    "CRS84": WGS84,
    "OGC:CRS84": WGS84,
    "CGCS2000": CGCS2000,
    "CGCS-2000": CGCS2000,
    "WEBMERCATOR": WEB_MERCATOR,
    "WEB MERCATOR": WEB_MERCATOR,
    "GCJ02": GCJ02,
    "GCJ-02": GCJ02,
    "GCJ 02": GCJ02,
}

_EPSG_RE: Final = re.compile(
    r"^(?:EPSG:{1,2}|URN:OGC:DEF:CRS:EPSG:[^:]*:|HTTPS?://WWW\.OPENGIS\.NET/DEF/CRS/EPSG/[^/]*/)?"
    r"(\d{4,6})$"
)
_CRS84_RE: Final = re.compile(
    r"^(?:HTTPS?://WWW\.OPENGIS\.NET/DEF/CRS/OGC/[^/]*/CRS84|URN:OGC:DEF:CRS:OGC:[^:]*:CRS84)$"
)


class UnknownCRSError(ValueError):
    """Raised when a CRS identifier cannot be understood."""


def parse_crs(value: CRSLike) -> CRS:
    """Normalise a CRS identifier to an EPSG integer or ``"GCJ02"``.

    Parameters
    ----------
    value
        EPSG integer or string (``4326``, ``"4326"``, ``"EPSG:4326"``), OGC URI or URN
        (``".../def/crs/EPSG/0/4490"``, ``".../def/crs/OGC/1.3/CRS84"``), or an alias
        (``"WGS84"``, ``"CGCS2000"``, ``"GCJ02"``, ``"GCJ-02"``), case-insensitive.

    Raises
    ------
    UnknownCRSError
        If the value is not recognised.

    Examples
    --------
    >>> parse_crs("EPSG:4547"), parse_crs("gcj-02")
    (4547, 'GCJ02')
    """
    if isinstance(value, bool):
        raise UnknownCRSError(f"unknown CRS: {value!r}")
    if isinstance(value, (int, np.integer)):
        if value <= 0:
            raise UnknownCRSError(f"unknown CRS: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise UnknownCRSError(f"unknown CRS: {value!r} (expected an EPSG code or string)")
    key = value.strip().upper()
    if key in _ALIASES:
        return _ALIASES[key]
    if _CRS84_RE.match(key):
        # CRS84 is WGS84 with lon/lat order; we always work lon/lat (always_xy).
        return WGS84
    m = _EPSG_RE.match(key)
    if m:
        return int(m.group(1))
    raise UnknownCRSError(
        f"unknown CRS: {value!r}; use an EPSG code (e.g. 4326, 'EPSG:4490'), an OGC URI, "
        "or one of WGS84, CGCS2000, GCJ02"
    )


@functools.lru_cache(maxsize=64)
def get_transformer(src: int, dst: int) -> Transformer:
    """Cached pyproj Transformer between two EPSG codes, lon/lat (x/y) axis order."""
    return Transformer.from_crs(src, dst, always_xy=True)


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """Boolean mask of points outside the rough China box where GCJ-02 is an identity.

    Uses the conventional rectangle (72.004–137.8347E, 0.8293–55.8271N) of the public
    GCJ-02 implementations, so results agree with them.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    s6x = 20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += s6x * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += s6x * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * pi)
    return dlon, dlat


def _out(lon: np.ndarray, lat: np.ndarray, scalar: bool) -> tuple[ArrayLike, ArrayLike]:
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Convert WGS84 lon/lat to GCJ-02; points outside China are returned unchanged.

    Examples
    --------
    >>> glon, glat = wgs84_to_gcj02(113.1164, 36.1954)
    >>> round(glon - 113.1164, 4), round(glat - 36.1954, 4)
    (0.0067, 0.0002)
    """
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, float), np.asarray(lat, float))
    dlon, dlat = _delta(lon_a, lat_a)
    keep = out_of_china(lon_a, lat_a)
    return _out(np.where(keep, lon_a, lon_a + dlon), np.where(keep, lat_a, lat_a + dlat), scalar)


def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-10, max_iter: int = 30
) -> tuple[ArrayLike, ArrayLike]:
    """Invert :func:`wgs84_to_gcj02` by fixed-point iteration.

    The offset field is smooth (Lipschitz constant far below 1 per degree), so
    ``w <- g - delta(w)`` converges geometrically; ``tol`` (degrees, ~1e-5 m) is
    typically reached in 4–6 iterations.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(*wgs84_to_gcj02(113.1164, 36.1954))
    >>> round(lon, 9), round(lat, 9)
    (113.1164, 36.1954)
    """
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    glon, glat = np.broadcast_arrays(np.asarray(lon, float), np.asarray(lat, float))
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(max_iter):
        dlon, dlat = _delta(wlon, wlat)
        nlon, nlat = glon - dlon, glat - dlat
        step = max(
            np.nanmax(np.abs(nlon - wlon), initial=0.0),
            np.nanmax(np.abs(nlat - wlat), initial=0.0),
        )
        wlon, wlat = nlon, nlat
        if step < tol:
            break
    # Identity outside China, judged on the WGS84 estimate like the forward transform.
    keep = out_of_china(wlon, wlat)
    return _out(np.where(keep, glon, wlon), np.where(keep, glat, wlat), scalar)


def transform(
    xs: ArrayLike, ys: ArrayLike, src: CRSLike, dst: CRSLike
) -> tuple[ArrayLike, ArrayLike]:
    """Transform coordinates between any two supported CRSs (x = lon/easting first).

    GCJ-02 is routed through WGS84. Scalars in give floats out; arrays give arrays.

    Examples
    --------
    >>> lon, lat = transform(420527.4, 4007586.3, "EPSG:4547", "GCJ02")
    >>> round(lon, 4), round(lat, 4)
    (113.1231, 36.1956)
    """
    s, d = parse_crs(src), parse_crs(dst)
    scalar = np.ndim(xs) == 0 and np.ndim(ys) == 0
    x, y = np.broadcast_arrays(np.asarray(xs, float), np.asarray(ys, float))
    if s == d:
        return _out(x.copy(), y.copy(), scalar)
    if s == GCJ02:
        x, y = (np.asarray(v) for v in gcj02_to_wgs84(x, y))
        s = WGS84
    mid = WGS84 if d == GCJ02 else d
    if s != mid:
        x, y = get_transformer(int(s), int(mid)).transform(x, y)
        x, y = np.asarray(x, float), np.asarray(y, float)
    if d == GCJ02:
        x, y = (np.asarray(v) for v in wgs84_to_gcj02(x, y))
    return _out(x, y, scalar)


def transform_geometry(geom: shapely.Geometry, src: CRSLike, dst: CRSLike) -> shapely.Geometry:
    """Transform a shapely geometry (or array of them) between CRSs; Z values are dropped.

    Examples
    --------
    >>> from shapely import Point
    >>> p = transform_geometry(Point(113.1164, 36.1954), "WGS84", "GCJ02")
    >>> round(p.x, 4)
    113.1231
    """
    s, d = parse_crs(src), parse_crs(dst)
    if s == d:
        return geom

    def _fn(coords: np.ndarray) -> np.ndarray:
        x, y = transform(coords[:, 0], coords[:, 1], s, d)
        return np.column_stack([x, y])

    return shapely.transform(geom, _fn)
