"""OGC API – Tiles metadata: tile matrix sets, tilesets with their limits, TileJSON for every
tiled collection, and the console's MapLibre style, all pointing at this server."""

from __future__ import annotations

import mapbox_vector_tile
import pytest

from gis_core.tiles import tile_containing

pytestmark = pytest.mark.services

DOWNTOWN = (113.11, 36.19)


@pytest.fixture(scope="module")
def loaded(reference, api):
    return api


def test_tile_matrix_sets_follow_the_standard_table(loaded):
    listed = loaded.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [t["id"] for t in listed] == ["WebMercatorQuad"]
    tms = loaded.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["uri"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    assert tms["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    matrices = tms["tileMatrices"]
    assert len(matrices) == 23  # zooms 0..22
    # OGC 17-083r4 Annex D.1 (WebMercatorQuad): level 0 and level 18.
    assert matrices[0]["scaleDenominator"] == pytest.approx(559082264.0287178, rel=1e-12)
    assert matrices[0]["cellSize"] == pytest.approx(156543.0339280410, rel=1e-12)
    assert matrices[18]["scaleDenominator"] == pytest.approx(2132.729583849784, rel=1e-9)
    assert matrices[18]["matrixWidth"] == 262144
    assert matrices[0]["pointOfOrigin"] == pytest.approx([-20037508.3427892, 20037508.3427892])
    assert loaded.get("/tileMatrixSets/WorldCRS84Quad").status_code == 404


def test_tileset_metadata_and_its_limits(loaded):
    listing = loaded.get("/collections/roads/tiles").json()
    assert listing["tilesets"][0]["dataType"] == "vector"
    assert any(link["rel"] == "self" for link in listing["tilesets"][0]["links"])
    tileset = loaded.get("/collections/roads/tiles/WebMercatorQuad").json()
    assert tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    limits = {lim["tileMatrix"]: lim for lim in tileset["tileMatrixSetLimits"]}
    assert limits["0"] == {
        "tileMatrix": "0",
        "minTileRow": 0,
        "maxTileRow": 0,
        "minTileCol": 0,
        "maxTileCol": 0,
    }
    x, y = tile_containing(*DOWNTOWN, 12)
    twelve = limits["12"]
    assert twelve["minTileCol"] <= x <= twelve["maxTileCol"]
    assert twelve["minTileRow"] <= y <= twelve["maxTileRow"]
    # Tiles just outside the limits hold nothing.
    outside = loaded.get(
        f"/collections/roads/tiles/WebMercatorQuad/12/{twelve['maxTileRow'] + 1}/{x}"
    )
    assert outside.status_code == 200 and outside.content == b""
    template = next(link for link in tileset["links"] if link["rel"] == "item")["href"]
    url = template.format(tileMatrix=12, tileRow=y, tileCol=x)
    assert mapbox_vector_tile.decode(loaded.get(url).content)["roads"]["features"]
    assert loaded.get("/collections/roads/tiles/WorldCRS84Quad").status_code == 404
    assert loaded.get("/collections/parcels/tiles/WebMercatorQuad").status_code == 404


def test_every_visible_collection_has_tilejson_3(loaded, admin_headers):
    collections = loaded.get("/collections", headers=admin_headers).json()["collections"]
    assert len(collections) > 10
    for collection in collections:
        cid = collection["id"]
        doc = loaded.get(
            f"/collections/{cid}/tiles/WebMercatorQuad/tilejson.json", headers=admin_headers
        )
        assert doc.status_code == 200, (cid, doc.text)
        body = doc.json()
        assert body["tilejson"] == "3.0.0"
        assert body["vector_layers"][0]["id"] == cid
        assert body["tiles"][0].startswith("http://testserver/collections/")
        west, south, east, north = body["bounds"]
        assert west <= east and south <= north
    roads = loaded.get("/collections/roads/tiles/WebMercatorQuad/tilejson.json").json()
    assert roads["vector_layers"][0]["fields"]["speed_kmh"] == "Number"
    assert roads["vector_layers"][0]["fields"]["road_class"] == "String"
    x, y = tile_containing(*DOWNTOWN, 13)
    by_tilejson = loaded.get(roads["tiles"][0].format(z=13, x=x, y=y)).content
    by_ogc = loaded.get(f"/collections/roads/tiles/WebMercatorQuad/13/{y}/{x}").content
    assert by_tilejson == by_ogc and by_ogc
    hidden = loaded.get("/collections/alarms/tiles/WebMercatorQuad/tilejson.json")
    assert hidden.status_code == 404


def test_console_style_uses_local_urls_and_the_users_layers(loaded, admin_headers):
    public = loaded.get("/styles/console.json")
    assert public.status_code == 200
    style = public.json()
    assert style["version"] == 8
    urls = []
    for source in style["sources"].values():
        urls += source.get("tiles", []) + ([source["url"]] if "url" in source else [])
    assert urls and all(u.startswith("http://testserver/") for u in urls)
    assert style["sources"]["relief"]["type"] == "raster"
    layer_ids = set(style["metadata"]["changzhi:layers"])
    assert {"districts", "roads", "towns"} <= layer_ids and "alarms" not in layer_ids
    for drawn in style["layers"]:
        assert drawn.get("source", "relief") in style["sources"]
    # Centred on the city (its boundary's extent), whatever the city is.
    city = loaded.get("/collections/districts").json()["extent"]["spatial"]["bbox"][0]
    assert city[0] < style["center"][0] < city[2] and city[1] < style["center"][1] < city[3]
    admin = loaded.get("/styles/console.json", headers=admin_headers).json()
    assert "alarms" in admin["metadata"]["changzhi:layers"]
    # The relief source's tiles are served.
    tile_url = style["sources"]["relief"]["tiles"][0]
    x, y = tile_containing(*DOWNTOWN, 9)
    png = loaded.get(tile_url.format(z=9, x=x, y=y))
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert loaded.get("/styles/console.json", params={"relief": "satellite"}).status_code == 404
