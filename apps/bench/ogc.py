"""`bench tiles` and `bench features`: the platform's OGC API beside pygeoapi, same table, same run.

A 1-million-point layer is generated in PostGIS (clustered like a city: dense downtown, sparse
countryside). Both servers run as one uvicorn process against the same database; requests to
the two alternate so that machine noise falls on both alike.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from apps.bench.common import BenchEnv, free_port, median, percentile, stop_process, wait_http
from gis_core.settings import REPO_ROOT
from gis_core.tiles import tile_containing

Log = Callable[[str], None]
PEER_TIMEOUT_S = 30

POINTS_SQL = """
CREATE TABLE userdata.bench_points (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    category text NOT NULL,
    value double precision NOT NULL,
    geom geometry(Point, 4326) NOT NULL
);
SELECT setseed(0.42);
INSERT INTO userdata.bench_points
SELECT i,
       'point ' || i,
       (ARRAY['shop','home','office','school','clinic'])[1 + (i % 5)],
       round((random() * 100)::numeric, 2),
       CASE WHEN i % 10 < 6
            -- downtown: a Gaussian cloud (Box-Muller) around the city seat
            THEN ST_SetSRID(ST_MakePoint(
                113.11 + 0.06 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()),
                36.19 + 0.05 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())), 4326)
            ELSE ST_SetSRID(ST_MakePoint(112.0 + 1.7 * random(), 35.85 + 1.25 * random()), 4326)
       END
FROM generate_series(1, %(n)s) AS i;
CREATE INDEX ix_bench_points_geom ON userdata.bench_points USING gist (geom);
ANALYZE userdata.bench_points;
INSERT INTO ref.user_layer (id, table_name, title_zh, title_en, geometry_type, properties)
VALUES ('bench_points', 'userdata.bench_points', '基准点', 'Benchmark points', 'Point',
        ARRAY['name', 'category', 'value']);
"""


def make_points(env: BenchEnv, n: int) -> None:
    with psycopg.connect(env.database_url) as conn:
        conn.execute(POINTS_SQL.replace("%(n)s", str(int(n))))
        conn.commit()


def pygeoapi_python(var_dir: Path, log: Log) -> Path:
    """A virtual environment with pygeoapi from PyPI, made once and kept under var/bench."""
    venv = var_dir / "pygeoapi-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed-3"
    if not marker.exists():
        log("installing pygeoapi into " + str(venv) + " (first run only)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "pygeoapi",
                "psycopg2-binary",
                "geoalchemy2",
                "starlette",
                "uvicorn",
            ],
            check=True,
        )
        marker.touch()
    return python


@contextmanager
def serve_pygeoapi(env: BenchEnv, log: Log) -> Iterator[str]:
    python = pygeoapi_python(REPO_ROOT / "var" / "bench", log)
    port = free_port()
    db = urlsplit(env.database_url)
    # The peer gets its own role with a statement timeout: its dense low-zoom tiles take
    # minutes, and an abandoned request must not keep loading the database under our run.
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE bench_peer LOGIN PASSWORD 'peer' IN ROLE {db.username}")
        conn.execute(f"ALTER ROLE bench_peer SET statement_timeout = '{PEER_TIMEOUT_S}s'")
    connection = {
        "host": db.hostname,
        "port": db.port,
        "dbname": db.path.lstrip("/"),
        "user": "bench_peer",
        "password": "peer",
        "search_path": ["userdata", "public"],
    }
    config: dict[str, Any] = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "en-US",
            "limits": {"default_items": 100, "max_items": 10000},
            "map": {"url": "http://127.0.0.1/none", "attribution": "none"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "peer",
                "description": "peer",
                "keywords": ["x"],
                "keywords_type": "theme",
                "terms_of_service": "none",
                "url": "http://127.0.0.1",
            },
            "license": {"name": "none", "url": "http://127.0.0.1"},
            "provider": {"name": "none", "url": "http://127.0.0.1"},
            "contact": {"name": "none"},
        },
        "resources": {
            "bench_points": {
                "type": "collection",
                "title": "bench points",
                "description": "bench points",
                "keywords": ["bench"],
                "extents": {
                    "spatial": {
                        "bbox": [111.9, 35.8, 113.8, 37.2],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": connection,
                        "id_field": "id",
                        "table": "bench_points",
                        "geom_field": "geom",
                    },
                    {
                        "type": "tile",
                        "name": "MVT-postgresql",
                        "data": connection,
                        "id_field": "id",
                        "table": "bench_points",
                        "geom_field": "geom",
                        "options": {"zoom": {"min": 0, "max": 22}},
                        "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
                    },
                ],
            }
        },
    }
    work = env.var_dir / "pygeoapi"
    work.mkdir(exist_ok=True)
    cfg = work / "config.yml"
    cfg.write_text(json.dumps(config))  # JSON is YAML
    openapi = work / "openapi.yml"
    run_env = {
        "PYGEOAPI_CONFIG": str(cfg),
        "PYGEOAPI_OPENAPI": str(openapi),
        "PATH": "/usr/bin:/bin",
    }
    generated = subprocess.run(
        [
            str(python.with_name("pygeoapi")),
            "openapi",
            "generate",
            str(cfg),
            "--output-file",
            str(openapi),
        ],
        env=run_env,
        capture_output=True,
        text=True,
    )
    if generated.returncode != 0:
        raise RuntimeError("pygeoapi openapi generate failed: " + generated.stderr[-400:])
    proc = subprocess.Popen(
        [
            str(python),
            "-m",
            "uvicorn",
            "pygeoapi.starlette_app:APP",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=run_env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / "pygeoapi.log").open("ab"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/collections/bench_points", proc)
        yield base
    finally:
        stop_process(proc)


def sample_tiles(rng: random.Random, per_zoom: int) -> list[tuple[int, int, int]]:
    tiles = []
    for z in range(8, 15):
        for _ in range(per_zoom):
            # Around the dense cluster, where tiles are fullest (the hard case).
            lon = rng.gauss(113.11, 0.08)
            lat = rng.gauss(36.19, 0.07)
            x, y = tile_containing(lon, lat, z)
            tiles.append((z, x, y))
    return tiles


def timed_get(
    client: httpx.Client, url: str, headers: dict[str, str] | None = None
) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = client.get(url, headers=headers)
    return (time.perf_counter() - t0) * 1000, response


def mvt_feature_count(content: bytes, layer: str) -> int:
    """Features in a tile (-1 without the dev extra that decodes MVT)."""
    try:
        import mapbox_vector_tile
    except ImportError:
        return -1
    decoded = mapbox_vector_tile.decode(content)
    return len(decoded.get(layer, {"features": []})["features"])


def generalize_points(env: BenchEnv, log: Log) -> dict[str, Any]:
    """What the platform does when a layer changes: track the table and rebuild its point
    generalization. Timed, since a write to the layer pays it (in the background)."""
    from gis_core.tiles import refresh
    from layers.user_layers import user_layers

    with psycopg.connect(env.database_url) as conn:
        layer = next(x for x in user_layers(conn) if x.id == "bench_points")
        t0 = time.perf_counter()
        built = refresh(conn, layer)
        seconds = time.perf_counter() - t0
    assert built is not None, "the bench layer was not generalized"
    log(
        f"generalized in {seconds:.1f} s: cut-off z{built.cutoff}, {built.dense_tiles} dense "
        f"tiles, {built.cells:,} cells"
    )
    return {
        "generalize_s": round(seconds, 2),
        "cutoff_zoom": built.cutoff,
        "dense_tiles": built.dense_tiles,
        "stored_cells": built.cells,
    }


def run_tiles(
    env: BenchEnv, ours: str, peer: str, log: Log, per_zoom: int = 30, peer_per_zoom: int = 3
) -> dict[str, Any]:
    """Tile latency over z8-z14. ``p50_ms``/``p95_ms`` are cold: every request of ours carries
    ``Cache-Control: no-cache``, so the tile is made from the database each time, and the
    server's ``X-Tile-Cache: bypass`` answer is checked. The same tiles are then asked again
    without it and reported apart as ``cached_*``. The peer is slow on dense tiles (seconds to
    minutes), so it gets the first ``peer_per_zoom`` tiles of each zoom — the same addresses."""
    generalization = generalize_points(env, log)
    rng = random.Random(7)
    tiles = sample_tiles(rng, per_zoom)
    mine: list[float] = []
    mine_on_peer_sample: list[float] = []
    cached: list[float] = []
    theirs: list[float] = []
    peer_failed = 0
    sizes: list[int] = []
    counts: list[int] = []
    ours_url = ours + "/collections/bench_points/tiles/WebMercatorQuad/{z}/{y}/{x}"
    peer_url = peer + "/collections/bench_points/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"
    cold = {"Cache-Control": "no-cache"}
    with httpx.Client(timeout=PEER_TIMEOUT_S + 30) as client:
        for z, x, y in tiles[:5]:  # warm ours (connection pool, prepared statements)
            client.get(ours_url.format(z=z, x=x, y=y), headers=cold)
        client.get(peer_url.format(z=14, x=tiles[-1][1], y=tiles[-1][2]))  # warm the peer
        for index, (z, x, y) in enumerate(tiles):
            ms, response = timed_get(client, ours_url.format(z=z, x=x, y=y), cold)
            response.raise_for_status()
            if response.headers.get("x-tile-cache") != "bypass":
                raise RuntimeError(
                    f"a cold tile was not made afresh: {response.headers.get('x-tile-cache')}"
                )
            mine.append(ms)
            sizes.append(len(response.content))
            if index % per_zoom == 0:
                counts.append(mvt_feature_count(response.content, "bench_points"))
            if index % per_zoom < peer_per_zoom:
                mine_on_peer_sample.append(ms)
                try:
                    ms, response = timed_get(client, peer_url.format(z=z, x=x, y=y))
                    if response.status_code == 200:
                        theirs.append(ms)
                    else:
                        # Timed out in the database: counted at the timeout, a lower bound.
                        peer_failed += 1
                        theirs.append(max(ms, PEER_TIMEOUT_S * 1000.0))
                except httpx.HTTPError:
                    peer_failed += 1
                    theirs.append(PEER_TIMEOUT_S * 1000.0)
        hits = 0
        for z, x, y in tiles:
            ms, response = timed_get(client, ours_url.format(z=z, x=x, y=y))
            response.raise_for_status()
            cached.append(ms)
            hits += response.headers.get("x-tile-cache") == "hit"
    log(
        f"tiles: ours cold p50 {median(mine):.1f} ms p95 {percentile(mine, 95):.1f} ms, cached "
        f"p95 {percentile(cached, 95):.1f} ms; pygeoapi p50 {median(theirs):.1f} ms "
        f"p95 {percentile(theirs, 95):.1f} ms ({len(theirs)} tiles)"
    )
    return {
        "tiles_requested": len(tiles),
        "zooms": "8-14",
        "p50_ms": round(median(mine), 2),
        "p95_ms": round(percentile(mine, 95), 2),
        "cached_p50_ms": round(median(cached), 2),
        "cached_p95_ms": round(percentile(cached, 95), 2),
        "cached_hit_ratio": round(hits / len(tiles), 3),
        "peer": "pygeoapi",
        "peer_tiles": len(theirs),
        "peer_timeouts": peer_failed,
        "peer_timeout_s": PEER_TIMEOUT_S,
        "peer_p50_ms": round(median(theirs), 2),
        "peer_p95_ms": round(percentile(theirs, 95), 2),
        "ours_p95_ms_on_peer_sample": round(percentile(mine_on_peer_sample, 95), 2),
        "p95_ratio_peer_over_ours": round(
            percentile(theirs, 95) / percentile(mine_on_peer_sample, 95), 1
        ),
        "mean_tile_bytes": round(sum(sizes) / len(sizes)),
        "max_tile_bytes": max(sizes),
        "max_features_in_sampled_tiles": max(counts),
        "max_features_per_tile": 20000,
        **generalization,
    }


def run_features(
    env: BenchEnv, ours: str, peer: str, log: Log, pages: int = 40, limit: int = 1000
) -> dict[str, Any]:
    rng = random.Random(11)
    offsets = [rng.randrange(0, 900_000) for _ in range(pages)]
    totals = {"ours": [0, 0.0], "peer": [0, 0.0]}
    warmup: dict[str, list[float]] = {"ours": [], "peer": []}
    with httpx.Client(timeout=120) as client:
        # Warm both. Ours learns here that the table reports its changes and walks it once
        # (count and page anchors, kept until the table changes): these first pages show it.
        for offset in offsets[:3]:
            ms, _ = timed_get(
                client, f"{ours}/collections/bench_points/items?limit={limit}&offset={offset}"
            )
            warmup["ours"].append(round(ms, 1))
            ms, _ = timed_get(
                client,
                f"{peer}/collections/bench_points/items?limit={limit}&offset={offset}&f=json",
            )
            warmup["peer"].append(round(ms, 1))
            time.sleep(0.2)  # the change trigger is installed in the background
        for offset in offsets:
            for who, url in (
                ("ours", f"{ours}/collections/bench_points/items?limit={limit}&offset={offset}"),
                (
                    "peer",
                    f"{peer}/collections/bench_points/items?limit={limit}&offset={offset}&f=json",
                ),
            ):
                ms, response = timed_get(client, url)
                response.raise_for_status()
                n = len(response.json()["features"])
                totals[who][0] += n
                totals[who][1] += ms / 1000
    ours_rate = totals["ours"][0] / totals["ours"][1]
    peer_rate = totals["peer"][0] / totals["peer"][1]
    log(f"features: ours {ours_rate:,.0f}/s, pygeoapi {peer_rate:,.0f}/s")
    return {
        "pages": pages,
        "page_size": limit,
        "features_per_s": round(ours_rate),
        "peer": "pygeoapi",
        "peer_features_per_s": round(peer_rate),
        "ratio": round(ours_rate / peer_rate, 2),
        "warmup_page_ms": warmup["ours"],
        "peer_warmup_page_ms": warmup["peer"],
    }
