"""OGC API – Features Part 3 (queryables, CQL2 filters in text and JSON) and sorting, against
the reference dataset: counts from the 2020 census table the districts carry, spatial answers
checked against where the towns say they are."""

from __future__ import annotations

import json

import pytest
from pyproj import Transformer

from gis_core.db import connect

pytestmark = pytest.mark.services

# 2020 census (Seventh National Population Census), as DATA.md lists it.
CENSUS = {
    "潞州区": 895_280,
    "上党区": 319_660,
    "屯留区": 253_756,
    "潞城区": 219_256,
    "襄垣县": 260_081,
    "平顺县": 115_927,
    "黎城县": 134_186,
    "壶关县": 240_109,
    "长子县": 298_690,
    "武乡县": 155_386,
    "沁县": 138_578,
    "沁源县": 149_975,
}


@pytest.fixture(scope="module")
def loaded(reference, api):
    return api


def _names(api, collection: str, **params) -> list[str]:
    response = api.get(f"/collections/{collection}/items", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numberMatched"] == body["numberReturned"]
    return [f["properties"]["name_zh"] for f in body["features"]]


def test_conformance_and_landing_say_what_is_served(loaded):
    classes = set(loaded.get("/conformance").json()["conformsTo"])
    for needed in (
        "ogcapi-features-3/1.0/conf/queryables",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/features-filter",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "ogcapi-features-8/1.0/conf/sorting",
        "ogcapi-tiles-1/1.0/conf/tileset",
    ):
        assert f"http://www.opengis.net/spec/{needed}" in classes
    served = loaded.get("/openapi.json").json()["openapi"]
    assert served.startswith("3.1")
    # No claim of OpenAPI 3.0 while 3.1 is served, nor of every temporal function.
    assert not any(c.endswith(("/oas30", "/temporal-functions")) for c in classes)
    landing = loaded.get("/", headers={"Accept": "application/json"}).json()
    desc = [link for link in landing["links"] if link["rel"] == "service-desc"]
    assert desc[0]["type"] == "application/vnd.oai.openapi+json;version=3.1"


def test_queryables_are_a_json_schema_typed_from_the_table(loaded, admin_headers):
    response = loaded.get("/collections/districts/queryables")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    body = response.json()
    assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert body["$id"].endswith("/collections/districts/queryables")
    props = body["properties"]
    assert props["population_2020"]["type"] == "integer"
    assert props["area_km2"]["type"] == "number"
    assert props["name_zh"]["type"] == "string"
    assert props["geometry"]["format"] == "geometry-multipolygon"
    plain = loaded.get("/collections/districts/queryables", headers={"Accept": "application/json"})
    assert plain.headers["content-type"].startswith("application/json")
    alarms = loaded.get("/collections/alarms/queryables", headers=admin_headers).json()
    assert alarms["properties"]["raised_at"] == {
        "title": "raised_at",
        "type": "string",
        "format": "date-time",
        "x-ogc-role": "primary-instant",
    }
    # A restricted collection's queryables are as hidden as the collection.
    assert loaded.get("/collections/alarms/queryables").status_code == 404
    links = {link["rel"] for link in loaded.get("/collections/districts").json()["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/queryables" in links


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("population_2020 > 300000", {"潞州区", "上党区"}),
        # At and just above a value that is in the table.
        ("population_2020 >= 319660", {"潞州区", "上党区"}),
        ("population_2020 > 319660", {"潞州区"}),
        ("population_2020 BETWEEN 134186 AND 149975", {"黎城县", "沁县", "沁源县"}),
        ("name_zh LIKE '%区'", {"潞州区", "上党区", "屯留区", "潞城区"}),
        ("code IN ('140403', '140431') AND NOT population_2020 < 200000", {"潞州区"}),
        ("CASEI(name_en) LIKE 'lu%'", None),  # checked against the table below
        ("population_2020 IS NULL", set()),
    ],
)
def test_cql2_text_filters_match_the_census(loaded, db_url, text, expected):
    got = _names(loaded, "districts", filter=text)
    if expected is None:
        with connect(db_url) as conn:
            rows = conn.execute(
                "SELECT name_zh FROM ref.admin_area WHERE level = 'district'"
                " AND lower(name_en) LIKE 'lu%'"
            ).fetchall()
        expected = {r[0] for r in rows}
        assert expected  # Luzhou, Lucheng
    assert set(got) == expected
    assert len(got) == len(expected)


def test_cql2_json_gives_what_the_text_gives(loaded):
    tree = {
        "op": "and",
        "args": [
            {"op": ">", "args": [{"property": "population_2020"}, 250000]},
            {"op": "like", "args": [{"property": "name_zh"}, "%县"]},
        ],
    }
    got = _names(loaded, "districts", filter=json.dumps(tree), **{"filter-lang": "cql2-json"})
    text = _names(loaded, "districts", filter="population_2020 > 250000 AND name_zh LIKE '%县'")
    assert set(got) == set(text) == {"襄垣县", "长子县"}


def test_sortby_orders_pages_and_refuses_unknown_properties(loaded):
    descending = _names(loaded, "districts", sortby="-population_2020")
    assert descending == sorted(CENSUS, key=CENSUS.__getitem__, reverse=True)
    first_two = loaded.get(
        "/collections/districts/items", params={"sortby": "+population_2020", "limit": 2}
    ).json()
    assert [f["properties"]["name_zh"] for f in first_two["features"]] == ["平顺县", "黎城县"]
    assert first_two["numberMatched"] == 12
    nxt = next(link["href"] for link in first_two["links"] if link["rel"] == "next")
    second = loaded.get(nxt).json()
    assert [f["properties"]["name_zh"] for f in second["features"]] == ["沁县", "沁源县"]
    bad = loaded.get("/collections/districts/items", params={"sortby": "-nonsense"})
    assert bad.status_code == 400 and "'nonsense'" in bad.json()["detail"]


def test_spatial_filters_in_wgs84_cgcs2000_and_gauss_kruger(loaded):
    town = loaded.get("/collections/towns/items", params={"filter": "name_zh = '长治'"}).json()
    assert town["numberMatched"] == 1
    seat = town["features"][0]
    lon, lat = seat["geometry"]["coordinates"]
    district = seat["properties"]["district_code"]

    def codes(**params) -> list[str]:
        body = loaded.get("/collections/districts/items", params=params).json()
        return [f["id"] for f in body["features"]]

    assert codes(filter=f"S_INTERSECTS(geometry, POINT({lon} {lat}))") == [district]
    # EPSG:4490 and EPSG:4326 are latitude first.
    assert codes(
        filter=f"S_INTERSECTS(geometry, POINT({lat} {lon}))",
        **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4490"},
    ) == [district]
    x, y = Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, lat)
    assert codes(
        filter=f"S_INTERSECTS(geometry, POINT({y} {x}))",  # northing first
        **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4547"},
    ) == [district]
    # BBOX in a filter finds what the bbox parameter finds.
    box = "113.0,36.1,113.2,36.3"
    by_param = loaded.get("/collections/towns/items", params={"bbox": box}).json()
    by_filter = loaded.get(
        "/collections/towns/items", params={"filter": f"S_INTERSECTS(geometry, BBOX({box}))"}
    ).json()
    assert {f["id"] for f in by_filter["features"]} == {f["id"] for f in by_param["features"]}
    assert by_filter["numberMatched"] >= 1
    # Disjoint is the rest.
    rest = loaded.get(
        "/collections/towns/items",
        params={"filter": f"S_DISJOINT(geometry, BBOX({box}))", "limit": 1000},
    ).json()
    everything = loaded.get("/collections/towns/items", params={"limit": 1000}).json()
    assert rest["numberMatched"] + by_param["numberMatched"] == everything["numberMatched"]


def test_temporal_filters_on_alarm_times(loaded, db_url, admin_headers):
    with connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO iot.alarm (kind, rule, severity, message_zh, message_en, raised_at, geom)
            VALUES ('air', 'cqltest.old', 2, '旧', 'old', '2021-01-01T00:00:00+08', NULL),
                   ('air', 'cqltest.new', 2, '新', 'new', '2021-06-01T00:00:00+08',
                    ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))
            """
        )
        conn.commit()

    def rules(condition: str) -> list[str]:
        response = loaded.get(
            "/collections/alarms/items",
            params={"filter": f"rule LIKE 'cqltest.%' AND {condition}", "sortby": "raised_at"},
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text
        return [f["properties"]["rule"] for f in response.json()["features"]]

    try:
        assert rules("T_AFTER(raised_at, TIMESTAMP('2021-03-01T00:00:00Z'))") == ["cqltest.new"]
        assert rules("T_BEFORE(raised_at, TIMESTAMP('2021-03-01T00:00:00Z'))") == ["cqltest.old"]
        # 2021-01-01T00:00+08 is 2020-12-31T16:00Z: in that UTC day, not the next.
        assert rules("T_INTERSECTS(raised_at, DATE('2020-12-31'))") == ["cqltest.old"]
        assert rules("T_INTERSECTS(raised_at, DATE('2021-01-01'))") == []
        assert rules("T_EQUALS(raised_at, TIMESTAMP('2020-12-31T16:00:00Z'))") == ["cqltest.old"]
        assert rules("T_DURING(raised_at, INTERVAL('2020-12-31T16:00:00Z', '..'))") == [
            "cqltest.new"
        ]  # during is strictly inside: the old one sits on the start
        assert rules("T_INTERSECTS(raised_at, INTERVAL('2020-12-31T16:00:00Z', '..'))") == [
            "cqltest.old",
            "cqltest.new",
        ]
        assert rules("raised_at < '2021-03-01T00:00:00Z'") == ["cqltest.old"]
    finally:
        with connect(db_url) as conn:
            conn.execute("DELETE FROM iot.alarm WHERE rule LIKE 'cqltest.%'")
            conn.commit()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"filter": "nonsense = 1"}, "'nonsense' is not a queryable"),
        ({"filter": "name_zh = "}, "does not parse as cql2-text"),
        ({"filter": "name_zh = 'x' AND"}, "does not parse"),
        ({"filter": '{"op": "=", "args": [1]}', "filter-lang": "cql2-json"}, "does not parse"),
        ({"filter": "{not json", "filter-lang": "cql2-json"}, "does not parse as cql2-json"),
        ({"filter": "name_zh = 'x'", "filter-lang": "sql"}, "filter-lang must be one of"),
        ({"filter": "name_zh > 5"}, "name_zh"),
        ({"filter": "population_2020 LIKE '3%'"}, "LIKE compares text"),
        ({"filter": "S_INTERSECTS(name_zh, POINT(1 2))"}, "not a geometry"),
        ({"filter": "T_AFTER(name_zh, TIMESTAMP('2021-01-01T00:00:00Z'))"}, "not a time"),
        ({"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0)))"}, "filter"),
        ({"filter": "name_zh = 'x'", "filter-crs": "EPSG:999999"}, "not offered"),
        ({"filter": "population_2020 = 1e999"}, "filter"),
        ({"filter": ""}, "filter is empty"),
        ({"sortby": "+geometry"}, "not a sortable property"),
        ({"sortby": ","}, "empty property name"),
        (
            {"filter": "T_MEETS(population_2020, INTERVAL('2021-01-01', '2021-02-01'))"},
            "is not supported",
        ),
    ],
)
def test_bad_filters_are_clear_400s(loaded, params, needle):
    response = loaded.get("/collections/districts/items", params=params)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"], response.json()


def test_filter_values_are_bound_never_spliced(loaded, db_url):
    hostile = "x'; DELETE FROM ref.admin_area; --"
    got = loaded.get("/collections/districts/items", params={"filter": f"name_zh = '{hostile}'"})
    # The quote closes the CQL2 string early, so this does not parse; doubled, it is a value.
    assert got.status_code == 400
    doubled = hostile.replace("'", "''")
    got = loaded.get("/collections/districts/items", params={"filter": f"name_zh = '{doubled}'"})
    assert got.status_code == 200 and got.json()["numberMatched"] == 0
    with connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ref.admin_area WHERE level = 'district'")
        assert row.fetchone()[0] == 12


def test_hostile_filters_never_make_a_server_error(loaded, admin_headers):
    from tests.test_api_hostile import HOSTILE

    odd = [
        *HOSTILE,
        "S_INTERSECTS(geometry, POINT(1e308 1e308))",
        "S_INTERSECTS(geometry, BBOX(-1e308, -1e308, 1e308, 1e308))",
        "T_AFTER(raised_at, TIMESTAMP('0001-01-01T00:00:00Z'))",
        "T_DURING(raised_at, INTERVAL('2021-01-01T00:00:00Z', '2020-01-01T00:00:00Z'))",
        "name_zh = 'a\x00b'",
        "population_2020 > 99999999999999999999",
        "population_2020 = population_2020",
        "S_WITHIN(geometry, geometry)",
        '{"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [1, 2]}]}',
        '{"op": "t_after", "args": [{"property": "raised_at"}, {"interval": []}]}',
        '{"op": "in", "args": [{"property": "kind"}, []]}',
        '{"op": "like", "args": [{"property": "rule"}, 5]}',
        '{"op": "and", "args": [true, {"op": "isNull", "args": [5]}]}',
        '{"op": "casei", "args": [{"property": "rule"}]}',
    ]
    failures = []
    for text in odd:
        for lang in ("cql2-text", "cql2-json"):
            for collection in ("districts", "alarms"):
                response = loaded.get(
                    f"/collections/{collection}/items",
                    params={"filter": text, "filter-lang": lang},
                    headers=admin_headers,
                )
                if response.status_code >= 500:
                    failures.append((collection, lang, text[:40], response.text[:100]))
    assert not failures, failures
