"""Land and mineral-rights registries (国土): cadastral parcels and mining rights, with
their bitemporal history; applications checked against rights, basic farmland and the
ecological red line, through acceptance, review, approval and certificate."""

from __future__ import annotations

from pathlib import Path

from gis_core.application import Application, Panel, deferred

HERE = Path(__file__).resolve().parent


APP = Application(
    name="registry",
    title_zh="国土与矿业权登记",
    title_en="Land and mineral-rights registries",
    description=__doc__ or "",
    router=deferred("apps.registry.api:router"),
    cli=deferred("apps.registry.cli:register"),
    layers=deferred("apps.registry.layers:layers"),
    events=("application",),
    migrations=HERE / "migrations",
    models="apps.registry.models",
    synthesize=deferred("apps.registry.reference:synthesize"),
    console=HERE / "console",
    panels=(
        Panel(
            "registry",
            "registry.js",
            "矿业权登记",
            "Rights register",
            roles=("registrar", "inspector", "planner", "supervisor"),
            strings="strings.json",
        ),
    ),
    roles=("registrar", "inspector", "planner", "supervisor", "admin"),
    benches={"registry": deferred("apps.registry.bench:bench_registry")},
)
