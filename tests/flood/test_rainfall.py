"""Rain surfaces against hand values and pykrige's own result."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from apps.flood import rainfall as rf

# a 10 km square of 1 km cells; gauges on cell centres
T = Affine(1000.0, 0, 0, 0, -1000.0, 10000.0)
SHAPE = (10, 10)
GX = [500.0, 8500.0, 4500.0, 2500.0]
GY = [9500.0, 8500.0, 1500.0, 4500.0]
MM = [10.0, 30.0, 50.0, 0.0]


def test_idw_is_exact_at_gauges_and_between_them_by_hand() -> None:
    grid = rf.idw(GX, GY, MM, T, SHAPE)
    rows = [int((10000 - y) // 1000) for y in GY]
    cols = [int(x // 1000) for x in GX]
    np.testing.assert_allclose(grid[rows, cols], MM)
    # two gauges only, at distances 1 and 3 cells: weights 1 and 1/9
    two = rf.idw([500.0, 4500.0], [500.0, 500.0], [10.0, 20.0], T, SHAPE)
    assert two[9, 1] == pytest.approx((10 * 1 + 20 / 9) / (1 + 1 / 9), rel=1e-6)


def test_kriging_equals_pykrige() -> None:
    from pykrige.ok import OrdinaryKriging

    grid, params = rf.kriging(GX, GY, MM, T, SHAPE)
    xs = np.arange(10) * 1000 + 500.0
    ys = 10000 - (np.arange(10) * 1000 + 500.0)
    ref, _ = OrdinaryKriging(
        np.array(GX), np.array(GY), np.array(MM), variogram_model="spherical", nlags=6
    ).execute("grid", xs, ys)
    # float32 output: the same answer to its precision (the solve itself agrees to 1e-9)
    np.testing.assert_allclose(grid, np.clip(ref, 0, None).astype(np.float32), rtol=1e-6, atol=1e-6)
    assert params["range"] > 0
    lin, _ = rf.kriging(GX, GY, MM, T, SHAPE, variogram_model="exponential")
    ref, _ = OrdinaryKriging(
        np.array(GX), np.array(GY), np.array(MM), variogram_model="exponential", nlags=6
    ).execute("grid", xs, ys)
    np.testing.assert_allclose(lin, np.clip(ref, 0, None).astype(np.float32), rtol=1e-6, atol=1e-6)


def test_fallbacks_say_what_they_did() -> None:
    dry = rf.rain_surface(GX, GY, [0, 0, 0, 0], T, SHAPE)
    assert dry.method == "none" and not dry.depth_mm.any()
    two = rf.rain_surface(GX[:2], GY[:2], MM[:2], T, SHAPE)
    assert two.method == "idw" and "3 gauges" in two.notes[0]
    flat = rf.rain_surface(GX, GY, [5, 5, 5, 5], T, SHAPE)
    assert flat.method == "idw"
    np.testing.assert_allclose(flat.depth_mm, 5.0)
    with pytest.raises(rf.GaugeError, match="negative"):
        rf.rain_surface(GX, GY, [1, -1, 0, 0], T, SHAPE)
    with pytest.raises(rf.GaugeError, match="length"):
        rf.idw(GX, GY[:2], MM, T, SHAPE)


def test_thiessen_areal_is_the_area_weighted_gauge_mean() -> None:
    square = shapely.box(0, 0, 10000, 10000)
    # two gauges symmetric about x = 5000: halves of the square
    mean = rf.thiessen_areal([2500.0, 7500.0], [5000.0, 5000.0], [10.0, 30.0], square)
    assert mean == pytest.approx(20.0)
    # gauges at x = 2000 and 6000: the split is at x = 4000, weights 0.4 and 0.6
    mean = rf.thiessen_areal([2000.0, 6000.0], [5000.0, 5000.0], [10.0, 30.0], square)
    assert mean == pytest.approx(0.4 * 10 + 0.6 * 30)
    cells = rf.thiessen(GX, GY, square)
    assert sum(c.area for c in cells) == pytest.approx(square.area)
    assert all(c.contains(shapely.Point(x, y)) for c, x, y in zip(cells, GX, GY, strict=True))


def test_areal_rainfall_and_isohyets() -> None:
    # rain rising 1 mm per km eastwards, 0.5 at the first cell centre
    depth = np.tile(np.arange(10, dtype=np.float32) + 0.5, (10, 1))
    surface = rf.RainSurface(depth, T, "test")
    west, east = shapely.box(0, 0, 5000, 10000), shapely.box(5000, 0, 10000, 10000)
    np.testing.assert_allclose(rf.areal_rainfall(surface, [west, east]), [2.5, 7.5])
    tiny = shapely.box(7100, 100, 7200, 200)  # inside one cell, no centre inside
    assert rf.areal_rainfall(surface, [tiny])[0] == pytest.approx(7.5)
    lines, bands = rf.isohyets(surface, [2.0, 6.0])
    # the 2 mm isohyet is the line x = 2000 m
    xs = shapely.get_coordinates(lines[0])[:, 0]
    np.testing.assert_allclose(xs, 2000.0)
    assert bands[0].area == pytest.approx(4000 * 9000, rel=1e-6)  # between centre rows
