"""Environmental supervision (环保): the enterprises and pollution sources it registers, the
air and stack-emission monitors it reads and their exceedance alarms."""

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

# GB 3095-2012 grade II one-hour limits (µg/m³; CO mg/m³) and, for fine particles without an
# hourly limit, the 'heavily polluted' AQI band (HJ 633-2012: PM2.5 > 150, PM10 > 350).
AIR_LIMITS = {"pm25": 150.0, "pm10": 350.0, "so2": 500.0, "no2": 200.0, "o3": 200.0, "co": 10.0}
EMISSION_FIELDS = ("so2_mgm3", "nox_mgm3", "dust_mgm3")
HERE = Path(__file__).resolve().parent


def _router() -> Any:
    from apps.environment.api import router

    return router


def _cli(root: Any) -> None:
    from apps.environment.cli import register

    register(root)


def _hj212() -> Callable[[], None]:
    from apps.environment.hj212_server import spawn_server

    return spawn_server()


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.environment.bench import bench_environment

    return bench_environment(log)


def _watch() -> Callable[[], None]:
    from apps.environment.watch import spawn_watch

    return spawn_watch()


def _layers() -> Iterable[Layer]:
    from apps.environment.layers import layers

    return layers()


AIR = DeviceKind(
    "air",
    "空气站",
    "Air stations",
    (
        TelemetryField("pm25", "num", 0, 2000, "µg/m³", "PM2.5", "PM2.5"),
        TelemetryField("pm10", "num", 0, 5000, "µg/m³", "PM10", "PM10"),
        TelemetryField("so2", "num", 0, 5000, "µg/m³", "二氧化硫", "SO2"),
        TelemetryField("no2", "num", 0, 3000, "µg/m³", "二氧化氮", "NO2"),
        TelemetryField("o3", "num", 0, 2000, "µg/m³", "臭氧", "O3"),
        TelemetryField("co", "num", 0, 200, "mg/m³", "一氧化碳", "CO"),
    ),
    interval_s=600,
    thresholds=tuple(
        Threshold(
            f"air.{pollutant}",
            pollutant,
            "above",
            "{name} " + pollutant.upper() + " 超标 {value:g}（限值 {limit:g}）",
            "{name} " + pollutant + " exceeds {value:g} (limit {limit:g})",
            limit=limit,
            severity=3,
        )
        for pollutant, limit in AIR_LIMITS.items()
    ),
    shape="circle",
    color="#36cfc9",
    primary_field="pm25",
    department="environment",
    id_prefix="AIR",
    vendors=("环测仪器", "蓝天监测", "清风环境"),
    simulator="apps.environment.stations:AirStation",
)
EMISSION = DeviceKind(
    "emission",
    "污染源在线监测",
    "Stack emissions",
    (
        TelemetryField("so2_mgm3", "num", 0, 20000, "mg/m³", "二氧化硫", "SO2"),
        TelemetryField("nox_mgm3", "num", 0, 20000, "mg/m³", "氮氧化物", "NOx"),
        TelemetryField("dust_mgm3", "num", 0, 10000, "mg/m³", "颗粒物", "particulates"),
        TelemetryField("flow_m3h", "num", 0, 1e9, "m³/h", "烟气流量", "flue gas flow"),
    ),
    interval_s=600,
    thresholds=tuple(
        Threshold(
            f"emission.{field}",
            field,
            "above",
            "{name} 排放超许可 {value:g}（限值 {limit:g}）",
            "{name} emission above permit {value:g} (limit {limit:g})",
            permit_key=field,
            severity=3,
        )
        for field in EMISSION_FIELDS
    ),
    shape="triangle",
    color="#9254de",
    primary_field="so2_mgm3",
    department="environment",
    id_prefix="EMS",
    vendors=("环测仪器", "正源环保", "恒测科技"),
    simulator="apps.environment.stations:EmissionStation",
)

WEATHER = DeviceKind(
    "weather",
    "气象站",
    "Weather stations",
    (
        TelemetryField("wind_ms", "num", 0, 75, "m/s", "风速", "wind speed"),
        TelemetryField("wind_dir_deg", "num", 0, 360, "°", "风向", "wind direction"),
        TelemetryField("temp_c", "num", -50, 60, "°C", "气温", "temperature"),
        TelemetryField("cloud_oktas", "num", 0, 8, "oktas", "总云量", "cloud cover"),
        TelemetryField("radiation_wm2", "num", 0, 1500, "W/m²", "总辐射", "global radiation"),
    ),
    interval_s=600,
    thresholds=(
        Threshold(
            "weather.gale",
            "wind_ms",
            "above",
            "{name} 大风 {value:g} m/s（阈值 {limit:g}）",
            "{name} gale {value:g} m/s (threshold {limit:g})",
            limit=17.2,  # Beaufort 8 (gale), the CMA's 大风 warning wind
            severity=2,
        ),
    ),
    shape="diamond",
    color="#1890ff",
    primary_field="wind_ms",
    department="environment",
    id_prefix="WX",
    vendors=("华云气象", "天诚仪器", "风云测控"),
    simulator="apps.environment.simulate:WeatherStation",
)


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.environment.synth import synthesize

    return synthesize(conn, context)


APP = Application(
    name="environment",
    title_zh="生态环境监管",
    title_en="Environmental supervision",
    description=__doc__ or "",
    router=_router,
    console=HERE / "console",
    panels=(
        Panel(
            "environment",
            "environment.js",
            "生态环境",
            "Environment",
            roles=("inspector", "planner", "supervisor", "dispatcher"),
            strings="strings.json",
        ),
    ),
    cli=_cli,
    workers=(Worker("environment-hj212", _hj212), Worker("environment-watch", _watch)),
    layers=_layers,
    events=("exceedance", "task"),
    models="apps.environment.models",
    migrations=HERE / "migrations",
    kinds=(AIR, EMISSION, WEATHER),
    synthesize=_synthesize,
    roles=("inspector", "planner", "supervisor", "dispatcher", "admin"),
    benches={"environment": _bench},
)
