"""City traffic (交通): the signal controllers it reads and their fault alarms; performance
measures, live road speeds and guidance build on them."""

from __future__ import annotations

from pathlib import Path

from gis_core.application import (
    Application,
    DeviceKind,
    Panel,
    TelemetryField,
    Threshold,
    deferred,
)

HERE = Path(__file__).resolve().parent


SIGNAL = DeviceKind(
    "signal",
    "信号机",
    "Traffic signals",
    (
        TelemetryField("mode", "str", None, 16, "", "模式", "mode"),
        TelemetryField("phase", "int", 0, 255, "", "相位", "phase"),
        TelemetryField("fault", "bool|str", None, 64, "", "故障", "fault"),
    ),
    interval_s=60,
    thresholds=(
        Threshold(
            "signal.fault",
            "fault",
            "truthy",
            "{name} 信号机故障：{value}",
            "{name} signal fault: {value}",
        ),
    ),
    shape="dot",
    color="#ffa940",
    primary_field="phase",
    department="traffic",
    id_prefix="SIG",
    vendors=("畅行交通", "智联信号"),
    simulator="apps.traffic.stations:SignalController",
)

APP = Application(
    name="traffic",
    title_zh="城市交通",
    title_en="City traffic",
    description=__doc__ or "",
    kinds=(SIGNAL,),
    migrations=HERE / "migrations",
    models="apps.traffic.models",
    router=deferred("apps.traffic.api:router"),
    cli=deferred("apps.traffic.cli:register"),
    synthesize=deferred("apps.traffic.synth:synthesize"),
    events=("speeds", "violation", "sign"),
    console=HERE / "console",
    panels=(
        Panel(
            "traffic",
            "traffic.js",
            "城市交通",
            "City traffic",
            roles=("dispatcher", "planner", "supervisor", "admin"),
            strings="strings.json",
        ),
    ),
    benches={"traffic": deferred("apps.traffic.bench:bench_traffic")},
    roles=("dispatcher", "planner", "supervisor", "admin"),
)
