"""Depth tiles per scenario and per forecast step: water where the grid is wet, nothing
elsewhere, and clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rasterio.io import MemoryFile

from apps.flood import service, tiles
from gis_core.crs import WGS84, transform
from tests.flood.test_briefing import END, storm  # noqa: F401  (the fixture)

pytestmark = pytest.mark.services


def _alpha(png: bytes) -> np.ndarray:
    with MemoryFile(png) as mem, mem.open() as src:
        return src.read(4)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, float, float]:
    """Tile and pixel of a WGS84 point (slippy-map formulas)."""
    n = 2**z
    fx = (lon + 180.0) / 360.0 * n
    fy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int(fx), int(fy), (fx % 1) * 256, (fy % 1) * 256


def test_a_wet_cell_is_blue_on_its_tile_and_the_far_world_is_clear(storm) -> None:  # noqa: F811
    conn, site, _ = storm
    sc = service.scenario(conn, rise_m=3.0)
    wet = np.argwhere(sc.depth > 2.0)  # deep: class 4 or more
    assert wet.size
    r, c = wet[len(wet) // 2]
    x, y = sc.prep.transform @ (c + 0.5, r + 0.5)
    lon, lat = transform(x, y, sc.prep.epsg, WGS84)
    z = 12
    tx, ty, px, py = _tile_of(float(lon), float(lat), z)
    alpha = _alpha(tiles.depth_tile(conn, z, tx, ty, rise_m=3.0))
    assert alpha[int(py), int(px)] >= 200  # deep water is nearly opaque
    assert not _alpha(tiles.depth_tile(conn, z, 0, 0, rise_m=3.0)).any()  # the Arctic is dry
    # A forecast step's tile: the stages of every forecast gauge at that step.
    steps = tiles.forecast_steps(conn, now=END, horizon_h=2.0)
    assert len(steps["steps"]) == 8 and site in steps["steps"][0]["stages"]


def test_tile_routes_refuse_bad_requests(storm, api, admin_headers) -> None:  # noqa: F811
    h = admin_headers
    r = api.get("/flood/depth/10/800/400.png", params={"rise_m": 2}, headers=h)
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    r = api.get("/flood/depth/10/800/400.png", headers=h)
    assert r.status_code == 422 and "exactly one of" in r.json()["detail"]
    r = api.get("/flood/depth/3/9/1.png", params={"rise_m": 2}, headers=h)
    assert r.status_code == 422 and "does not exist" in r.json()["detail"]
    r = api.get("/flood/depth/10/800/400.png", params={"rise_m": 2, "step": 1}, headers=h)
    assert r.status_code == 422
    assert api.get("/flood/depth/10/800/400.png", params={"rise_m": 2}).status_code == 401
