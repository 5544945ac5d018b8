"""Pure tests for gis_core.terrain (no database): DEM refinement and relief tiles."""

from __future__ import annotations

import hashlib
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject
from shapely.geometry import LineString

from gis_core.terrain import (
    NODATA,
    ReliefTileStore,
    TileOutOfRange,
    dem_stats,
    hillshade,
    refine_dem,
    render_tile,
    tile_bounds,
)
from gis_core.tiles import tile_containing

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A 0.1° grid like the ETOPO1 window: cell centres 112.55..113.85E, 35.65..36.95N.
WEST, NORTH, STEP, N = 112.5, 37.0, 0.1, 14
RES = 500.0
# The river runs west to east, down the synthetic valley.
RIVER = LineString(
    [(112.62, 36.28), (112.95, 36.33), (113.25, 36.27), (113.55, 36.31), (113.9, 36.3)]
)
NODATA_CELL = (13, 0)  # south-west corner cell is missing
TO_GK = Transformer.from_crs(4326, 4547, always_xy=True)


def _coarse_heights() -> np.ndarray:
    lon = WEST + (np.arange(N) + 0.5) * STEP
    lat = NORTH - (np.arange(N) + 0.5) * STEP
    glon, glat = np.meshgrid(lon, lat)
    # A basin at ~900 m, ranges to the west and east, a valley falling eastwards along 36.3N.
    h = 900.0 + 500.0 * np.exp(-(((glon - 112.65) / 0.2) ** 2))
    h += 700.0 * np.exp(-(((glon - 113.75) / 0.25) ** 2))
    h -= 250.0 * np.exp(-(((glat - 36.3) / 0.15) ** 2)) * (glon - 112.5) / 1.4
    h += 30.0 * np.sin(glon * 40.0) * np.cos(glat * 30.0)
    return h.astype(np.float32)


@pytest.fixture(scope="module")
def coarse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("terrain") / "coarse.tif"
    h = _coarse_heights()
    h[NODATA_CELL] = np.nan
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=N,
        height=N,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(WEST, NORTH, STEP, STEP),
        nodata=np.nan,
    ) as dst:
        dst.write(h, 1)
    return path


@pytest.fixture(scope="module")
def dem(coarse: Path) -> Path:
    return refine_dem(coarse, coarse.with_name("dem.tif"), resolution_m=RES, rivers=[RIVER], seed=7)


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


def _at(a: np.ndarray, transform: rasterio.Affine, lon: float, lat: float) -> float:
    x, y = TO_GK.transform(lon, lat)
    col, row = ~transform @ (x, y)
    return float(a[int(row), int(col)])


def _decode(png: bytes) -> np.ndarray:
    # A tile PNG carries no georeferencing, which rasterio warns about on opening.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(png) as mem, mem.open() as ds:
            return ds.read()


# ------------------------------------------------------------------------------------------
# refinement
# ------------------------------------------------------------------------------------------


def test_output_is_documented_float32_geotiff_in_gk_cm114(dem: Path) -> None:
    with rasterio.open(dem) as ds:
        assert ds.crs.to_epsg() == 4547
        assert ds.res == (RES, RES)
        assert ds.dtypes == ("float32",)
        assert ds.nodata == NODATA
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.overviews(1), "overviews make low-zoom tiles cheap"
        tags = ds.tags()
    assert "refinement of NOAA ETOPO1 (Amante & Eakins 2009)" in tags["METHOD"]
    assert tags["SEED"] == "7"
    assert tags["RESOLUTION_M"] == "500"
    # ~140 km × 155 km at 500 m.
    stats = dem_stats(dem)
    assert 250 < stats["width"] < 300 and 300 < stats["height"] < 340
    assert 500 < stats["min"] < stats["mean"] < stats["max"] < 2000


def test_same_seed_same_dem_other_seed_other_dem(coarse: Path, dem: Path) -> None:
    again = refine_dem(
        coarse, coarse.with_name("again.tif"), resolution_m=RES, rivers=[RIVER], seed=7
    )
    other = refine_dem(
        coarse, coarse.with_name("other.tif"), resolution_m=RES, rivers=[RIVER], seed=8
    )
    a, _ = _read(dem)
    assert np.array_equal(a, _read(again)[0])
    assert hashlib.sha256(dem.read_bytes()).digest() == hashlib.sha256(again.read_bytes()).digest()
    b, _ = _read(other)
    valid = a != NODATA
    assert np.abs(a[valid] - b[valid]).mean() > 1.0


def test_block_means_track_the_real_coarse_grid(coarse: Path, dem: Path) -> None:
    with rasterio.open(coarse) as c, rasterio.open(dem) as d:
        real = c.read(1)
        back = np.full(real.shape, np.nan, dtype=np.float32)
        reproject(
            rasterio.band(d, 1),
            back,
            dst_transform=c.transform,
            dst_crs=c.crs,
            dst_nodata=np.nan,
            resampling=Resampling.average,
        )
    ok = np.isfinite(back) & np.isfinite(real)
    ok[[0, -1], :] = ok[:, [0, -1]] = False  # edge cells are cut by the footprint
    assert ok.sum() > 100
    dev = np.abs(back[ok] - real[ok])
    assert dev.mean() < 15.0, dev.mean()
    assert np.percentile(dev, 90) < 40.0


def test_river_is_carved_below_both_banks_and_descends(dem: Path) -> None:
    a, transform = _read(dem)
    line = np.asarray(TO_GK.transform(*np.asarray(RIVER.coords).T)).T
    gk = LineString(line)
    checked = 0
    for frac in np.linspace(0.1, 0.9, 17):
        p = gk.interpolate(frac, normalized=True)
        q = gk.interpolate(min(frac + 0.01, 1.0), normalized=True)
        dx, dy = q.x - p.x, q.y - p.y
        nx, ny = -dy / math.hypot(dx, dy), dx / math.hypot(dx, dy)
        col, row = ~transform @ (p.x, p.y)
        river = a[int(row), int(col)]
        for side in (-1, 1):
            bc, br = ~transform @ (p.x + side * 2000 * nx, p.y + side * 2000 * ny)
            assert river < a[int(br), int(bc)], (frac, side)
        checked += 1
    assert checked == 17
    # Channel pixels in downstream order (east) never rise.
    pts = np.asarray([gk.interpolate(d).coords[0] for d in np.arange(0, gk.length, RES / 2)])
    cols, rows = ~transform @ (pts[:, 0], pts[:, 1])
    z = a[rows.astype(int), cols.astype(int)]
    z = z[z != NODATA]
    assert np.all(np.diff(z) <= 1e-3), np.diff(z).max()
    assert z[0] - z[-1] > 100.0


def test_nodata_outside_footprint_and_under_missing_cells(coarse: Path, dem: Path) -> None:
    a, transform = _read(dem)
    # The missing south-west cell stays missing; its neighbours to the east do not.
    r, c = NODATA_CELL
    lon = WEST + (c + 0.5) * STEP
    lat = NORTH - (r + 0.5) * STEP
    assert _at(a, transform, lon, lat) == NODATA
    assert _at(a, transform, lon + 0.3, lat) != NODATA
    # The WGS84 box is curved in the GK grid, so corners of the raster are outside it.
    assert (a == NODATA).any() and (a != NODATA).mean() > 0.9
    # A smaller box gives a smaller raster, nodata outside the box.
    small = refine_dem(
        coarse,
        coarse.with_name("small.tif"),
        resolution_m=1000.0,
        bounds_wgs84=(112.9, 36.1, 113.3, 36.5),
    )
    b, bt = _read(small)
    assert b.shape[1] < 45 and b.shape[0] < 50
    assert _at(b, bt, 113.1, 36.3) != NODATA
    assert (b == NODATA).any()


def test_resolution_must_be_positive(coarse: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        refine_dem(coarse, tmp_path / "x.tif", resolution_m=0)


# ------------------------------------------------------------------------------------------
# hillshade and tiles
# ------------------------------------------------------------------------------------------


def test_hillshade_azimuth_sun_from_north_west() -> None:
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)  # rows run south, columns east
    # Ground rising towards the south-east faces north-west, towards a 315° sun.
    faces_nw = (xx + yy) * 10.0
    faces_se = -faces_nw
    lit = hillshade(faces_nw, 30.0)
    dark = hillshade(faces_se, 30.0)
    assert lit[16, 16] > 0.9 > 0.5 > dark[16, 16]
    flat = hillshade(np.zeros((8, 8), np.float32), 30.0)
    assert np.allclose(flat, math.sin(math.radians(45.0)), atol=1e-6)
    # Exaggeration steepens; multidirectional lighting stays in range.
    assert hillshade(faces_se, 30.0, z_factor=3.0)[16, 16] < dark[16, 16]
    multi = hillshade(faces_se, 30.0, multidirectional=True)
    assert multi.min() >= 0.0 and multi.max() <= 1.0


def test_tile_bounds_and_out_of_range() -> None:
    assert tile_bounds(0, 0, 0) == pytest.approx(
        (-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244)
    )
    minx, miny, maxx, maxy = tile_bounds(1, 1, 0)
    assert (minx, miny) == pytest.approx((0.0, 0.0))
    assert (maxx, maxy) == pytest.approx((20037508.342789244, 20037508.342789244))
    for z, x, y in [(23, 0, 0), (-1, 0, 0), (3, 8, 0), (3, 0, 8), (3, -1, 0), (0, 0, 1)]:
        with pytest.raises(TileOutOfRange):
            tile_bounds(z, x, y)
    assert issubclass(TileOutOfRange, ValueError)


@pytest.mark.parametrize("style", ["hillshade", "hypsometric", "shaded_relief"])
def test_tile_over_the_dem_is_a_varied_opaque_png(dem: Path, style: str) -> None:
    x, y = tile_containing(113.6, 36.6, 11)  # the eastern range
    png = render_tile(dem, 11, x, y, style=style)
    assert png[:8] == PNG_SIGNATURE
    img = _decode(png)
    assert img.shape == (4, 256, 256)
    assert (img[3] == 255).all()
    assert img[:3].std() > 2.0
    assert len(np.unique(img[0])) > 10


def test_tile_off_the_dem_is_transparent_and_shared(dem: Path) -> None:
    x, y = tile_containing(-30.0, 40.0, 10)  # mid-Atlantic
    png = render_tile(dem, 10, x, y)
    assert png[:8] == PNG_SIGNATURE
    img = _decode(png)
    assert img.shape == (4, 256, 256) and (img[3] == 0).all()
    assert render_tile(dem, 10, x + 1, y) is png
    with pytest.raises(TileOutOfRange):
        render_tile(dem, 23, 0, 0)
    with pytest.raises(TileOutOfRange):
        render_tile(dem, 4, 16, 0)
    with pytest.raises(ValueError):
        render_tile(dem, 10, x, y, style="sepia")  # type: ignore[arg-type]


def test_tile_at_the_dem_edge_is_partly_transparent(dem: Path) -> None:
    # The south-west corner: nodata cell and footprint edge.
    x, y = tile_containing(112.52, 35.62, 8)
    img = _decode(render_tile(dem, 8, x, y, style="hypsometric"))
    assert (img[3] == 0).any() and (img[3] == 255).any()
    assert set(np.unique(img[3])) <= {0, 255}


def test_adjacent_tiles_join_without_seams(dem: Path) -> None:
    x, y = tile_containing(113.2, 36.35, 11)
    left = _decode(render_tile(dem, 11, x, y, style="hillshade"))[0].astype(float)
    right = _decode(render_tile(dem, 11, x + 1, y, style="hillshade"))[0].astype(float)
    across = np.abs(left[:, -1] - right[:, 0]).mean()
    within = np.abs(np.diff(left[:, -40:], axis=1)).mean()
    assert across <= 2.0 * within + 1.0


def test_rendering_from_many_threads_is_consistent(dem: Path) -> None:
    x, y = tile_containing(113.2, 36.35, 12)
    jobs = [(12, x + dx, y + dy) for dx in range(-2, 3) for dy in range(-2, 3)]
    serial = [render_tile(dem, *j, style="shaded_relief") for j in jobs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda j: render_tile(dem, *j, style="shaded_relief"), jobs * 2))
    assert parallel == serial * 2


def test_tile_cache_writes_atomically_and_serves_repeats(dem: Path, tmp_path: Path) -> None:
    cache = ReliefTileStore(dem, tmp_path / "tiles")
    x, y = tile_containing(113.2, 36.35, 10)
    first = cache.get(10, x, y, "hypsometric")
    path = tmp_path / "tiles" / "hypsometric" / "10" / str(x) / f"{y}.png"
    assert path.read_bytes() == first
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]
    path.write_bytes(b"served from disk")
    assert cache.get(10, x, y, "hypsometric") == b"served from disk"
    far = cache.get(10, *tile_containing(-30.0, 40.0, 10))
    assert far[:8] == PNG_SIGNATURE
    assert not (tmp_path / "tiles" / "hillshade").exists()  # empty tiles are not stored
    with pytest.raises(TileOutOfRange):
        cache.get(5, 99, 0)
