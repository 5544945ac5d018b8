"""What ``GET /health`` asks the database: the queries behind ``web/routers/health.py``."""

from __future__ import annotations

from typing import Any

import psycopg


def database_status(conn: psycopg.Connection) -> dict[str, Any]:
    """PostGIS's version and the schema revisions applied: the core's and each installed
    application's branch head, comma-separated."""
    postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    heads = conn.execute(
        "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM public.alembic_version"
    ).fetchone()
    return {
        "status": "ok",
        "postgis": postgis[0] if postgis else None,
        "schema_revision": heads[0] if heads else None,
    }
