"""Pure tests for gis_core.crs (no database)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer

from gis_core import crs
from gis_core.crs import (
    UnknownCRSError,
    gcj02_to_wgs84,
    parse_crs,
    transform,
    transform_geometry,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")
# Changzhi with a margin: the brief's 112.7–113.9E, 35.8–37.1N, widened west to 111.9E because
# the real outline (沁源县) reaches 111.98E.
LON, LAT = np.meshgrid(np.linspace(111.9, 114.0, 211), np.linspace(35.7, 37.2, 151))
DOWNTOWN = (113.1164, 36.1954)


def _dist_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def test_gcj_round_trip_dense_grid_changzhi() -> None:
    glon, glat = wgs84_to_gcj02(LON, LAT)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    err = _dist_m(LON.ravel(), LAT.ravel(), np.ravel(wlon), np.ravel(wlat))
    assert err.max() < 0.01  # well inside the 0.5 m requirement


def test_gcj_inverse_of_gcj_input_round_trip() -> None:
    # Start from GCJ coordinates (as in web-map data) and come back.
    wlon, wlat = gcj02_to_wgs84(LON, LAT)
    glon, glat = wgs84_to_gcj02(wlon, wlat)
    assert _dist_m(LON.ravel(), LAT.ravel(), np.ravel(glon), np.ravel(glat)).max() < 0.01


def test_gcj_offset_magnitude_downtown() -> None:
    glon, glat = wgs84_to_gcj02(*DOWNTOWN)
    assert isinstance(glon, float) and isinstance(glat, float)
    d = float(_dist_m(DOWNTOWN[0], DOWNTOWN[1], glon, glat))
    assert 200.0 < d < 1000.0
    assert glon > DOWNTOWN[0]  # GCJ shifts eastwards in Shanxi


def test_gcj_offset_everywhere_in_changzhi_is_hundreds_of_metres() -> None:
    glon, glat = wgs84_to_gcj02(LON, LAT)
    d = _dist_m(LON.ravel(), LAT.ravel(), np.ravel(glon), np.ravel(glat))
    assert d.min() > 100.0 and d.max() < 1500.0


@pytest.mark.parametrize("pt", [(2.35, 48.85), (-74.0, 40.7), (139.7, 35.7), (100.0, 0.5)])
def test_out_of_china_unchanged(pt: tuple[float, float]) -> None:
    assert wgs84_to_gcj02(*pt) == pt
    assert gcj02_to_wgs84(*pt) == pt


def test_mixed_array_out_of_china() -> None:
    lon = np.array([113.1, 2.35])
    lat = np.array([36.2, 48.85])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon[0] != lon[0] and glon[1] == lon[1] and glat[1] == lat[1]


def test_4326_to_4547_matches_pyproj() -> None:
    ref = Transformer.from_crs(4326, 4547, always_xy=True)
    ex, ey = ref.transform(LON, LAT)
    x, y = transform(LON, LAT, "EPSG:4326", 4547)
    np.testing.assert_allclose(x, ex, atol=1e-6)
    np.testing.assert_allclose(y, ey, atol=1e-6)
    # CM 114E with 500 km false easting: Changzhi lies west of the meridian.
    assert float(np.min(x)) > 300_000
    assert float(np.max(x)) <= 500_000


def test_transform_scalars_and_round_trip_4547() -> None:
    x, y = transform(*DOWNTOWN, "WGS84", "EPSG:4547")
    assert isinstance(x, float)
    lon, lat = transform(x, y, 4547, "CRS84")
    assert _dist_m(DOWNTOWN[0], DOWNTOWN[1], lon, lat) < 1e-3


def test_transform_via_gcj() -> None:
    x, y = transform(*DOWNTOWN, "GCJ02", 3857)
    wlon, wlat = gcj02_to_wgs84(*DOWNTOWN)
    ex, ey = Transformer.from_crs(4326, 3857, always_xy=True).transform(wlon, wlat)
    assert abs(x - ex) < 1e-6 and abs(y - ey) < 1e-6
    lon, lat = transform(x, y, 3857, "GCJ-02")
    assert _dist_m(DOWNTOWN[0], DOWNTOWN[1], lon, lat) < 0.01


def test_cgcs2000_close_to_wgs84() -> None:
    lon, lat = transform(*DOWNTOWN, 4326, "CGCS2000")
    assert _dist_m(DOWNTOWN[0], DOWNTOWN[1], lon, lat) < 0.1


def test_transform_geometry() -> None:
    poly = shapely.box(113.0, 36.1, 113.2, 36.3)
    g = transform_geometry(poly, "WGS84", "GCJ02")
    back = transform_geometry(g, "GCJ02", "WGS84")
    assert g.geom_type == "Polygon"
    assert not g.equals_exact(poly, 1e-4)
    assert back.equals_exact(poly, 1e-9)
    m = transform_geometry(poly, 4326, 4547)
    assert 350e6 < m.area < 450e6  # ~0.2 x 0.2 degrees at 36N
    assert transform_geometry(poly, 4326, "EPSG:4326") is poly


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4326, 4326),
        ("4326", 4326),
        ("EPSG:4326", 4326),
        ("epsg:4547", 4547),
        (" EPSG:3857 ", 3857),
        ("urn:ogc:def:crs:EPSG::4490", 4490),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", 4490),
        ("https://www.opengis.net/def/crs/EPSG/0/4547", 4547),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326),
        ("OGC:CRS84", 4326),
        ("WGS84", 4326),
        ("wgs-84", 4326),
        ("CGCS2000", 4490),
        ("GCJ02", "GCJ02"),
        ("GCJ-02", "GCJ02"),
        ("gcj02", "GCJ02"),
        (np.int64(4490), 4490),
    ],
)
def test_parse_crs_accepts(value: object, expected: object) -> None:
    assert parse_crs(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "EPSG:",
        "EPSG:abc",
        "BD09",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS83",
        "NAD27x",
        -1,
        0,
        4326.0,
        None,
        True,
    ],
)
def test_parse_crs_rejects(value: object) -> None:
    with pytest.raises(UnknownCRSError):
        parse_crs(value)  # type: ignore[arg-type]
    assert issubclass(UnknownCRSError, ValueError)


def test_transformer_cache() -> None:
    assert crs.get_transformer(4326, 4547) is crs.get_transformer(4326, 4547)
