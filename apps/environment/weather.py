"""Weather for dispersion: the sun's elevation and the Pasquill–Gifford class of a weather
station's reading.

The solar position is the NOAA low-accuracy formula (declination and equation of time from
the fractional year), good to a fraction of a degree, which is all Turner's insolation classes
(boundaries at 15°, 35° and 60°) need.

>>> round(solar_elevation_deg(datetime(2026, 6, 21, 4, 10, tzinfo=UTC), 113.1, 36.2))
77
>>> stability_from_weather(
...     datetime(2026, 6, 21, 4, 10, tzinfo=UTC), 113.1, 36.2, wind_ms=2.5, cloud_oktas=1)
'A-B'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from apps.environment.plume import insolation, stability_class


def solar_elevation_deg(when: datetime, lon: float, lat: float) -> float:
    """Elevation of the sun's centre above the horizon, degrees, at an aware time and place."""
    if when.tzinfo is None:
        raise ValueError("solar_elevation_deg needs an aware datetime (with its offset)")
    utc = when.astimezone(UTC)
    day = utc.timetuple().tm_yday
    hours = utc.hour + utc.minute / 60 + utc.second / 3600
    gamma = 2 * math.pi / 365 * (day - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    true_solar_min = hours * 60 + eqtime + 4 * lon
    hour_angle = math.radians(true_solar_min / 4 - 180)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(
        hour_angle
    )
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def stability_from_weather(
    when: datetime, lon: float, lat: float, *, wind_ms: float, cloud_oktas: float
) -> str:
    """Pasquill–Gifford class from a 10 m wind, the cloud cover and the sun at that moment."""
    elevation = solar_elevation_deg(when, lon, lat)
    sun = insolation(elevation, cloud_oktas)
    return stability_class(
        wind_ms, day=sun is not None, insolation_class=sun, cloud_oktas=cloud_oktas
    )
