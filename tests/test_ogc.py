"""OGC API – Features and Tiles over the loaded reference dataset, and the offline base map."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import mapbox_vector_tile
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from gis_core import tiles
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


# --------------------------------------------------------------------------- dense points

DENSE_LAYER = "test_dense_points"


@pytest.fixture(scope="module")
def dense_points(loaded, db_url):
    """30,000 points, most in a tight cloud downtown: dense enough that low zooms thin."""
    with connect(db_url) as conn:
        conn.execute(
            f"""
            DROP TABLE IF EXISTS userdata.{DENSE_LAYER};
            DELETE FROM ref.user_layer WHERE id = '{DENSE_LAYER}';
            DELETE FROM tiles.point_layer WHERE layer_id = '{DENSE_LAYER}';
            CREATE TABLE userdata.{DENSE_LAYER} (
                id bigint PRIMARY KEY, name text, kind text, geom geometry(Point, 4326));
            SELECT setseed(0.5);
            INSERT INTO userdata.{DENSE_LAYER}
            SELECT i, 'p' || i, (ARRAY['a','b','c'])[1 + i % 3],
                   CASE WHEN i % 6 = 0
                        THEN ST_SetSRID(ST_MakePoint(112.9 + 0.5 * random(),
                                                     36.0 + 0.4 * random()), 4326)
                        ELSE ST_SetSRID(ST_MakePoint(
                            113.11 + 0.01 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()),
                            36.19 + 0.01 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())),
                            4326)
                   END
            FROM generate_series(1, 30000) AS i;
            CREATE INDEX ON userdata.{DENSE_LAYER} USING gist (geom);
            INSERT INTO ref.user_layer (id, table_name, title_zh, title_en, geometry_type,
                                        properties)
            VALUES ('{DENSE_LAYER}', 'userdata.{DENSE_LAYER}', '密集点', 'Dense points', 'Point',
                    ARRAY['name', 'kind']);
            """
        )
        conn.commit()
    loaded.app.state.catalog_at = 0.0  # see the new layer now, not in ten seconds
    yield DENSE_LAYER


def _tile_url(z: int, x: int, y: int, layer: str = DENSE_LAYER) -> str:
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def _decode(content: bytes, layer: str = DENSE_LAYER) -> list[dict]:
    decoded = mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})
    return decoded.get(layer, {"features": []})["features"]


def _points_by_tile(db_url: str, z: int) -> dict[tuple[int, int], int]:
    with connect(db_url) as conn:
        rows = conn.execute(f"SELECT ST_X(geom), ST_Y(geom) FROM userdata.{DENSE_LAYER}").fetchall()
    counts: dict[tuple[int, int], int] = {}
    for lon, lat in rows:
        key = tile_containing(lon, lat, z)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _generalized(db_url: str) -> tuple[int, int] | None:
    """(cut-off, key) once the generalization matches the table's current version."""
    with connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT g.cutoff, g.key FROM tiles.point_layer g
            JOIN tiles.layer_version v ON v.relid = g.relid AND v.version = g.version
            WHERE g.layer_id = %s AND g.relid = %s::regclass
            """,
            (DENSE_LAYER, f"userdata.{DENSE_LAYER}"),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def _wait_generalized(loaded, db_url: str, timeout: float = 60.0) -> tuple[int, int]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Asking for a tile is what makes the server notice and rebuild.
        loaded.get(_tile_url(8, *tile_containing(*DOWNTOWN, 8)))
        found = _generalized(db_url)
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("the dense layer was not generalized in time")


def _check_thinned(features: list[dict]) -> int:
    """At most one feature per cell, all inside the tile; returns the sum of point_count."""
    cells = set()
    for f in features:
        x, y = f["geometry"]["coordinates"]
        assert 0 <= x < 4096 and 0 <= y < 4096, (x, y)
        cell = (int(x) // tiles.CELL, int(y) // tiles.CELL)
        assert cell not in cells, f"two features in cell {cell}"
        cells.add(cell)
        assert f["properties"]["point_count"] >= 1
    return sum(f["properties"]["point_count"] for f in features)


def test_dense_points_thin_to_one_feature_per_cell_and_counts_add_up(dense_points, loaded, db_url):
    cutoff, key = _wait_generalized(loaded, db_url)
    # The cut-off comes from the data: the first zoom at which no tile holds more points
    # than it has cells. Recount it independently.
    for z in range(cutoff - 1, cutoff + 1):
        busiest = max(_points_by_tile(db_url, z).values())
        assert (busiest > tiles.DENSE_TILE) == (z < cutoff), (z, busiest)
    with connect(db_url) as conn:
        stored = {
            (z, x, y)
            for z, x, y in conn.execute(
                "SELECT z, tx, ty FROM tiles.point_tile WHERE layer_key = %s", (key,)
            ).fetchall()
        }
    assert stored, "some tiles are dense"
    checked_stored = checked_snapped = 0
    for z in range(max(0, cutoff - 4), cutoff):
        by_tile = _points_by_tile(db_url, z)
        cx, cy = tile_containing(*DOWNTOWN, z)
        near = [(cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        for x, y in near:
            points = by_tile.get((x, y), 0)
            response = loaded.get(_tile_url(z, x, y))
            assert response.status_code == 200
            features = _decode(response.content)
            assert _check_thinned(features) == points, (z, x, y)
            assert len(features) <= tiles.DENSE_TILE
            if (z, x, y) in stored:
                checked_stored += 1
                assert len(features) < points
            else:
                checked_snapped += 1
    assert checked_stored and checked_snapped  # both ways of thinning were compared
    # From the cut-off on, every point is its own feature.
    x, y = tile_containing(*DOWNTOWN, cutoff)
    features = [
        f
        for f in _decode(loaded.get(_tile_url(cutoff, x, y)).content)
        if all(0 <= c < 4096 for c in f["geometry"]["coordinates"])
    ]
    assert len(features) == _points_by_tile(db_url, cutoff)[(x, y)]
    assert {f["properties"]["point_count"] for f in features} == {1}
    assert {"name", "kind"} <= set(features[0]["properties"])


def test_stored_cells_equal_cells_snapped_from_the_rows(dense_points, loaded, db_url):
    _, key = _wait_generalized(loaded, db_url)
    layer = loaded.app.state.catalog.get(DENSE_LAYER)
    with connect(db_url) as conn:
        dense = conn.execute(
            "SELECT z, tx, ty FROM tiles.point_tile WHERE layer_key = %s ORDER BY z DESC LIMIT 3",
            (key,),
        ).fetchall()
        assert dense
        for z, x, y in dense:
            stored = _decode(tiles._stored_cells_tile(conn, layer, z, x, y, key))
            snapped = _decode(tiles._snapped_points_tile(conn, layer, z, x, y, 20000))

            def summary(features):
                return sorted(
                    (
                        f["id"],
                        tuple(f["geometry"]["coordinates"]),
                        f["properties"]["point_count"],
                        f["properties"]["name"],
                    )
                    for f in features
                )

            assert summary(stored) == summary(snapped)


def test_writes_invalidate_cached_tiles_and_the_generalization(dense_points, loaded, db_url):
    cutoff, _ = _wait_generalized(loaded, db_url)
    z = max(0, cutoff - 1)
    x, y = tile_containing(*DOWNTOWN, z)
    url = _tile_url(z, x, y)
    first = loaded.get(url)
    again = loaded.get(url)
    assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
    assert loaded.get(url, headers={"Cache-Control": "no-cache"}).headers["x-tile-cache"] in (
        "bypass",
    )
    before = _check_thinned(_decode(first.content))
    with connect(db_url) as conn:
        conn.execute(
            f"INSERT INTO userdata.{DENSE_LAYER} VALUES"
            " (999999, 'new', 'a', ST_SetSRID(ST_MakePoint(113.1101, 36.1901), 4326))"
        )
        conn.commit()
    try:
        # At once, from the rows: never the cached tile nor the stale cells.
        after = loaded.get(url)
        assert after.headers["x-tile-cache"] in ("miss", "uncached")
        assert _check_thinned(_decode(after.content)) == before + 1
        _wait_generalized(loaded, db_url)
        rebuilt = loaded.get(url)
        assert _check_thinned(_decode(rebuilt.content)) == before + 1
    finally:
        with connect(db_url) as conn:
            conn.execute(f"DELETE FROM userdata.{DENSE_LAYER} WHERE id = 999999")
            conn.commit()
    assert _check_thinned(_decode(loaded.get(url).content)) == before


def test_polygon_tiles_stay_capped(loaded, db_url):
    layer = loaded.app.state.catalog.get("population")
    x, y = tile_containing(*DOWNTOWN, 9)
    with connect(db_url) as conn:
        full = _decode(tiles.vector_tile(conn, layer, 9, x, y, max_features=20000), "population")
        capped = _decode(tiles.vector_tile(conn, layer, 9, x, y, max_features=5), "population")
    assert len(full) > 5 and len(capped) == 5


def test_deep_pages_follow_writes(dense_points, loaded, db_url):
    """Deep pages start from remembered keys and numberMatched is remembered, both only as
    long as the table has not changed."""
    import time

    url = f"/collections/{DENSE_LAYER}/items"

    def expected(offset: int) -> list[int]:
        with connect(db_url) as conn:
            rows = conn.execute(
                f"SELECT id FROM userdata.{DENSE_LAYER} ORDER BY id LIMIT 100 OFFSET %s",
                (offset,),
            ).fetchall()
        return [r[0] for r in rows]

    deadline = time.monotonic() + 30
    while True:  # the first pages make the server track the table
        page = loaded.get(url, params={"limit": 100, "offset": 12_345}).json()
        with connect(db_url) as conn:
            tracked = conn.execute(
                "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass"
                " AND tgname = 'changzhi_layer_changed'",
                (f"userdata.{DENSE_LAYER}",),
            ).fetchone()
        if tracked or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert tracked
    for offset in (12_345, 12_345, 29_950, 5_000, 0):
        page = loaded.get(url, params={"limit": 100, "offset": offset}).json()
        assert [f["id"] for f in page["features"]] == expected(offset)
        assert page["numberMatched"] == 30_000
    with connect(db_url) as conn:
        conn.execute(
            f"INSERT INTO userdata.{DENSE_LAYER} VALUES"
            " (0, 'first', 'a', ST_SetSRID(ST_MakePoint(113.2, 36.3), 4326))"
        )
        conn.commit()
    try:
        page = loaded.get(url, params={"limit": 100, "offset": 12_345}).json()
        assert [f["id"] for f in page["features"]] == expected(12_345)
        assert page["numberMatched"] == 30_001
        feature = page["features"][0]
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        assert set(feature["properties"]) == {"name", "kind"}
    finally:
        with connect(db_url) as conn:
            conn.execute(f"DELETE FROM userdata.{DENSE_LAYER} WHERE id = 0")
            conn.commit()
    page = loaded.get(url, params={"limit": 100, "offset": 29_950}).json()
    assert [f["id"] for f in page["features"]] == expected(29_950)
    assert page["numberMatched"] == 30_000
