"""OGC API – Features (Part 1 core, Part 2 CRS) and OGC API – Tiles (vector) for the catalog."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from gis_core import features as core
from gis_core.errors import InvalidParameter, NotFound
from gis_core.tiles import TileService
from layers.catalog import Catalog, Layer, builtin_catalog
from layers.user_layers import user_layers
from web.deps import ConnDep, OptionalUser, SettingsDep

router = APIRouter(tags=["OGC API"])

GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
]


CATALOG_TTL_S = 10.0
_TILES_LOCK = threading.Lock()


def get_catalog(request: Request, conn: ConnDep) -> Catalog:
    """The built-in layers plus the layers users imported (re-read every few seconds, since
    an import may come from the command line of another process)."""
    state = request.app.state
    now = time.monotonic()
    if now - getattr(state, "catalog_at", 0.0) > CATALOG_TTL_S:
        catalog = builtin_catalog(state.apps.layers)
        for layer in user_layers(conn):
            if layer.id not in catalog:
                catalog.add(layer)
        state.catalog, state.catalog_at = catalog, now
    current: Catalog = state.catalog
    return current


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def get_tile_service(request: Request) -> TileService:
    """The app's tile cache and maintainer, made on first use (the pool is the app's)."""
    state = request.app.state
    service: TileService | None = getattr(state, "tiles", None)
    if service is None:
        with _TILES_LOCK:
            service = getattr(state, "tiles", None)
            if service is None:
                service = TileService(state.pool.connection)
                state.tiles = service
    return service


TileServiceDep = Annotated[TileService, Depends(get_tile_service)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(body: Any, media_type: str = "application/json", **headers: str) -> Response:
    return Response(orjson.dumps(body), media_type=media_type, headers=headers or None)


@router.get("/", include_in_schema=False)
def landing(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/console")
    base = _base(request)
    return _json(
        {
            "title": request.app.title,
            "description": request.app.description,
            "links": [
                {"href": f"{base}/", "rel": "self", "type": "application/json"},
                {
                    "href": f"{base}/openapi.json",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                },
                {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
                {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
                {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
                {
                    "href": f"{base}/console",
                    "rel": "alternate",
                    "type": "text/html",
                    "title": "command console",
                },
            ],
        }
    )


@router.get("/conformance")
def conformance() -> dict[str, list[str]]:
    return {"conformsTo": CONFORMANCE}


def describe(layer: Layer, base: str, extent: dict[str, Any] | None = None) -> dict[str, Any]:
    href = f"{base}/collections/{layer.id}"
    body: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title_zh,
        "description": layer.description or layer.title_en,
        "itemType": "feature",
        "crs": core.SUPPORTED_CRS,
        "storageCrs": core.OUTPUT_CRS[layer.srid].uri
        if layer.srid in core.OUTPUT_CRS
        else core.CRS84,
        "links": [
            {"href": href, "rel": "self", "type": "application/json"},
            {"href": f"{href}/items", "rel": "items", "type": GEOJSON},
            {
                "href": f"{href}/tiles",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                "type": "application/json",
            },
        ],
        # Platform extension: what the console needs to draw and label the layer.
        "x-changzhi": {
            "title_en": layer.title_en,
            "group": layer.group,
            "geometry_type": layer.geometry_type,
            "properties": list(layer.properties),
            "time_column": layer.time_column,
            "label": layer.label,
            "label_en": layer.label_en,
            "style": dict(layer.style),
            "min_zoom": layer.min_zoom,
            "restricted": bool(layer.roles),
        },
    }
    if extent is not None:
        body["extent"] = extent
    return body


@router.get("/collections")
def collections(request: Request, catalog: CatalogDep, user: OptionalUser) -> Response:
    base = _base(request)
    return _json(
        {
            "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
            "collections": [describe(layer, base) for layer in catalog.visible(user)],
        }
    )


@router.get("/collections/{collection_id}")
def collection(
    collection_id: str, request: Request, catalog: CatalogDep, user: OptionalUser, conn: ConnDep
) -> Response:
    layer = catalog.get(collection_id, user)
    return _json(describe(layer, _base(request), core.extent(conn, layer)))


@router.get("/collections/{collection_id}/items")
def items(
    collection_id: str,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
    settings: SettingsDep,
    tiles: TileServiceDep,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy (CRS84 by default)")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    datetime_: Annotated[str | None, Query(alias="datetime")] = None,
    limit: Annotated[int | None, Query(description="page size")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    crs: Annotated[str | None, Query(description="output CRS URI")] = None,
) -> Response:
    layer = catalog.get(collection_id, user)
    max_limit = settings.api.max_limit
    page_size = settings.api.default_limit if limit is None else limit
    if not 1 <= page_size <= max_limit:
        raise InvalidParameter(f"limit must be between 1 and {max_limit}")
    out = core.output_crs(crs)
    box = core.BBox.parse(bbox, bbox_crs) if bbox else None
    interval = core.Interval.parse(datetime_) if datetime_ else None
    page = core.features_page(
        conn, layer, limit=page_size, offset=offset, bbox=box, interval=interval, crs=out
    )
    if not page.tracked and not layer.time_column:
        # Once the table reports its changes, counts and page anchors last until it changes.
        tiles.schedule(layer, generalize_points=False)
    base = f"{_base(request)}/collections/{layer.id}/items"
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    query["limit"] = str(page_size)

    def link(rel: str, at: int) -> dict[str, str]:
        return {
            "href": f"{base}?{urlencode({**query, 'offset': str(at)})}",
            "rel": rel,
            "type": GEOJSON,
        }

    links = [link("self", offset)]
    if offset + page.number_returned < page.number_matched:
        links.append(link("next", offset + page_size))
    if offset > 0:
        links.append(link("prev", max(0, offset - page_size)))
    envelope = orjson.dumps(
        {
            "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "links": links,
        }
    )
    body = b'{"type":"FeatureCollection","features":' + page.features_json.encode() + b","
    body += envelope[1:]
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{out.uri}>"})


@router.get("/collections/{collection_id}/items/{feature_id}")
def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
    crs: Annotated[str | None, Query()] = None,
) -> Response:
    layer = catalog.get(collection_id, user)
    out = core.output_crs(crs)
    text = core.feature(conn, layer, feature_id, out)
    if text is None:
        raise NotFound(f"no feature {feature_id!r} in {collection_id!r}")
    found = orjson.loads(text)
    base = f"{_base(request)}/collections/{layer.id}"
    found["links"] = [
        {"href": f"{base}/items/{feature_id}", "rel": "self", "type": GEOJSON},
        {"href": base, "rel": "collection", "type": "application/json"},
    ]
    return _json(found, GEOJSON, **{"Content-Crs": f"<{out.uri}>"})


@router.get("/collections/{collection_id}/tiles")
def tilesets(
    collection_id: str, request: Request, catalog: CatalogDep, user: OptionalUser
) -> Response:
    layer = catalog.get(collection_id, user)
    base = f"{_base(request)}/collections/{layer.id}/tiles/WebMercatorQuad"
    return _json(
        {
            "tilesets": [
                {
                    "title": layer.title_zh,
                    "dataType": "vector",
                    "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                    "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
                    "links": [
                        {
                            "href": base + "/{tileMatrix}/{tileRow}/{tileCol}",
                            "rel": "item",
                            "type": MVT,
                            "templated": True,
                        },
                    ],
                }
            ]
        }
    )


@router.get(
    "/collections/{collection_id}/tiles/WebMercatorQuad/{tile_matrix}/{tile_row}/{tile_col}",
    responses={200: {"content": {MVT: {}}}},
)
def tile(
    collection_id: str,
    tile_matrix: int,
    tile_row: int,
    tile_col: int,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
    settings: SettingsDep,
    tiles: TileServiceDep,
) -> Response:
    layer = catalog.get(collection_id, user)
    # A client asking for no cached copy (Cache-Control: no-cache) gets a freshly made tile.
    fresh = "no-cache" in request.headers.get("cache-control", "").lower()
    data, how = tiles.tile(
        conn,
        layer,
        tile_matrix,
        tile_col,
        tile_row,
        max_features=settings.api.max_features_per_tile,
        use_cache=not fresh,
    )
    # Restricted layers must not sit in shared caches.
    cache = "private, max-age=30" if layer.roles else "public, max-age=300"
    if layer.time_column:
        cache = "no-store"
    return Response(data, media_type=MVT, headers={"Cache-Control": cache, "X-Tile-Cache": how})
