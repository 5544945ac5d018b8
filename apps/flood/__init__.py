"""Flood decision support (防汛减灾): hydrology from the city's DEM (streams, gauge catchments,
HAND), rainfall surfaces from the rain gauges, stage forecasts at the river gauges, inundation
with the roads it closes and who it reaches, and evacuation to shelters.

This record is everything flood brings to the platform; the shared packages read it through
:mod:`gis_core.application` and never import this package.
"""

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
    from apps.flood.api import router

    return router


def _cli(root: Any) -> None:
    from apps.flood.cli import register

    register(root)


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.flood.bench import bench_flood

    return bench_flood(log, **kwargs)


def _layers() -> Iterable[Layer]:
    from apps.flood.layers import layers

    return layers()


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.flood.preparation import synthesize

    return synthesize(conn, context)


def _prepare_worker() -> Callable[[], None]:
    # Runs the prepare chain once when the loaded DEM has none (first start), then exits.
    from apps.flood.preparation import prepare_once
    from gis_core.processes import spawn

    return spawn(prepare_once, name="flood-prepare")


WATER_LEVEL = DeviceKind(
    "water_level",
    "水位站",
    "River gauges",
    (TelemetryField("level_m", "num", -50, 500, "m", "水位", "stage"),),
    interval_s=300,
    thresholds=(
        Threshold(
            "water_level.warning",
            "level_m",
            "above",
            "{name} 水位超警戒 {value:g}（限值 {limit:g}）",
            "{name} water level above warning {value:g} (limit {limit:g})",
            site_key="warning_m",
            severity=3,
        ),
        Threshold(
            "water_level.danger",
            "level_m",
            "above",
            "{name} 水位超保证 {value:g}（限值 {limit:g}）",
            "{name} water level above danger {value:g} (limit {limit:g})",
            site_key="danger_m",
            severity=4,
        ),
    ),
    shape="diamond",
    color="#4096ff",
    primary_field="level_m",
    department="water",
    id_prefix="WL",
    vendors=("水文仪器", "江河测控", "安澜科技"),
    simulator="apps.flood.stations:WaterLevelGauge",
)
RAIN = DeviceKind(
    "rain",
    "雨量站",
    "Rain gauges",
    (TelemetryField("mm", "num", 0, 500, "mm", "雨量", "rain"),),
    interval_s=300,
    shape="square",
    color="#69b1ff",
    primary_field="mm",
    department="water",
    id_prefix="RAIN",
    vendors=("水文仪器", "云雨测控", "安澜科技"),
    simulator="apps.flood.stations:RainGauge",
)

APP = Application(
    name="flood",
    title_zh="防汛减灾",
    title_en="Flood decision support",
    description=__doc__ or "",
    router=_router,
    cli=_cli,
    layers=_layers,
    kinds=(WATER_LEVEL, RAIN),
    events=("inundation",),
    workers=(Worker("flood-prepare", _prepare_worker),),
    migrations=HERE / "migrations",
    models="apps.flood.models",
    synthesize=_synthesize,
    console=HERE / "console",
    panels=(
        Panel(
            "flood",
            "flood.js",
            "防汛减灾",
            "Flood",
            roles=("planner", "dispatcher", "supervisor", "admin"),
            strings="strings.json",
        ),
    ),
    roles=("planner", "dispatcher", "supervisor", "admin"),
    benches={"flood": _bench},
)
