"""Water (水资源, 墒情/旱情, 水环境): the soil-moisture probes and water-quality stations it
reads and their threshold alarms; resources, drought and water quality build on them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gis_core.application import (
    Application,
    DeviceKind,
    Panel,
    SynthContext,
    TelemetryField,
    Threshold,
    Worker,
)
from gis_core.layer import Layer

HERE = Path(__file__).resolve().parent


def _router() -> Any:
    from apps.water.api import router

    return router


def _cli(root: Any) -> None:
    from apps.water.cli import register

    register(root)


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.water.bench import bench_water

    return bench_water(log)


def _quota_watch() -> Callable[[], None]:
    from apps.water.monitor import spawn_quota_watch

    return spawn_quota_watch()


def _watch() -> Callable[[], None]:
    from apps.water.monitor import spawn_watch

    return spawn_watch()


def _layers() -> Iterable[Layer]:
    from apps.water.layers import layers

    return layers()


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.water.synth import synthesize

    return synthesize(conn, context)


def _class_iii(field: str, label: str, test: str, limit: float) -> Threshold:
    # GB 3838-2002 class III, the usual target of a river section here.
    return Threshold(
        f"water_quality.{field}",
        field,
        "above" if test == "above" else "below",
        "{name} 水质 " + label + " 劣于III类",
        "{name} water quality " + label + " worse than class III",
        limit=limit,
        hysteresis=False,
    )


SOIL = DeviceKind(
    "soil",
    "墒情站",
    "Soil probes",
    (
        TelemetryField("vwc_pct", "num", 0, 100, "%", "体积含水量", "water content"),
        TelemetryField("temp_c", "num", -50, 80, "°C", "土壤温度", "soil temperature"),
    ),
    interval_s=3600,
    thresholds=(
        Threshold(
            "soil.drought",
            "vwc_pct",
            "below",
            "{name} 土壤墒情干旱 {value:g}%",
            "{name} soil drought {value:g}%",
            limit=12.0,
            site_key="drought_vwc_pct",
        ),
    ),
    shape="dot",
    color="#d4b106",
    primary_field="vwc_pct",
    department="water",
    id_prefix="SOIL",
    vendors=("墒情科技", "农丰测控"),
    simulator="apps.water.stations:SoilProbe",
)
WATER_QUALITY = DeviceKind(
    "water_quality",
    "水质站",
    "Water quality",
    (
        TelemetryField("ph", "num", 0, 14, "", "pH", "pH"),
        TelemetryField("do_mgl", "num", 0, 30, "mg/L", "溶解氧", "dissolved oxygen"),
        TelemetryField("cod_mgl", "num", 0, 5000, "mg/L", "化学需氧量", "COD"),
        TelemetryField("nh3n_mgl", "num", 0, 1000, "mg/L", "氨氮", "ammonia nitrogen"),
    ),
    interval_s=3600,
    thresholds=(
        _class_iii("cod_mgl", "cod_mgl", "above", 20.0),
        _class_iii("nh3n_mgl", "nh3n_mgl", "above", 1.0),
        _class_iii("do_mgl", "do_mgl", "below", 5.0),
        Threshold(
            "water_quality.ph",
            "ph",
            "outside",
            "{name} pH 异常 {value:g}",
            "{name} pH out of 6-9: {value:g}",
            low=6.0,
            high=9.0,
        ),
    ),
    shape="circle",
    color="#13c2c2",
    primary_field="cod_mgl",
    department="water",
    id_prefix="WQ",
    vendors=("清源水质", "水文仪器"),
    simulator="apps.water.stations:WaterQualityStation",
)

WELL = DeviceKind(
    "well",
    "地下水井",
    "Groundwater wells",
    (
        TelemetryField("level_m", "num", -500, 6000, "m", "地下水位", "groundwater level"),
        TelemetryField("temp_c", "num", -5, 60, "°C", "水温", "water temperature"),
    ),
    interval_s=3600,
    thresholds=(
        # The red line of the well's aquifer (地下水位红线): below it the well is over-drawn.
        Threshold(
            "well.overdraft",
            "level_m",
            "below",
            "{name} 地下水位 {value:g} m 低于红线 {limit:g} m",
            "{name} groundwater level {value:g} m below the red line {limit:g} m",
            site_key="alarm_level_m",
        ),
    ),
    shape="triangle",
    color="#1677ff",
    primary_field="level_m",
    department="water",
    id_prefix="WELL",
    vendors=("水文仪器", "地矿测控"),
    simulator="apps.water.simulate:GroundwaterWell",
)
WATER_METER = DeviceKind(
    "water_meter",
    "取水计量",
    "Water meters",
    (TelemetryField("volume_m3", "num", 0, 1e10, "m³", "累计取水量", "cumulative volume"),),
    interval_s=3600,
    shape="square",
    color="#2f54eb",
    primary_field="volume_m3",
    department="water",
    id_prefix="WM",
    vendors=("智水计量", "水表科技"),
    simulator="apps.water.simulate:WaterMeter",
)

APP = Application(
    name="water",
    title_zh="水资源与水环境",
    title_en="Water",
    description=__doc__ or "",
    kinds=(SOIL, WATER_QUALITY, WELL, WATER_METER),
    router=_router,
    cli=_cli,
    layers=_layers,
    events=("quota", "drought", "exceedance"),
    workers=(Worker("water-quota", _quota_watch), Worker("water-watch", _watch)),
    migrations=HERE / "migrations",
    models="apps.water.models",
    synthesize=_synthesize,
    benches={"water": _bench},
    console=HERE / "console",
    panels=(
        Panel(
            "water",
            "water.js",
            "水资源与水环境",
            "Water",
            roles=("planner", "inspector", "supervisor", "admin"),
            strings="strings.json",
        ),
    ),
    roles=("planner", "inspector", "supervisor", "admin"),
)
