"""Flood's layers in the platform's catalog: the derived streams and the gauge catchments."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import LOGGED_IN, Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "flood_streams",
        "flood.stream",
        "河网（DEM 提取）",
        "Streams (from the DEM)",
        "LineString",
        ("strahler", "length_m"),
        group="flood",
        roles=LOGGED_IN,
        label=None,
        label_en=None,
        style={"stroke": "#1677ff", "width": 1.5, "order": 6},
        # thin the network on small scales: only the main channels
        zoom_filters=((10, "strahler >= 3"),),
    )
    yield Layer(
        "flood_catchments",
        "flood.catchment",
        "水位站集水区",
        "Gauge catchments",
        "MultiPolygon",
        ("site_id", "area_km2", "length_m", "relief_m"),
        group="flood",
        id_column="site_id",
        id_type="text",
        roles=LOGGED_IN,
        label="name_zh",
        label_en=None,
        style={"stroke": "#4096ff", "fill": "rgba(64,150,255,0.08)", "width": 1, "order": 4},
    )
