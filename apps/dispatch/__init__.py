"""Emergency dispatch (CAD): incidents, recommendations by road travel time, assignments,
GPS-driven lifecycle, escalations, coverage analysis and CAP 1.2 alerts.

This record is everything dispatch brings to the platform; the shared packages read it
through :mod:`gis_core.application` and never import this package.
"""

from __future__ import annotations

from pathlib import Path

from gis_core.application import (
    Application,
    DeviceKind,
    Panel,
    TelemetryField,
    Threshold,
    Worker,
    deferred,
)

HERE = Path(__file__).resolve().parent

VEHICLE = DeviceKind(
    "vehicle",
    "车辆",
    "Vehicles",
    (
        TelemetryField("speed_kmh", "num", 0, 300, "km/h", "速度", "speed"),
        TelemetryField("heading_deg", "num", 0, 360, "°", "航向", "heading"),
        TelemetryField("status", "str", None, 32, "", "状态", "status"),
        TelemetryField("battery_pct", "num", 0, 100, "%", "电量", "battery"),
        TelemetryField("accuracy_m", "num", 0, 100_000, "m", "定位精度", "accuracy"),
    ),
    interval_s=5,
    thresholds=(
        Threshold(
            "vehicle.overspeed",
            "speed_kmh",
            "above",
            "{name} 超速 {value:g}（限值 {limit:g}）",
            "{name} overspeed {value:g} (limit {limit:g})",
            limit=120.0,
        ),
    ),
    shape="arrow",
    color="#ff7a45",
    mobile=True,
    primary_field="speed_kmh",
    vendors=("北斗星联", "车联通", "导航天下"),
)

APP = Application(
    name="dispatch",
    title_zh="应急指挥调度",
    title_en="Emergency dispatch",
    description=__doc__ or "",
    router=deferred("apps.dispatch.api:router"),
    cli=deferred("apps.dispatch.cli:register"),
    layers=deferred("apps.dispatch.layers:layers"),
    kinds=(VEHICLE,),
    events=("incident", "assignment"),
    workers=(Worker("dispatch-monitor", deferred("apps.dispatch.monitor:spawn_monitor")),),
    models="apps.dispatch.models",
    console=HERE / "console",
    panels=(
        # Every logged-in user: those who may not read incidents (the catalog decides) see the
        # column say so, rather than a wall with a hole in it; dispatching takes an operator.
        Panel(
            "incidents",
            "incidents.js",
            "事件与调度",
            "Incidents and dispatch",
            strings="strings.json",
        ),
    ),
    roles=("dispatcher", "supervisor", "admin"),
    benches={"dispatch": deferred("apps.dispatch.bench:bench_dispatch")},
)
