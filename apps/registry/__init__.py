"""Land and mineral-rights registries (国土): cadastral parcels and mining rights, with
their bitemporal history; applications checked against rights, basic farmland and the
ecological red line, through acceptance, review, approval and certificate."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gis_core.application import Application, Panel, SynthContext
from gis_core.layer import Layer

HERE = Path(__file__).resolve().parent


def _layers() -> Iterable[Layer]:
    from apps.registry.layers import layers

    return layers()


def _router() -> Any:
    from apps.registry.api import router

    return router


def _cli(root: Any) -> None:
    from apps.registry.cli import register

    register(root)


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.registry.reference import synthesize

    return synthesize(conn, context)


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.registry.bench import bench_registry

    return bench_registry(log, **kwargs)


APP = Application(
    name="registry",
    title_zh="国土与矿业权登记",
    title_en="Land and mineral-rights registries",
    description=__doc__ or "",
    router=_router,
    cli=_cli,
    layers=_layers,
    events=("application",),
    migrations=HERE / "migrations",
    models="apps.registry.models",
    synthesize=_synthesize,
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
    benches={"registry": _bench},
)
