"""The shapes of the OGC API documents the platform serves, for OpenAPI.

The routes in :mod:`web.routers.ogc` write their documents themselves (orjson, and the items'
features straight from PostGIS), so these models describe the answers rather than make them;
``tests/test_api_contract.py`` checks served documents against them. Where a standard lets a
document carry members of its own (OGC links, collections, tilesets, GeoJSON objects, JSON
Schema, MapLibre styles), the model allows extra members too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """A document the standard lets carry extension members."""

    model_config = ConfigDict(extra="allow")


class OgcLink(_Open):
    """A link (OGC API – Common, RFC 8288)."""

    href: str
    rel: str
    type: str | None = Field(None, description="the media type of the linked resource")
    title: str | None = None
    templated: bool | None = Field(None, description="href is a URI template")


class Conformance(BaseModel):
    conformsTo: list[str] = Field(description="URIs of the conformance classes implemented")


class SpatialExtent(_Open):
    bbox: list[list[float]] = Field(description="[minx, miny, maxx, maxy] boxes, in crs")
    crs: str


class TemporalExtent(_Open):
    interval: list[list[str | None]] = Field(description="[start, end], ISO 8601; null: open")
    trs: str


class Extent(_Open):
    spatial: SpatialExtent | None = None
    temporal: TemporalExtent | None = None


class LayerDisplay(_Open):
    """Platform extension (``x-changzhi``): what the console needs to draw and label a layer."""

    title_en: str
    group: str
    geometry_type: str
    properties: list[str]
    time_column: str | None
    label: str | None
    label_en: str | None
    style: dict[str, Any]
    min_zoom: int
    restricted: bool = Field(description="readable only by some roles")


class OgcCollection(_Open):
    """A collection (OGC API – Features, Part 1 and Part 2: crs, storageCrs)."""

    id: str
    title: str
    description: str | None
    itemType: str
    crs: list[str]
    storageCrs: str
    links: list[OgcLink]
    extent: Extent | None = Field(None, description="only in a collection's own document")
    x_changzhi: LayerDisplay = Field(alias="x-changzhi")


class OgcCollections(_Open):
    links: list[OgcLink]
    collections: list[OgcCollection]


class GeoJsonGeometry(_Open):
    """A GeoJSON geometry (RFC 7946): coordinates, or geometries for a collection."""

    type: str = Field(description="Point, LineString, Polygon, Multi…, GeometryCollection")
    coordinates: list[Any] | None = None
    geometries: list[GeoJsonGeometry] | None = None


class GeoJsonFeature(_Open):
    type: Literal["Feature"]
    id: str | int | None = None
    geometry: GeoJsonGeometry | None
    properties: dict[str, Any] | None = Field(
        description="the collection's properties (its queryables say which)"
    )
    links: list[OgcLink] | None = Field(None, description="on a feature fetched by its id")


class GeoJsonFeatureCollection(_Open):
    """A page of features (OGC API – Features, GeoJSON conformance class)."""

    type: Literal["FeatureCollection"]
    features: list[GeoJsonFeature]
    numberMatched: int
    numberReturned: int
    timeStamp: str
    links: list[OgcLink] = Field(description="self, and next / prev when there are more")


class Queryable(_Open):
    """A property a filter or sortby may name, as JSON Schema."""

    type: str | None = None
    format: str | None = None
    title: str | None = None
    enum: list[Any] | None = None


class QueryableRef(BaseModel):
    id: str
    title: str


class Queryables(_Open):
    """The queryables of a collection: a JSON Schema (2020-12) (OGC API – Features, Part 3)."""

    schema_uri: str = Field(alias="$schema")
    id_uri: str = Field(alias="$id")
    type: Literal["object"]
    title: str
    description: str | None
    properties: dict[str, Queryable]
    additionalProperties: bool
    queryables: list[QueryableRef] = Field(description="the names, as Part 3's drafts listed")


class TileMatrix(_Open):
    id: str
    scaleDenominator: float
    cellSize: float
    cornerOfOrigin: str
    pointOfOrigin: list[float]
    tileWidth: int
    tileHeight: int
    matrixWidth: int
    matrixHeight: int


class TileMatrixSet(_Open):
    """A tile matrix set (OGC Two Dimensional Tile Matrix Set 2.0, JSON encoding)."""

    id: str
    title: str
    uri: str
    crs: str
    orderedAxes: list[str]
    wellKnownScaleSet: str | None = None
    tileMatrices: list[TileMatrix]
    links: list[OgcLink]


class TileMatrixSetRef(_Open):
    id: str
    title: str
    uri: str
    crs: str
    links: list[OgcLink]


class TileMatrixSets(_Open):
    tileMatrixSets: list[TileMatrixSetRef]


class TileBoundingBox(_Open):
    lowerLeft: list[float]
    upperRight: list[float]
    crs: str


class TileMatrixLimits(_Open):
    tileMatrix: str
    minTileRow: int
    maxTileRow: int
    minTileCol: int
    maxTileCol: int


class TileLayer(_Open):
    """A layer of a vector tileset (OGC API – Tiles, geospatialData)."""

    id: str
    dataType: str
    geometryDimension: int = Field(description="0 points, 1 lines, 2 areas")
    minTileMatrix: str
    maxTileMatrix: str
    propertiesSchema: dict[str, Any] = Field(description="JSON Schema of the tiles' properties")


class TileSetSummary(_Open):
    title: str
    dataType: str
    crs: str
    tileMatrixSetURI: str
    links: list[OgcLink]


class TileSets(_Open):
    links: list[OgcLink]
    tilesets: list[TileSetSummary]


class TileSet(TileSetSummary):
    """Tileset metadata (OGC API – Tiles, tileset conformance class)."""

    description: str | None
    boundingBox: TileBoundingBox
    tileMatrixSetLimits: list[TileMatrixLimits]
    layers: list[TileLayer]


class VectorLayer(_Open):
    id: str
    description: str | None
    minzoom: int
    maxzoom: int
    fields: dict[str, str] = Field(description="property → Number, Boolean or String")


class TileJson(_Open):
    """TileJSON 3.0.0 of a collection's vector tiles."""

    tilejson: str
    name: str
    description: str | None
    version: str
    scheme: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[float]
    center: list[float] = Field(description="lon, lat, zoom")
    attribution: str | None
    vector_layers: list[VectorLayer]


class StyleLayer(_Open):
    """A MapLibre style layer: its paint, layout and filter are the style spec's."""

    id: str
    type: str
    source: str | None = None
    minzoom: float | None = None


class MapLibreStyle(_Open):
    """A MapLibre style (style specification version 8)."""

    version: Literal[8]
    name: str | None = None
    metadata: dict[str, Any] | None = None
    sources: dict[str, dict[str, Any]] = Field(description="by id: raster or vector sources")
    layers: list[StyleLayer]
    center: list[float] | None = Field(None, description="lon, lat")
    zoom: float | None = None
