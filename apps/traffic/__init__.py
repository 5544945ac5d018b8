"""City traffic (交通): the signal controllers it reads and their fault alarms; performance
measures, live road speeds and guidance build on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gis_core.application import (
    Application,
    DeviceKind,
    Panel,
    SynthContext,
    TelemetryField,
    Threshold,
)

HERE = Path(__file__).resolve().parent


def _router() -> Any:
    from apps.traffic.api import router

    return router


def _cli(root: Any) -> None:
    from apps.traffic.cli import register

    register(root)


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.traffic.synth import synthesize

    return synthesize(conn, context)


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.traffic.bench import bench_traffic

    return bench_traffic(log, points=kwargs.get("points"))


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
    simulator="sensors.stations:SignalController",
)

APP = Application(
    name="traffic",
    title_zh="城市交通",
    title_en="City traffic",
    description=__doc__ or "",
    kinds=(SIGNAL,),
    migrations=HERE / "migrations",
    models="apps.traffic.models",
    router=_router,
    cli=_cli,
    synthesize=_synthesize,
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
    benches={"traffic": _bench},
    roles=("dispatcher", "planner", "supervisor", "admin"),
)
