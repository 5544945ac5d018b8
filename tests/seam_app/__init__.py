"""A minimal application, kept in the tests: it proves that an application is installed by
configuration alone (``CHANGZHI_APPS=all,tests.seam_app``) with no shared file changed.

It brings one route, one layer (a table made by its own migration branch), one device kind
with a threshold, one console panel and one command.
"""

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


BEACON = DeviceKind(
    "beacon",
    "信标",
    "Beacons",
    (TelemetryField("lux", "num", 0, 1000, "lx", "照度", "illuminance"),),
    interval_s=30,
    thresholds=(
        Threshold(
            "beacon.glare",
            "lux",
            "above",
            "{name} 眩光 {value:g}",
            "{name} glare {value:g}",
            limit=800.0,
        ),
    ),
    shape="square",
    color="#00ff00",
    primary_field="lux",
)

APP = Application(
    name="seam_probe",
    title_zh="接缝探针",
    title_en="Seam probe",
    router=deferred("tests.seam_app.api:router"),
    cli=deferred("tests.seam_app.cli:register"),
    layers=deferred("tests.seam_app.layers:layers"),
    kinds=(BEACON,),
    migrations=HERE / "migrations",
    console=HERE / "console",
    panels=(Panel("probe", "probe.js", "探针", "Probe", strings="strings.json"),),
)
