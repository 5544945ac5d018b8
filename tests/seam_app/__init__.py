"""A minimal application, kept in the tests: it proves that an application is installed by
configuration alone (``CHANGZHI_APPS=all,tests.seam_app``) with no shared file changed.

It brings one route, one layer (a table made by its own migration branch), one device kind
with a threshold, one console panel and one command.
"""

# No `from __future__ import annotations`: the route below is made inside a function, and
# FastAPI must see its parameter's type itself, not a name it cannot resolve.
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from gis_core.application import Application, DeviceKind, Panel, TelemetryField, Threshold
from gis_core.layer import LOGGED_IN, Layer

HERE = Path(__file__).resolve().parent


def _router() -> Any:
    router = APIRouter(tags=["seam_probe"])

    @router.get("/hello")
    def hello(request: Request) -> dict[str, Any]:
        with request.app.state.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM probe.beacon_site").fetchone()
        return {"app": "seam_probe", "sites": row[0] if row else 0}

    return router


def _cli(root: Any) -> None:
    import typer

    group = typer.Typer(help="The seam probe.", no_args_is_help=True)

    @group.command("hello")
    def hello() -> None:
        """Say which application answers."""
        typer.echo("seam_probe says hello")

    root.add_typer(group, name="seam_probe")


def _layers() -> Iterable[Layer]:
    yield Layer(
        "beacon_sites",
        "probe.beacon_site",
        "信标",
        "Beacon sites",
        "Point",
        ("name_zh",),
        group="probe",
        roles=LOGGED_IN,
        style={"color": "#00ff00", "radius": 4, "order": 99},
    )


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
    router=_router,
    cli=_cli,
    layers=_layers,
    kinds=(BEACON,),
    migrations=HERE / "migrations",
    console=HERE / "console",
    panels=(Panel("probe", "probe.js", "探针", "Probe", strings="strings.json"),),
)
