"""``changzhi bench registry``: the full conflict check of a 100,000-parcel, 5,000-right
register beside the plain self-join peer, one application's check, and as-of queries.

The synthetic register (:mod:`apps.registry.synth`, seeded gaps, overlaps, slivers and
overlapping rights) is loaded into a schema of its own for the full check; its rights and
constraint polygons are also entered in the platform's register tables so the application
check and the as-of queries run on the tables the API uses.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
import shapely
from pyproj import Transformer

from apps.bench.common import bench_services, percentile
from apps.registry import conflicts, service
from apps.registry.models import REGISTER_SRID
from apps.registry.synth import load_register, synthetic_register
from gis_core.identity import Principal

SCHEMA = "registry_bench"
Log = Callable[[str], None]


def _layers() -> tuple[conflicts.Layer, conflicts.Layer, list[conflicts.Layer]]:
    parcels = conflicts.Layer(f"{SCHEMA}.parcel", "parcel")
    rights = conflicts.Layer(
        f"{SCHEMA}.mining_right",
        "mining_right",
        depth_top_column="depth_top",
        depth_bottom_column="depth_bottom",
    )
    constraints = [
        conflicts.Layer(f"{SCHEMA}.{k}", k)
        for k in ("basic_farmland", "ecological_red_line", "built_up")
    ]
    return parcels, rights, constraints


def _enter_register(conn: psycopg.Connection) -> None:
    """The bench rights as held register versions (one transaction row each, valid since
    2010) and the constraint polygons as protected areas, in bulk."""
    conn.execute(
        f"""
        INSERT INTO registry.registry_txn (txn_id, operation, recorded_at, note)
        SELECT id, 'register', timestamptz '2011-01-01' + id * interval '1 second', 'bench'
        FROM {SCHEMA}.mining_right;
        INSERT INTO registry.registry_version (object_id, object_kind, attrs, geom, valid_from,
            valid_to, recorded_from, txn_id)
        SELECT 'BENCH-' || id, 'mining_right',
               jsonb_build_object('holder', 'holder ' || id, 'depth_top_m', depth_top,
                                  'depth_bottom_m', depth_bottom),
               ST_Multi(ST_Transform(geom, {REGISTER_SRID})), timestamptz '2010-01-01',
               NULL, timestamptz '2011-01-01' + id * interval '1 second', id
        FROM {SCHEMA}.mining_right;
        INSERT INTO registry.protected_area (kind, code, geom)
        SELECT 'basic_farmland', 'F' || id, geom FROM {SCHEMA}.basic_farmland
        UNION ALL SELECT 'ecological_red_line', 'R' || id, geom FROM {SCHEMA}.ecological_red_line
        UNION ALL SELECT 'built_up', 'B' || id, geom FROM {SCHEMA}.built_up;
        ANALYZE registry.registry_version;
        ANALYZE registry.protected_area;
        """.encode()
    )
    conn.commit()


def bench_registry(
    log: Log,
    parcels: int = 100_000,
    rights: int = 5_000,
    applications: int = 200,
    asof_queries: int = 200,
    peer_timeout_s: float = 120.0,
    subset: int = 20_000,
    points: int | None = None,
) -> dict[str, Any]:
    """The CONTRACT's figures for ``registry`` (see the module's docstring); ``points``
    (``changzhi bench registry --points N``) is the number of parcels."""
    parcels = points or parcels
    notes: list[str] = []
    with bench_services("registry") as env, psycopg.connect(env.database_url) as conn:
        conn.execute("SET work_mem = '64MB'")
        log(f"building a synthetic register of {parcels:,} parcels and {rights:,} rights")
        reg = synthetic_register(parcels, rights, seed=7, n_seeded=5)
        load_register(conn, SCHEMA, reg)
        # Rounding to WGS84 can leave a jittered or grown lot invalid, which GEOS refuses in
        # ST_Relate; repaired before either check runs, and counted.
        fixed = conn.execute(
            f"UPDATE {SCHEMA}.parcel SET geom = ST_Multi(ST_CollectionExtract("
            "ST_MakeValid(geom), 3)) WHERE NOT ST_IsValid(geom)"
        ).rowcount
        conn.commit()
        if fixed:
            notes.append(f"{fixed} synthetic parcels were invalid after storage and repaired")
        p_layer, r_layer, c_layers = _layers()

        log("full check")
        report = conflicts.full_check(conn, p_layer, r_layer, c_layers)
        full_s = report.total_seconds
        found = {k: len(v) for k, v in report.findings.items()}
        log(f"full check {full_s:.1f} s: {found}")

        log(f"plain self-join peer (statement timeout {peer_timeout_s:.0f} s per step)")
        conn.execute(f"SET statement_timeout = '{int(peer_timeout_s * 1000)}ms'")
        peer_s: float | None
        try:
            peer = conflicts.full_check_naive(conn, p_layer, r_layer, c_layers)
            peer_s = peer.total_seconds
            peer_steps = {k: round(v, 2) for k, v in peer.seconds.items()}
        except psycopg.errors.QueryCanceled:
            conn.rollback()
            peer_s = None
            peer_steps = {}
            notes.append(
                f"peer_s: the plain self-join did not finish within the {peer_timeout_s:.0f} s "
                "statement timeout of one step, so no peer time is reported; peer_subset_* "
                f"compare both on the first {subset:,} parcels (a view) with every right"
            )
        conn.execute("SET statement_timeout = 0")
        subset_figures: dict[str, Any] = {}
        if peer_s is None:
            conn.execute(
                f"CREATE VIEW {SCHEMA}.parcel_subset AS SELECT * FROM {SCHEMA}.parcel"
                f" WHERE id <= {int(subset)}"
            )
            part = conflicts.Layer(f"{SCHEMA}.parcel_subset", "parcel")
            log(f"both checks on the first {subset:,} parcels")
            fast = conflicts.full_check(conn, part, r_layer, c_layers).total_seconds
            conn.execute(f"SET statement_timeout = '{int(peer_timeout_s * 1000)}ms'")
            try:
                slow: float | None = conflicts.full_check_naive(
                    conn, part, r_layer, c_layers
                ).total_seconds
            except psycopg.errors.QueryCanceled:
                conn.rollback()
                slow = None
                notes.append("peer_subset_s: timed out on the subset too")
            conn.execute("SET statement_timeout = 0")
            subset_figures = {
                "peer_subset_parcels": subset,
                "full_check_subset_s": round(fast, 2),
                "peer_subset_s": None if slow is None else round(slow, 2),
            }
        conn.commit()

        log("entering the rights in the register for the application and as-of queries")
        _enter_register(conn)
        to_wgs = Transformer.from_crs(REGISTER_SRID, 4326, always_xy=True)
        rng = np.random.default_rng(3)
        registrar = Principal(0, "bench", frozenset({"registrar"}), None)
        picks = rng.integers(0, len(reg.rights), applications)
        app_ms: list[float] = []
        for k in picks.tolist():
            # A new right half-way over an existing one, half its depth range overlapping.
            x0, y0, x1, y1 = shapely.bounds(reg.rights[k])
            box = shapely.box(x0 + (x1 - x0) / 2, y0, x1 + (x1 - x0) / 2, y1)
            geom = shapely.transform(box, lambda xy: np.column_stack(to_wgs.transform(*xy.T)))
            top = float(reg.depth_top[k])
            bottom = float(reg.depth_bottom[k])
            boundary = service.Boundary(
                service._multi(geom, "bench"), top - 50.0, (top + bottom) / 2
            )
            t0 = time.perf_counter()
            made = service.submit(
                conn,
                registrar,
                kind="mining",
                object_id=f"APP-{k}",
                applicant="bench",
                boundary=boundary,
            )
            app_ms.append((time.perf_counter() - t0) * 1000)
            assert made["findings"], "a half-overlapping application found no conflict"
            conn.rollback()

        log("as-of queries: one right at a past date, and a map view as of a past date")
        asof_ms: list[float] = []
        valid = dt.datetime(2015, 6, 1, tzinfo=dt.UTC)
        known = dt.datetime(2012, 1, 1, tzinfo=dt.UTC)
        for i in range(asof_queries):
            k = int(rng.integers(0, len(reg.rights)))
            t0 = time.perf_counter()
            if i % 2 == 0:
                out = service.as_of(conn, valid, known, object_id=f"BENCH-{k + 1}")
            else:
                x0, y0, x1, y1 = shapely.bounds(reg.rights[k])
                lon0, lat0 = to_wgs.transform(x0 - 5000, y0 - 5000)
                lon1, lat1 = to_wgs.transform(x1 + 5000, y1 + 5000)
                out = service.as_of(conn, valid, known, bbox=(lon0, lat0, lon1, lat1))
            asof_ms.append((time.perf_counter() - t0) * 1000)
            assert out["numberReturned"] >= 1
            conn.rollback()
    notes.append("the machine is shared with other jobs; its load is not controlled")
    return {
        "bench": "registry",
        "parcels": len(reg.parcels),
        "rights": len(reg.rights),
        "full_check_s": round(full_s, 2),
        "full_check_steps_s": {k: round(v, 2) for k, v in report.seconds.items()},
        "findings": found,
        "peer_s": None if peer_s is None else round(peer_s, 2),
        "peer_steps_s": peer_steps,
        "speedup": None if peer_s is None else round(peer_s / full_s, 2),
        **subset_figures,
        "application_check_p95_ms": round(percentile(app_ms, 95), 1),
        "asof_p95_ms": round(percentile(asof_ms, 95), 1),
        "notes": notes,
    }
