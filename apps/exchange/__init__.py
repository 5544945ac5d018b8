"""City data exchange (信息交换共享): the departments' tables without geometry — statistics,
the enterprise registry, the hotline, state assets — brought in on a schedule, checked against
shared data elements, joined onto the map by division code, credit code, address or position,
shared between departments by approval, and looked at as maps and charts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gis_core.application import Application, Panel, SynthContext, Worker
from gis_core.layer import Layer

HERE = Path(__file__).resolve().parent


def _router() -> Any:
    from apps.exchange.api import router

    return router


def _cli(root: Any) -> None:
    from apps.exchange.cli import register

    register(root)


def _bench(log: Callable[[str], None], **kwargs: Any) -> dict[str, Any]:
    from apps.exchange.bench import bench_exchange

    return bench_exchange(log, **kwargs)


def _scheduler() -> Callable[[], None]:
    from apps.exchange.worker import spawn_scheduler

    return spawn_scheduler()


def _layers() -> Iterable[Layer]:
    from apps.exchange.layers import layers

    return layers()


def _synthesize(conn: Any, context: SynthContext) -> Mapping[str, int]:
    from apps.exchange.samples import synthesize

    return synthesize(conn, context)


APP = Application(
    name="exchange",
    title_zh="信息交换共享",
    title_en="Data exchange",
    description=__doc__ or "",
    router=_router,
    cli=_cli,
    layers=_layers,
    events=("sync",),
    workers=(Worker("exchange-sync", _scheduler),),
    migrations=HERE / "migrations",
    models="apps.exchange.models",
    synthesize=_synthesize,
    benches={"exchange": _bench},
    console=HERE / "console",
    panels=(
        Panel(
            "exchange",
            "exchange.js",
            "数据交换",
            "Data exchange",
            roles=("planner", "supervisor", "registrar", "inspector", "admin"),
            strings="strings.json",
        ),
    ),
)
