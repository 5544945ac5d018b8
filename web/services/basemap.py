"""Where the base map's DEM is: the query behind ``web/routers/basemap.py``."""

from __future__ import annotations

from pathlib import Path

import psycopg

from gis_core.errors import NotFound


def dem_path(conn: psycopg.Connection, city: str) -> Path:
    """The DEM the loaded dataset of ``city`` names; NotFound when none is loaded or its file
    is gone."""
    row = conn.execute("SELECT dem_path FROM ref.dataset WHERE city = %s", (city,)).fetchone()
    if row is None or not row[0]:
        raise NotFound("no DEM loaded yet: run `changzhi data load`")
    dem = Path(row[0])
    if not dem.exists():
        raise NotFound(f"the DEM {dem.name} is missing: run `changzhi data load`")
    return dem
