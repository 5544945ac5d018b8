"""The platform's own benchmarks behind `changzhi bench NAME`; each application adds its
own through its descriptor (``Application.benches``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.bench.common import bench_services, serve_api

Log = Callable[[str], None]


def bench_tiles(log: Log, points: int = 1_000_000) -> dict[str, Any]:
    from apps.bench import ogc

    with bench_services("tiles") as env:
        log(f"generating a {points:,}-point layer")
        ogc.make_points(env, points)
        with serve_api(env) as ours, ogc.serve_pygeoapi(env, log) as peer:
            figures = ogc.run_tiles(env, ours, peer, log)
    return {"bench": "tiles", "features_in_layer": points, **figures}


def bench_features(log: Log, points: int = 1_000_000) -> dict[str, Any]:
    from apps.bench import ogc

    with bench_services("features") as env:
        log(f"generating a {points:,}-point layer")
        ogc.make_points(env, points)
        with serve_api(env) as ours, ogc.serve_pygeoapi(env, log) as peer:
            figures = ogc.run_features(env, ours, peer, log)
    return {"bench": "features", "features_in_layer": points, **figures}


def bench_ingest(log: Log) -> dict[str, Any]:
    from apps.bench.ingest import bench_ingest as run

    return run(log)


def bench_ingest_batch(log: Log) -> dict[str, Any]:
    from apps.bench.ingest import bench_ingest_batch as run

    return run(log)


def bench_latency(log: Log) -> dict[str, Any]:
    from apps.bench.ingest import bench_latency as run

    return run(log)


def bench_history(log: Log) -> dict[str, Any]:
    from apps.bench.history import bench_history as run

    return run(log)


def bench_console(log: Log) -> dict[str, Any]:
    from apps.bench.console import bench_console as run

    return run(log)


BENCHES: dict[str, Callable[..., dict[str, Any]]] = {
    "tiles": bench_tiles,
    "features": bench_features,
    "ingest": bench_ingest,
    "ingest-batch": bench_ingest_batch,
    "latency": bench_latency,
    "history": bench_history,
    "console": bench_console,
}
