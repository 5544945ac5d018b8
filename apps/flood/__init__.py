"""Flood decision support (防汛减灾): the river gauges and rain gauges it reads, their
threshold alarms; rainfall surfaces, hydrology and inundation build on them."""

from __future__ import annotations

from gis_core.application import Application, DeviceKind, TelemetryField, Threshold

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
    simulator="sensors.stations:WaterLevelGauge",
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
    simulator="sensors.stations:RainGauge",
)

APP = Application(
    name="flood",
    title_zh="防汛减灾",
    title_en="Flood decision support",
    description=__doc__ or "",
    kinds=(WATER_LEVEL, RAIN),
    roles=("planner", "dispatcher", "supervisor", "admin"),
)
