"""The prepare chain on the loaded city: COGs, streams and gauge catchments in the database."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from apps.flood.preparation import needs_preparing
from apps.flood.prepare import read_band
from gis_core.crs import WGS84, transform
from gis_core.db import connect

pytestmark = pytest.mark.services


def test_prepare_writes_cogs_streams_and_a_catchment_per_gauge(prepared, db_url) -> None:
    out = prepared.out_dir
    for name in ("filled", "d8", "accumulation", "streams", "hand", "drain", "zones"):
        with rasterio.open(f"{out}/{name}.tif") as src:
            assert src.crs is not None and src.crs.to_epsg() == 4547
            assert src.profile.get("tiled")
    with connect(db_url) as conn:
        gauges = conn.execute(
            "SELECT count(*) FROM iot.monitoring_site WHERE kind = 'water_level'"
        ).fetchone()[0]
        streams = conn.execute("SELECT count(*), min(strahler) FROM flood.stream").fetchone()
        assert not needs_preparing(conn)
    assert gauges >= 2
    assert prepared.catchments + sum("no catchment" in n for n in prepared.notes) == gauges
    assert streams[0] == prepared.streams > 0 and streams[1] >= 1


def test_catchment_area_equals_accumulation_at_its_outlet(prepared, db_url) -> None:
    acc = read_band(f"{prepared.out_dir}/accumulation.tif")
    with rasterio.open(f"{prepared.out_dir}/accumulation.tif") as src:
        inv, cell = ~src.transform, abs(src.transform.a)
    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT c.cells, c.area_km2, c.snap_m, ST_X(s.geom), ST_Y(s.geom)"
            " FROM flood.catchment c JOIN iot.monitoring_site s ON s.id = c.site_id"
        ).fetchall()
    assert rows
    for cells, area_km2, snap_m, lon, lat in rows:
        assert area_km2 == pytest.approx(cells * cell * cell / 1e6)
        # the outlet is the strongest flow within the snap radius: its accumulation is the
        # catchment's cell count
        x, y = transform(lon, lat, WGS84, 4547)
        col, row = inv @ (x, y)
        r0, c0 = int(row), int(col)
        window = acc[max(r0 - 3, 0) : r0 + 4, max(c0 - 3, 0) : c0 + 4]
        assert cells in window
        # within the snap radius (at least two cells), from the point to a cell centre
        assert snap_m <= max(600.0, 2 * cell) + cell * 0.75


def test_zones_hold_each_gauge_once(prepared, db_url) -> None:
    zones = read_band(f"{prepared.out_dir}/zones.tif")
    with connect(db_url) as conn:
        mapping = conn.execute("SELECT zones FROM flood.prepared_dem").fetchone()[0]
    assert sorted(int(k) for k in mapping) == list(range(1, len(mapping) + 1))
    assert set(np.unique(zones)) <= {0, *map(int, mapping)}
