"""``changzhi bench exchange``: a million-row department database kept in step and mapped.

- ``rows``: the source, a SQLite database of ``rows`` rows (key, name, town code, indicator,
  value, change time; the change time indexed, as a source kept for exchange would be).
- ``full_sync_rows_per_s``: a full sync through the same code ``changzhi exchange sync`` runs
  (read, check every value against its data element, COPY into the next table, primary key,
  swap), rows over wall time; ``copy_rows_per_s`` is a plain ``COPY`` of the same rows (as
  CSV, already in memory) into a table without index, in the same run: the physical limit.
  ``full_resync_rows_per_s`` is a second full run, which also counts deletions and swaps.
- ``incremental_ms``: 10,000 rows changed in the source, then an incremental run (found by
  the change-time index, merged in one transaction), wall time.
- ``join_ms``: the loaded table joined to its towns by GB/T 2260 code and summed into a
  choropleth (GeoJSON with class breaks and the unjoined rows), median of five.

The reference city (5 % scale, 1 km DEM) is loaded into a throwaway PostGIS for the divisions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.bench.common import bench_services, median

Log = Callable[[str], None]
INCREMENTAL_ROWS = 10_000


def _source(path: Path, towns: list[str], rows: int, seed: int = 19) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00")
    frame = pd.DataFrame(
        {
            "id": np.char.add("R", np.arange(rows).astype(str)),
            "name": np.char.add("企业", rng.integers(0, 50_000, rows).astype(str)),
            "area": np.asarray(towns)[rng.integers(0, len(towns), rows)],
            "kind": np.where(rng.random(rows) < 0.5, "gdp", "grain_output"),
            "amount": np.round(rng.gamma(2.0, 50.0, rows), 2),
            "changed": np.datetime_as_string(
                start + rng.integers(0, 300 * 86400, rows).astype("timedelta64[s]")
            ),
        }
    )
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE firm (id TEXT PRIMARY KEY, name TEXT, area TEXT, kind TEXT,"
            " amount REAL, changed TEXT)"
        )
        db.executemany("INSERT INTO firm VALUES (?, ?, ?, ?, ?, ?)", frame.itertuples(index=False))
        db.execute("CREATE INDEX ix_firm_changed ON firm (changed)")
    return frame


def bench_exchange(log: Log, rows: int = 1_000_000, **_: Any) -> dict[str, Any]:
    import psycopg

    from apps.exchange import service
    from apps.exchange.sync import csv_payload, run_sync
    from gis_core.identity import Principal
    from gis_core.settings import (
        AuthSettings,
        DatabaseSettings,
        DataSettings,
        MqttSettings,
        PlatformSettings,
        Settings,
    )
    from layers.reference.load import load_dataset

    notes: list[str] = []
    with bench_services("exchange") as env:
        log("loading the reference city (scale 0.05, 1 km DEM) for the divisions")
        settings = Settings(
            platform=PlatformSettings(var_dir=env.var_dir),
            database=DatabaseSettings(url=env.database_url),
            mqtt=MqttSettings(url=env.mqtt_url),
            auth=AuthSettings(secret_key=env.jwt_secret),
            data=DataSettings(scale=0.05, dem_resolution_m=1000.0),
        )
        load_dataset(settings, force=True)
        url = env.database_url
        with psycopg.connect(url) as conn:
            towns = [r[0] for r in conn.execute(
                "SELECT code FROM exchange.division WHERE level = 'town'").fetchall()]  # fmt: skip
        path = env.var_dir / "registry.sqlite"
        log(f"writing a SQLite source of {rows:,} rows over {len(towns)} towns")
        frame = _source(path, towns, rows)
        with psycopg.connect(url) as conn:
            service.save_source(
                conn,
                None,
                {
                    "name": "bench_registry",
                    "title_zh": "基准企业库",
                    "kind": "sql",
                    "location": f"sqlite:///{path}",
                    "query": "firm",
                    "key_column": "id",
                    "changed_column": "changed",
                    "mapping": {
                        "name": "name_zh",
                        "area": "area_code",
                        "kind": "indicator",
                        "amount": "value",
                    },
                    "owner": "command",
                    "synthesized": True,
                },
            )
            conn.commit()

        log("full sync")
        t0 = time.perf_counter()
        run = run_sync(url, "bench_registry", "full")
        full_s = time.perf_counter() - t0
        if run["state"] != "ok":
            raise RuntimeError(f"the full sync failed: {run['error']}")
        t0 = time.perf_counter()
        run2 = run_sync(url, "bench_registry", "full")
        resync_s = time.perf_counter() - t0

        log("plain COPY of the same rows")
        plain = frame.rename(columns={"id": "key", "name": "name_zh", "area": "area_code",
                                      "kind": "indicator", "amount": "value",
                                      "changed": "changed_at"})  # fmt: skip
        payload = csv_payload(plain)
        with psycopg.connect(url) as conn:
            conn.execute(
                "CREATE TABLE bench_copy (key text, name_zh text, area_code text,"
                " indicator text, value double precision, changed_at timestamptz)"
            )
            conn.commit()
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy("COPY bench_copy FROM STDIN (FORMAT csv)") as cp:
                view = memoryview(payload)
                for start in range(0, len(view), 1 << 20):
                    cp.write(view[start : start + (1 << 20)])
            conn.commit()
            copy_s = time.perf_counter() - t0

        log(f"changing {INCREMENTAL_ROWS:,} rows in the source")
        rng = np.random.default_rng(7)
        picked = rng.choice(rows, INCREMENTAL_ROWS, replace=False)
        with sqlite3.connect(path) as db:
            db.executemany(
                "UPDATE firm SET amount = amount + 1, changed = '2026-01-01T00:00:00' WHERE id = ?",
                [(f"R{i}",) for i in picked],
            )
        t0 = time.perf_counter()
        inc = run_sync(url, "bench_registry", "auto")
        incremental_ms = (time.perf_counter() - t0) * 1000.0
        if (inc["mode"], inc["rows_loaded"]) != ("incremental", INCREMENTAL_ROWS):
            notes.append(f"incremental run: {inc['mode']} {inc['rows_loaded']} rows")

        log("joining to towns as a choropleth")
        admin = Principal(0, "bench", frozenset({"admin"}), "command")
        times = []
        joined = None
        with psycopg.connect(url) as conn:
            for _attempt in range(5):
                t0 = time.perf_counter()
                joined = service.join(conn, "bench_registry", admin, by="division",
                                      key="area_code", value="value", level="town")  # fmt: skip
                times.append((time.perf_counter() - t0) * 1000.0)
            conn.rollback()
        assert joined is not None
    return {
        "bench": "exchange",
        "rows": rows,
        "full_sync_rows_per_s": round(rows / full_s),
        "full_resync_rows_per_s": round(rows / resync_s),
        "copy_rows_per_s": round(rows / copy_s),
        "full_vs_copy": round(copy_s / full_s, 3),
        "refused": run["rows_refused"] + run2["rows_refused"],
        "incremental_ms": round(incremental_ms, 1),
        "incremental_rows": inc["rows_loaded"],
        "join_ms": round(median(times), 1),
        "join_towns": len(joined["features"]),
        "join_rows": joined["joined"],
        "notes": notes,
    }
