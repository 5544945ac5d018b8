"""A local metric plane: lon/lat to metres about an origin, for work over a city.

An equirectangular plane about the area's centre is good to a fraction of a percent over tens
of kilometres, and costs a multiplication: the right tool for snapping, distances between
fixes and grids of a simulation. Work that must be exact over a whole province goes through a
projected CRS (``gis_core.crs``, EPSG:4547) instead.

>>> plane = LocalPlane(113.1, 36.2)
>>> x, y = plane.to_xy(113.11, 36.21)
>>> round(float(x)), round(float(y))
(898, 1106)
>>> round(metres(113.1, 36.2, 113.11, 36.21))
1425
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Metres in a degree of latitude, and of longitude on the equator (WGS84, mid-latitudes).
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class LocalPlane:
    """Metres east and north of (``lon0``, ``lat0``)."""

    lon0: float
    lat0: float

    @property
    def kx(self) -> float:
        """Metres in a degree of longitude at the origin's latitude."""
        return M_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def to_xy(self, lon: Any, lat: Any) -> tuple[Any, Any]:
        """Metres east and north of the origin (scalars or arrays)."""
        return (np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * (
            M_PER_DEG_LAT
        )

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Back to lon/lat (scalars)."""
        return self.lon0 + x / self.kx, self.lat0 + y / M_PER_DEG_LAT

    @classmethod
    def about(cls, bbox: tuple[float, float, float, float]) -> LocalPlane:
        """The plane about the centre of a lon/lat box."""
        minx, miny, maxx, maxy = bbox
        return cls((minx + maxx) / 2, (miny + maxy) / 2)


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance between two nearby points on the plane about their mid-latitude."""
    k = math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon2 - lon1) * M_PER_DEG_LON_EQUATOR * k, (lat2 - lat1) * M_PER_DEG_LAT)


def degrees_for(distance_m: float, lat: float) -> tuple[float, float]:
    """(degrees of longitude, degrees of latitude) spanning ``distance_m`` at ``lat``."""
    return (
        distance_m / (M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))),
        distance_m / M_PER_DEG_LAT,
    )
