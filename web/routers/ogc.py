"""OGC API – Features (Part 1 core, Part 2 CRS, Part 3 filtering with CQL2, sorting) and OGC API
– Tiles (vector tiles, tileset metadata, tile matrix sets, TileJSON) for the catalog, and the
MapLibre style of the console's map."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
import psycopg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from gis_core import features as core
from gis_core import queryables as q
from gis_core import tilematrix
from gis_core.errors import InvalidParameter, NotFound
from gis_core.tiles import TileService
from layers.catalog import Catalog, Layer, builtin_catalog
from layers.user_layers import user_layers
from web.deps import ConnDep, OptionalUser, SettingsDep
from web.routers.basemap import console_style
from web.routers.ogc_models import (
    Conformance,
    GeoJsonFeature,
    GeoJsonFeatureCollection,
    MapLibreStyle,
    OgcCollection,
    OgcCollections,
    Queryables,
    TileJson,
    TileMatrixSet,
    TileMatrixSets,
    TileSet,
    TileSets,
)

router = APIRouter(tags=["OGC API"])

GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
SCHEMA_JSON = "application/schema+json"
TILEJSON = "application/json"
MAPLIBRE_STYLE = "application/vnd.mapbox.style+json"


# The routes write their documents themselves (byte for byte what clients had) and return
# them as a Response, which FastAPI passes on untouched; these classes only name the media
# type each answers with, so OpenAPI shows the model's schema under it (FastAPI shows a
# schema only for JSONResponse classes).
class GeoJsonResponse(JSONResponse):
    media_type = GEOJSON


class SchemaJsonResponse(JSONResponse):
    media_type = SCHEMA_JSON


class StyleResponse(JSONResponse):
    media_type = MAPLIBRE_STYLE


# What is really served. Not oas30: FastAPI writes OpenAPI 3.1, which OGC API – Features 1.0
# has no conformance class for (the landing page's service-desc says 3.1).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    # Not temporal-functions: of its T_* predicates only those that mean something for an
    # instant (the layers' times) are read: T_AFTER, T_BEFORE, T_DISJOINT, T_DURING,
    # T_EQUALS, T_INTERSECTS; the others (T_MEETS, T_OVERLAPS, ...) are refused with a 400.
    "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]
# The OGC APIs name the collection `collectionId` in their OpenAPI paths; GDAL looks for
# /collections/{collectionId}/items there to learn which filter languages the server reads.
CollectionId = Annotated[str, Path(alias="collectionId")]


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


def _ref(model: type[Any]) -> dict[str, str]:
    """A reference to a model's schema among the OpenAPI components (the route's own
    response_model puts it there)."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(body: Any, media_type: str = "application/json", **headers: str) -> Response:
    return Response(orjson.dumps(body), media_type=media_type, headers=headers or None)


@router.get("/", include_in_schema=False)
def landing(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/console")
    base = _base(request)
    openapi_version = ".".join(str(request.app.openapi()["openapi"]).split(".")[:2])
    return _json(
        {
            "title": request.app.title,
            "description": request.app.description,
            "links": [
                {"href": f"{base}/", "rel": "self", "type": "application/json"},
                {
                    "href": f"{base}/openapi.json",
                    "rel": "service-desc",
                    "type": f"application/vnd.oai.openapi+json;version={openapi_version}",
                },
                {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
                {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
                {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
                {
                    "href": f"{base}/tileMatrixSets",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                    "type": "application/json",
                },
                {
                    "href": f"{base}/styles/console.json",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/styles",
                    "type": "application/vnd.mapbox.style+json",
                    "title": "MapLibre style of the console's map",
                },
                {
                    "href": f"{base}/console",
                    "rel": "alternate",
                    "type": "text/html",
                    "title": "command console",
                },
            ],
        }
    )


@router.get("/conformance", response_model=Conformance)
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
                "href": f"{href}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": SCHEMA_JSON,
            },
            # The same, under the name the Part 3 drafts used (GDAL up to 3.6 looks for it).
            {"href": f"{href}/queryables", "rel": "queryables", "type": "application/json"},
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


@router.get("/collections", response_model=OgcCollections)
def collections(request: Request, catalog: CatalogDep, user: OptionalUser) -> Response:
    base = _base(request)
    return _json(
        {
            "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
            "collections": [describe(layer, base) for layer in catalog.visible(user)],
        }
    )


@router.get("/collections/{collectionId}", response_model=OgcCollection)
def collection(
    collection_id: CollectionId,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
) -> Response:
    layer = catalog.get(collection_id, user)
    return _json(describe(layer, _base(request), core.extent(conn, layer)))


@router.get(
    "/collections/{collectionId}/queryables",
    response_model=Queryables,
    response_class=SchemaJsonResponse,
    # The same document as plain JSON to clients that ask for JSON only.
    responses={200: {"content": {"application/json": {"schema": _ref(Queryables)}}}},
)
def queryables(
    collection_id: CollectionId,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
) -> Response:
    """What `filter` and `sortby` may name: a JSON Schema of the collection's properties."""
    layer = catalog.get(collection_id, user)
    href = f"{_base(request)}/collections/{layer.id}/queryables"
    body = q.schema_document(layer, q.queryables(conn, layer), href)
    # Clients that ask for JSON only (GDAL does) get the same document as application/json.
    accept = request.headers.get("accept", "")
    plain = SCHEMA_JSON not in accept and ("application/json" in accept or "geo+json" in accept)
    return _json(body, "application/json" if plain else SCHEMA_JSON)


FILTER_ERRORS = (
    psycopg.errors.DataError,
    psycopg.errors.InternalError_,  # PostGIS: a geometry it cannot use (e.g. GEOS exceptions)
    psycopg.errors.UndefinedFunction,  # an operator between types the filter mixed
    psycopg.errors.DatatypeMismatch,
)


@router.get(
    "/collections/{collectionId}/items",
    response_model=GeoJsonFeatureCollection,
    response_class=GeoJsonResponse,
)
def items(
    collection_id: CollectionId,
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
    filter_: Annotated[
        str | None,
        Query(alias="filter", description="a CQL2 filter over the collection's queryables"),
    ] = None,
    filter_lang: Annotated[
        str,
        Query(
            alias="filter-lang",
            description="cql2-text (default) or cql2-json; cql-text (the drafts' name) is read"
            " as cql2-text",
            json_schema_extra={"enum": list(q.FILTER_LANGS)},
        ),
    ] = "cql2-text",
    filter_crs: Annotated[
        str | None, Query(alias="filter-crs", description="CRS of the filter's geometries")
    ] = None,
    sortby: Annotated[
        str | None, Query(description="+a,-b: properties to sort by, ascending (+) or not")
    ] = None,
) -> Response:
    layer = catalog.get(collection_id, user)
    max_limit = settings.api.max_limit
    page_size = settings.api.default_limit if limit is None else limit
    if not 1 <= page_size <= max_limit:
        raise InvalidParameter(f"limit must be between 1 and {max_limit}")
    out = core.output_crs(crs)
    box = core.BBox.parse(bbox, bbox_crs) if bbox else None
    interval = core.Interval.parse(datetime_) if datetime_ else None
    condition = order = None
    if filter_ is not None or sortby is not None:
        found = q.queryables(conn, layer)
        if filter_ is not None:
            tree = q.parse_filter(filter_, filter_lang)
            geometry_crs = core.output_crs(filter_crs)
            condition = q.to_sql(
                tree, layer, found, q.FilterCrs(geometry_crs.srid, geometry_crs.flip)
            )
        if sortby is not None:
            order = q.order_by(sortby, layer, found)
    try:
        page = core.features_page(
            conn,
            layer,
            limit=page_size,
            offset=offset,
            bbox=box,
            interval=interval,
            crs=out,
            condition=condition,
            order=order,
        )
    except FILTER_ERRORS as exc:
        if condition is None:
            raise
        conn.rollback()
        reason = exc.diag.message_primary or type(exc).__name__
        raise InvalidParameter(f"filter cannot be applied: {reason}") from None
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


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    response_model=GeoJsonFeature,
    response_class=GeoJsonResponse,
)
def item(
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(alias="featureId")],
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


def _tile_template(base: str, layer: Layer) -> str:
    tiles = f"{base}/collections/{layer.id}/tiles/{tilematrix.ID}"
    return tiles + "/{tileMatrix}/{tileRow}/{tileCol}"


def _check_tms(tile_matrix_set_id: str) -> None:
    if tile_matrix_set_id != tilematrix.ID:
        raise NotFound(
            f"no tile matrix set {tile_matrix_set_id!r}; the tiles are in {tilematrix.ID}"
        )


def _lonlat_bounds(extent: dict[str, Any]) -> tuple[float, float, float, float]:
    """The CRS84 box of a collection's extent, or the whole world when it is empty."""
    boxes = extent.get("spatial", {}).get("bbox") or [[-180.0, -85.0, 180.0, 85.0]]
    west, south, east, north = boxes[0]
    return west, south, east, north


def _tileset(layer: Layer, base: str, extent: dict[str, Any]) -> dict[str, Any]:
    """The tileset metadata of a collection's vector tiles (OGC API – Tiles, tileset)."""
    west, south, east, north = _lonlat_bounds(extent)
    href = f"{base}/collections/{layer.id}/tiles/{tilematrix.ID}"
    return {
        "title": layer.title_zh,
        "description": layer.title_en,
        "dataType": "vector",
        "crs": tilematrix.CRS,
        "tileMatrixSetURI": tilematrix.URI,
        "boundingBox": {
            "lowerLeft": [west, south],
            "upperRight": [east, north],
            "crs": core.CRS84,
        },
        "tileMatrixSetLimits": tilematrix.limits(
            west, south, east, north, layer.min_zoom, tilematrix.MAX_ZOOM
        ),
        "layers": [
            {
                "id": layer.id,
                "dataType": "vector",
                "geometryDimension": 2
                if layer.is_polygon
                else (1 if "LineString" in layer.geometry_type else 0),
                "minTileMatrix": str(layer.min_zoom),
                "maxTileMatrix": str(tilematrix.MAX_ZOOM),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {p: {} for p in layer.properties},
                },
            }
        ],
        "links": [
            {"href": href, "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/tileMatrixSets/{tilematrix.ID}",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
            },
            {
                "href": f"{base}/collections/{layer.id}",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/geodata",
                "type": "application/json",
            },
            {
                "href": _tile_template(base, layer),
                "rel": "item",
                "type": MVT,
                "templated": True,
            },
            {"href": f"{href}/tilejson.json", "rel": "describedby", "type": TILEJSON},
        ],
    }


@router.get("/tileMatrixSets", response_model=TileMatrixSets)
def tile_matrix_sets(request: Request) -> Response:
    base = _base(request)
    return _json(
        {
            "tileMatrixSets": [
                {
                    "id": tilematrix.ID,
                    "title": "Google Maps Compatible for the World",
                    "uri": tilematrix.URI,
                    "crs": tilematrix.CRS,
                    "links": [
                        {
                            "href": f"{base}/tileMatrixSets/{tilematrix.ID}",
                            "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                            "type": "application/json",
                        }
                    ],
                }
            ]
        }
    )


@router.get("/tileMatrixSets/{tileMatrixSetId}", response_model=TileMatrixSet)
def tile_matrix_set(
    tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")], request: Request
) -> Response:
    _check_tms(tile_matrix_set_id)
    body: dict[str, Any] = tilematrix.definition()
    body["links"] = [
        {
            "href": f"{_base(request)}/tileMatrixSets/{tilematrix.ID}",
            "rel": "self",
            "type": "application/json",
        }
    ]
    return _json(body)


@router.get("/collections/{collectionId}/tiles", response_model=TileSets)
def tilesets(
    collection_id: CollectionId,
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
) -> Response:
    layer = catalog.get(collection_id, user)
    base = _base(request)
    tileset = _tileset(layer, base, core.extent(conn, layer))
    summary = {
        key: tileset[key] for key in ("title", "dataType", "crs", "tileMatrixSetURI", "links")
    }
    summary["links"] = [
        {**tileset["links"][0], "rel": "self"},
        *tileset["links"][1:],
    ]
    return _json(
        {
            "links": [
                {
                    "href": f"{base}/collections/{layer.id}/tiles",
                    "rel": "self",
                    "type": "application/json",
                }
            ],
            "tilesets": [summary],
        }
    )


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", response_model=TileSet)
def tileset(
    collection_id: CollectionId,
    tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")],
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
) -> Response:
    layer = catalog.get(collection_id, user)
    _check_tms(tile_matrix_set_id)
    return _json(_tileset(layer, _base(request), core.extent(conn, layer)))


_JSON_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean"}


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
    response_model=TileJson,
)
def tilejson(
    collection_id: CollectionId,
    tile_matrix_set_id: Annotated[str, Path(alias="tileMatrixSetId")],
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
) -> Response:
    """TileJSON 3.0.0 of a collection's vector tiles, for MapLibre and other web maps."""
    layer = catalog.get(collection_id, user)
    _check_tms(tile_matrix_set_id)
    base = _base(request)
    extent = core.extent(conn, layer)
    west, south, east, north = _lonlat_bounds(extent)
    found = q.queryables(conn, layer)
    fields = {
        p: _JSON_TYPES.get(found[p].kind, "String") if p in found else "String"
        for p in layer.properties
    }
    template = _tile_template(base, layer).replace("{tileMatrix}", "{z}")
    template = template.replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")
    zoom = max(layer.min_zoom, min(12, tilematrix.MAX_ZOOM))
    return _json(
        {
            "tilejson": "3.0.0",
            "name": layer.id,
            "description": layer.title_en,
            "version": "1.0.0",
            "scheme": "xyz",
            "tiles": [template],
            "minzoom": layer.min_zoom,
            "maxzoom": tilematrix.MAX_ZOOM,
            "bounds": [west, south, east, north],
            "center": [round((west + east) / 2, 6), round((south + north) / 2, 6), zoom],
            "attribution": layer.description or None,
            "vector_layers": [
                {
                    "id": layer.id,
                    "description": layer.title_zh,
                    "minzoom": layer.min_zoom,
                    "maxzoom": tilematrix.MAX_ZOOM,
                    "fields": fields,
                }
            ],
        },
        TILEJSON,
    )


@router.get("/styles/console.json", response_model=MapLibreStyle, response_class=StyleResponse)
def console_map_style(
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
    relief: Annotated[str, Query(description="base-map style")] = "shaded_relief",
) -> Response:
    """The console's map as a MapLibre style: the offline relief and every layer this user
    may read, all from this server."""
    visible = catalog.visible(user)
    # The map opens on the city: the extent of the boundary layer, when there is one.
    city = next((layer for layer in visible if layer.group == "base" and layer.is_polygon), None)
    bounds = _lonlat_bounds(core.extent(conn, city)) if city is not None else None
    body = console_style(_base(request), visible, bounds, relief)
    return _json(body, MAPLIBRE_STYLE)


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}",
    response_class=Response,
    responses={
        200: {
            "content": {MVT: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a Mapbox Vector Tile of the collection",
        }
    },
)
def tile(
    collection_id: CollectionId,
    tile_matrix: Annotated[int, Path(alias="tileMatrix")],
    tile_row: Annotated[int, Path(alias="tileRow")],
    tile_col: Annotated[int, Path(alias="tileCol")],
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
