"""``changzhi bench dispatch``: recommendation latency with 10,000 live units on the
full-scale road graph, beside the naive one-pgRouting-query-per-candidate way.

The full-scale synthesized network (≈74,000 edges) is loaded into a durable throwaway PostGIS
with 10,000 units spread over it, each with a live position. Many recommendations are made for
random scenes, each asking for the unit types of a real response plan (k = 5 per type, routes
included), timed end to end in process (database queries included). The naive comparator
takes the same straight-line candidates and routes each with its own pgRouting query over the
whole graph; its ETAs are compared with ours as a cross-check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely

from apps.bench.common import bench_services, median, percentile
from apps.dispatch import routing
from apps.dispatch.plans import INCIDENT_TYPES, UNIT_DEPARTMENT, DispatchSettings
from gis_core.bulk import copy_frame
from gis_core.settings import get_settings

Log = Callable[[str], None]
TARGET_P95_MS = 20.0
# Share of each unit type among the 10,000 (ambulances and patrol cars are most of a fleet).
TYPE_SHARE = {
    "engine": 0.15,
    "ladder": 0.05,
    "rescue": 0.07,
    "hazmat": 0.01,
    "ambulance": 0.40,
    "patrol": 0.32,
}


def _positions(
    road: pd.DataFrame, n: int, rng: np.random.Generator, jitter_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the network: half on town and trunk roads, half anywhere (village lanes)."""
    main = np.flatnonzero(road["road_class"].to_numpy() != "village")
    edges = np.where(rng.random(n) < 0.5, rng.choice(main, n), rng.integers(0, len(road), n))
    pts = shapely.line_interpolate_point(
        road["geom"].to_numpy()[edges], rng.random(n), normalized=True
    )
    jitter = jitter_m / 100_000.0
    return shapely.get_x(pts) + rng.normal(0, jitter, n), shapely.get_y(pts) + rng.normal(
        0, jitter, n
    )


def load_world(conn: psycopg.Connection, units: int, log: Log, seed: int = 7) -> dict[str, int]:
    from layers.reference.synth import synthesize

    log("synthesizing the full-scale road network")
    frames = synthesize(get_settings().platform.data_dir, scale=1.0)
    road, node = frames["road"], frames["road_node"]
    log(f"loading {len(road):,} edges and {len(node):,} nodes")
    copy_frame(conn, "ref.road_node", node)
    copy_frame(conn, "ref.road", road)
    rng = np.random.default_rng(seed)
    types = rng.choice(list(TYPE_SHARE), size=units, p=list(TYPE_SHARE.values()))
    ids = [f"B-{t[:3].upper()}-{k:05d}" for k, t in enumerate(types)]
    lon, lat = _positions(road, units, rng, jitter_m=25.0)
    log(f"placing {units:,} live units")
    copy_frame(
        conn,
        "iot.device",
        pd.DataFrame(
            {
                "id": ["VEH-" + i for i in ids],
                "kind": "vehicle",
                "department_code": [UNIT_DEPARTMENT[t] for t in types],
                "name_zh": ids,
            }
        ),
        geometry=None,
    )
    copy_frame(
        conn,
        "ops.unit",
        pd.DataFrame(
            {
                "id": ids,
                "call_sign": ids,
                "unit_type": types,
                "department_code": [UNIT_DEPARTMENT[t] for t in types],
                "device_id": ["VEH-" + i for i in ids],
                "status": "available",
            }
        ),
        geometry=None,
    )
    now = pd.Timestamp.now(tz="UTC")
    copy_frame(
        conn,
        "iot.device_state",
        pd.DataFrame(
            {
                "device_id": ["VEH-" + i for i in ids],
                "kind": "vehicle",
                "ts": now,
                "online": True,
                "reading": [{"speed_kmh": 0.0}] * units,
                "geom": shapely.points(lon, lat),
            }
        ),
    )
    for table in ("ref.road", "ref.road_node", "ops.unit", "iot.device", "iot.device_state"):
        conn.execute(f"ANALYZE {table}")
    conn.commit()
    return {"edges": len(road), "nodes": len(node)}


def bench_dispatch(
    log: Log,
    units: int = 10_000,
    queries: int = 400,
    naive_queries: int = 12,
    points: int | None = None,
) -> dict[str, Any]:
    """Recommendation latency p50/p95 (k = 5 per type, routes included) and the naive p95;
    ``points`` (``changzhi bench dispatch --points N``) is the number of units."""
    units = points or units
    plans = [t for t in INCIDENT_TYPES.values() if t.code != "public_service"]
    with bench_services("dispatch") as env, psycopg.connect(env.database_url) as conn:
        sizes = load_world(conn, units, log)
        s = DispatchSettings()
        t0 = time.perf_counter()
        graph = routing.graph_for(conn)
        graph_load_ms = (time.perf_counter() - t0) * 1000
        rng = np.random.default_rng(11)
        road = conn.execute("SELECT count(*) FROM ref.road").fetchone()
        assert road is not None
        scenes_lon, scenes_lat = _positions_from_graph(graph, queries + 20, rng)
        log(f"warming up, then {queries} recommendations")
        for i in range(20):
            routing.recommend(conn, float(scenes_lon[i]), float(scenes_lat[i]), ["engine"], k=5)
            conn.commit()
        times: list[float] = []
        considered: list[int] = []
        second_round = 0
        for i in range(queries):
            plan = plans[i % len(plans)]
            types = [t for t, _ in plan.plan]
            lon, lat = float(scenes_lon[20 + i]), float(scenes_lat[20 + i])
            start = time.perf_counter()
            rec = routing.recommend(conn, lon, lat, types, k=5, settings=s)
            times.append((time.perf_counter() - start) * 1000)
            conn.commit()
            considered.append(rec.considered)
            second_round += rec.exact_rounds > 1
        log(f"naive: one pgRouting query per candidate, {naive_queries} recommendations")
        naive_times: list[float] = []
        worst_gap = 0.0
        pairs = differs = 0
        access = s.access_speed_kmh / 3.6
        for i in range(naive_queries):
            plan = plans[i % len(plans)]
            types = [t for t, _ in plan.plan]
            lon, lat = float(scenes_lon[20 + i]), float(scenes_lat[20 + i])
            start = time.perf_counter()
            rows = routing._fetch_knn(conn, lon, lat, types, None, 15, [])
            naive_best: dict[str, str] = {}
            for t in types:
                positions = [(float(r[4]), float(r[5])) for r in rows[t]]
                secs = routing.naive_etas(conn, lon, lat, positions)
                ranked = sorted(zip(secs, (r[0] for r in rows[t]), strict=True))
                if ranked:
                    naive_best[t] = ranked[0][1]
            naive_times.append((time.perf_counter() - start) * 1000)
            conn.commit()
            # Cross-check: pgRouting's time for our fastest unit of each type.
            fast = routing.recommend(conn, lon, lat, types, k=5, settings=s, with_routes=False)
            for t in types:
                top = fast.by_type[t][0]
                pairs += 1
                differs += naive_best.get(t) != top.unit_id
                (check,) = routing.naive_etas(conn, lon, lat, [(top.lon, top.lat)])
                network = top.eta_s - (top.snap_m + fast.scene["snap_distance_m"]) / access
                if math.isfinite(network) and math.isfinite(check) and network > 60:
                    worst_gap = max(worst_gap, abs(check - network) / network)
            conn.commit()
    p95 = percentile(times, 95)
    naive_p95 = percentile(naive_times, 95)
    return {
        "bench": "dispatch",
        "units": units,
        "edges": sizes["edges"],
        "nodes": sizes["nodes"],
        "queries": queries,
        "k_per_type": 5,
        "p50_ms": round(median(times), 2),
        "p95_ms": round(p95, 2),
        "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2),
        "naive_queries": naive_queries,
        "naive_p50_ms": round(median(naive_times), 1),
        "naive_p95_ms": round(naive_p95, 1),
        "naive_to_ours_p95": round(naive_p95 / p95, 1) if p95 > 0 else None,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": p95 <= TARGET_P95_MS,
        "graph_load_ms": round(graph_load_ms, 1),
        "candidates_timed_mean": round(float(np.mean(considered)), 1),
        "second_round_share": round(second_round / queries, 3),
        # pgRouting (snapping in SQL, in degrees) against ours for the same unit and scene.
        "pgrouting_eta_max_rel_diff": round(worst_gap, 4),
        # How often the naive way (the straight-line nearest 15 only) misses the fastest unit.
        "naive_missed_fastest": f"{differs}/{pairs}",
    }


def _positions_from_graph(
    graph: routing.RoadGraph, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    edges = rng.integers(0, graph.edges, n)
    pts = shapely.line_interpolate_point(graph.geoms_wgs[edges], rng.random(n), normalized=True)
    return shapely.get_x(pts) + rng.normal(0, 0.0002, n), shapely.get_y(pts) + rng.normal(
        0, 0.0002, n
    )
