"""Corner-coordinate lists: layouts, zones, refusals and the round trip."""

from __future__ import annotations

import pytest
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon

from apps.registry.corners import (
    CornerError,
    DepthRange,
    boundary_area_mu,
    parse_corners,
    read_boundary,
    write_boundary,
    write_corners,
    zone_epsg,
    zone_of_longitude,
)

# A 1 km square in zone 38 around Changzhi (northing 4,006–4,007 km, easting 420–421 km).
SQUARE = """1,4007000.00,38420000.00
2,4007000.00,38421000.00
3,4006000.00,38421000.00
4,4006000.00,38420000.00
*,1200,800,,,1
"""


def _square(n0: float, e0: float, side: float, prefix: str = "38", start: int = 1) -> str:
    pts = [(n0, e0), (n0, e0 + side), (n0 - side, e0 + side), (n0 - side, e0)]
    return "".join(
        f"{start + k},{n:.2f},{prefix}{e:09.2f}\n" if prefix else f"{start + k},{n:.2f},{e:.2f}\n"
        for k, (n, e) in enumerate(pts)
    )


@pytest.mark.parametrize(
    ("zone", "prefixed", "code"),
    [(25, True, 4513), (38, True, 4526), (45, True, 4533), (25, False, 4534), (38, False, 4547)],
)
def test_zone_epsg_matches_the_epsg_registry(zone: int, prefixed: bool, code: int) -> None:
    assert zone_epsg(zone, prefixed=prefixed) == code
    name = CRS(code).name
    assert (f"zone {zone}" in name) if prefixed else (f"CM {3 * zone}E" in name)


@pytest.mark.parametrize("zone", [24, 46])
def test_zones_outside_china_are_refused(zone: int) -> None:
    with pytest.raises(CornerError, match="outside China's zones"):
        zone_epsg(zone, prefixed=False)


def test_zone_of_longitude_rounds_to_nearest_central_meridian() -> None:
    assert zone_of_longitude(113.12) == 38
    assert zone_of_longitude(112.49) == 37  # 112.5 is the 37/38 edge
    assert zone_of_longitude(112.51) == 38


def test_mining_layout_square() -> None:
    b = read_boundary(SQUARE)
    assert (b.zone, b.prefixed, b.epsg, b.epsg_prefixed) == (38, True, 4547, 4526)
    assert isinstance(b.geometry_gk, Polygon)
    assert b.geometry_gk.area == pytest.approx(1e6, abs=1e-6)
    assert boundary_area_mu(b) == pytest.approx(1500.0)
    assert b.depth == DepthRange(1200.0, 800.0)
    assert [c.name for c in b.rings[0].corners] == ["1", "2", "3", "4"]
    assert b.rings[0].flag == "1"
    # Easting 420 km is 80 km west of CM 114°E: the WGS84 corner is about 113.1°E, 36.2°N.
    to_ll = Transformer.from_crs(4547, 4326, always_xy=True)
    lon, lat = to_ll.transform(420000.0, 4007000.0)
    assert b.geometry_wgs84.exterior.coords[0] == pytest.approx((lon, lat), abs=1e-9)
    assert 113.0 < lon < 113.2 and 36.1 < lat < 36.3
    assert b.warnings == ()


def test_easting_500km_is_on_the_central_meridian() -> None:
    b = read_boundary(_square(4007000.0, 500000.0, 100.0))
    assert b.geometry_wgs84.exterior.coords[0][0] == pytest.approx(114.0, abs=1e-9)


def test_plain_easting_needs_a_zone() -> None:
    text = _square(4007000.0, 420000.0, 1000.0, prefix="")
    with pytest.raises(CornerError, match="no zone prefix and no zone is known"):
        parse_corners(text)
    b = read_boundary(text, default_zone=38)
    assert (b.zone, b.prefixed, b.epsg) == (38, False, 4547)
    assert "taken as configured" in b.warnings[0]
    b2 = read_boundary(text, near=(113.1, 36.2))
    assert b2.zone == 38 and "inferred" in b2.warnings[0]
    assert b2.geometry_gk.equals(b.geometry_gk)
    b3 = read_boundary("带号=38\n" + text)
    assert b3.zone == 38 and b3.warnings == ()


def test_header_zone_must_agree_with_prefix() -> None:
    with pytest.raises(CornerError, match="prefixed with zone 38 but 带号=37"):
        parse_corners("带号=37\n" + SQUARE)


def test_mixed_prefix_refused() -> None:
    text = SQUARE.replace("38421000.00", "421000.00", 1)
    with pytest.raises(CornerError, match="some Y values carry a zone prefix"):
        parse_corners(text)


@pytest.mark.parametrize("prefix", ["38", ""])
def test_swapped_axes_fixed_or_refused(prefix: str) -> None:
    good = read_boundary(_square(4007000.0, 420000.0, 1000.0, prefix=prefix), default_zone=38)
    swapped = "".join(
        f"{n},{y},{x}\n"
        for n, x, y in (
            line.split(",") for line in _square(4007000.0, 420000.0, 1000.0, prefix).split()
        )
    )
    fixed = read_boundary(swapped, default_zone=38)
    assert fixed.geometry_gk.equals(good.geometry_gk)
    assert any("look exchanged" in w for w in fixed.warnings)
    with pytest.raises(CornerError, match="X must be the northing"):
        parse_corners(swapped, default_zone=38, on_swapped="refuse")


def test_self_intersecting_ring_refused() -> None:
    bowtie = "1,4007000,38420000\n2,4007000,38421000\n3,4006000,38420000\n4,4006000,38421000\n"
    with pytest.raises(CornerError, match="crosses itself"):
        parse_corners(bowtie)


def test_explicit_closing_corner() -> None:
    closed = SQUARE.replace("*,", "1,4007000.00,38420000.00\n*,")
    assert len(read_boundary(closed).rings[0].corners) == 4
    bad = SQUARE.replace("*,", "1,4007100.00,38420000.00\n*,")
    with pytest.raises(CornerError, match="cannot be closed"):
        parse_corners(bad)


def test_duplicate_corner_number_refused() -> None:
    text = SQUARE.replace("3,4006000.00", "2,4006000.00")
    with pytest.raises(CornerError, match="corner number 2 appears twice"):
        parse_corners(text)


def test_fewer_than_three_distinct_corners_refused() -> None:
    text = "1,4007000.00,38420000.00\n2,4007000.00,38421000.00\n3,4007000.001,38421000.00\n"
    with pytest.raises(CornerError, match="at least 3 distinct corners, got 2"):
        parse_corners(text)


def test_collinear_ring_refused() -> None:
    text = "1,4007000,38420000\n2,4007000,38421000\n3,4007000,38422000\n"
    with pytest.raises(CornerError, match=r"crosses itself|no area"):
        parse_corners(text)


def _easting_at(lon: float, lat: float = 36.2) -> float:
    return Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, lat)[0]


@pytest.mark.parametrize(("lon", "ok"), [(115.99, True), (116.0 - 1e-7, True), (116.01, False)])
def test_zone_range_limit(lon: float, ok: bool) -> None:
    """Default margin 0.5°: a corner may lie up to 2.0° from CM 114°E."""
    e = _easting_at(lon)
    north = Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, 36.2)[1]
    text = _square(north, e - 1000.0, 500.0)
    if ok:
        read_boundary(text)
    else:
        with pytest.raises(CornerError, match="outside zone 38's valid range"):
            parse_corners(text)


def test_northing_outside_china_refused() -> None:
    with pytest.raises(CornerError, match="valid range"):
        parse_corners(_square(9_000_000.0, 420000.0, 1000.0))


def test_foreign_datum_and_six_degree_refused() -> None:
    with pytest.raises(CornerError, match="not CGCS2000"):
        parse_corners("坐标系=1980西安坐标系\n" + SQUARE)
    with pytest.raises(CornerError, match="only 3-degree"):
        parse_corners("几度分带=6\n" + SQUARE)


def test_hole_and_parts() -> None:
    outer = _square(4007000.0, 420000.0, 1000.0)
    hole = _square(4006600.0, 420400.0, 200.0, start=5)
    far = _square(4003000.0, 420000.0, 500.0, start=9)
    text = outer + "*,1200,800,,,1\n" + hole + "*,1200,800,,,1\n" + far + "*,1100,900,,,2\n"
    b = read_boundary(text)
    assert isinstance(b.geometry_gk, MultiPolygon)
    assert b.geometry_gk.area == pytest.approx(1e6 - 4e4 + 25e4)
    assert len(b.geometry_gk.geoms[0].interiors) == 1
    assert b.depth == DepthRange(1200.0, 800.0)  # envelope of 1200–800 and 1100–900
    assert any("envelope" in w for w in b.warnings)


def test_overlapping_rings_refused() -> None:
    a = _square(4007000.0, 420000.0, 1000.0)
    b = _square(4006500.0, 420500.0, 1000.0, start=5)
    with pytest.raises(CornerError, match="ring 2 overlaps ring 1"):
        parse_corners(a + "\n" + b)


def test_depth_range_order() -> None:
    assert DepthRange(800.0, 800.0).top == 800.0
    with pytest.raises(CornerError, match="below the lower limit"):
        DepthRange(799.99, 800.0)
    with pytest.raises(CornerError, match="line 5: depth range"):
        parse_corners(SQUARE.replace("*,1200,800", "*,800,1200"))


LAND_FILE = """[属性描述]
格式版本号=1.00
坐标系=2000国家大地坐标系
几度分带=3
投影类型=高斯克吕格
计量单位=米
带号=38
精度=0.01
转换参数=,,,,,,
[地块坐标]
9,96.0000,140403001001JC00001,宅基地,面,,,0702,@
J1,1,4007000.00,420000.00
J2,1,4007000.00,421000.00
J3,1,4006000.00,421000.00
J4,1,4006000.00,420000.00
J1,1,4007000.00,420000.00
J5,2,4006600.00,420400.00
J6,2,4006600.00,420600.00
J7,2,4006400.00,420600.00
J5,2,4006600.00,420400.00
5,1.0000,140403001001JA00002,旱地,面,,,0103,@
J1,1,4005000.00,420000.00
J2,1,4005000.00,420100.00
J3,1,4004900.00,420100.00
J4,1,4004900.00,420000.00
J1,1,4005000.00,420000.00
"""


def test_land_exchange_file_with_ring_numbers_and_parcels() -> None:
    first, second = parse_corners(LAND_FILE)
    assert (first.code, first.name, second.name) == ("140403001001JC00001", "宅基地", "旱地")
    assert first.zone == 38 and not first.prefixed
    assert first.geometry_gk.area == pytest.approx(1e6 - 0.5 * 200 * 200)
    assert [len(r.corners) for r in first.rings] == [4, 3]
    assert second.geometry_gk.area == pytest.approx(1e4)
    assert first.depth is None


def test_registration_application_variant() -> None:
    text = (
        "矿区范围拐点坐标总数应小于1000个\n矿区范围拐点坐标与标高的总行数=5\n"
        + "".join(f"XY{k:03d}={line}\n" for k, line in enumerate(SQUARE.split()[:4], start=1))
        + "XY005=标高,1200,800,,1\n"
    )
    b = read_boundary(text)
    assert b.geometry_gk.area == pytest.approx(1e6)
    assert b.depth == DepthRange(1200.0, 800.0)


def test_plain_blank_separated_rings_with_header_line() -> None:
    text = (
        "点号 X坐标 Y坐标\n"
        + _square(4007000.0, 420000.0, 1000.0).replace(",", "\t")
        + "\n"
        + _square(4003000.0, 420000.0, 500.0, start=5).replace(",", " ")
    )
    b = read_boundary(text)
    assert isinstance(b.geometry_gk, MultiPolygon) and len(b.rings) == 2


def test_garbage_refused() -> None:
    with pytest.raises(CornerError, match="no corner lines"):
        parse_corners("hello\nworld\n")
    with pytest.raises(CornerError, match="not a corner line"):
        parse_corners("J1,1.5,4007000.00,38420000.00\n")


@pytest.mark.parametrize("layout", ["mining", "land"])
@pytest.mark.parametrize("prefixed", [True, False])
def test_round_trip(layout: str, prefixed: bool) -> None:
    outer = _square(4007000.0, 420000.0, 1000.0)
    hole = "5,4006600.00,38420400.00\n6,4006600.00,38420600.00\n7,4006400.00,38420600.00\n"
    far = _square(4003000.0, 420000.0, 500.0, start=8)
    text = "\n".join([outer + "*,1200,800,,,1", hole + "*,1200,800,,,1", far + "*,1200,800,,,2"])
    src = read_boundary(text)
    assert src.prefixed
    src = src if prefixed else read_boundary(text.replace(",38", ","), default_zone=38)
    out = write_boundary(src, layout=layout)  # type: ignore[arg-type]
    back = read_boundary(out)
    assert back.geometry_gk.equals_exact(src.geometry_gk, tolerance=0.005)
    assert back.prefixed == prefixed and back.zone == 38
    assert [[c.name for c in r.corners] for r in back.rings] == [
        [c.name for c in r.corners] for r in src.rings
    ]
    if layout == "mining":
        assert back.depth == src.depth
    # Writing the re-read boundary gives the same text.
    assert write_boundary(back, layout=layout) == out  # type: ignore[arg-type]


def test_writer_refusals() -> None:
    square = read_boundary(SQUARE).geometry_gk
    with pytest.raises(CornerError, match="needs a depth range"):
        write_corners(square, zone=38)
    with pytest.raises(CornerError, match="one corner number per vertex"):
        write_corners(square, zone=38, depth=DepthRange(1, 0), names=[["1", "2"]])
    with pytest.raises(CornerError, match="layout must be"):
        write_corners(square, zone=38, layout="dxf")  # type: ignore[arg-type]
