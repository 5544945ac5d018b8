"""The offline base map: shaded-relief raster tiles rendered by the platform from its DEM, and
the MapLibre style that puts the platform's vector layers over it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from gis_core.errors import NotFound
from gis_core.terrain import STYLES, ReliefTileStore, TileOutOfRange
from web.deps import ConnDep, SettingsDep
from web.services.basemap import dem_path

router = APIRouter(prefix="/basemap", tags=["base map"])


def tile_cache(request: Request, conn: ConnDep, settings: SettingsDep) -> ReliefTileStore:
    """The tile cache of the DEM the loaded dataset names (looked up once, then kept)."""
    cache: ReliefTileStore | None = getattr(request.app.state, "basemap", None)
    if cache is not None:
        return cache
    dem = dem_path(conn, settings.platform.city)
    cache = ReliefTileStore(dem, settings.platform.var_dir / "tiles" / dem.stem)
    request.app.state.basemap = cache
    return cache


CacheDep = Annotated[ReliefTileStore, Depends(tile_cache)]


class StyleOut(BaseModel):
    id: str
    tiles: str
    attribution: str


class StylesOut(BaseModel):
    styles: list[StyleOut]


@router.get("", response_model=StylesOut)
def styles(request: Request) -> dict[str, Any]:
    """The base-map styles, each with its tile URL template."""
    base = str(request.base_url).rstrip("/")
    return {
        "styles": [
            {
                "id": style,
                "tiles": f"{base}/basemap/{style}/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png",
                "attribution": "Relief: refinement of NOAA ETOPO1 (Amante & Eakins 2009)",
            }
            for style in STYLES
        ]
    }


@router.get(
    "/{style}/WebMercatorQuad/{tile_matrix}/{tile_row}/{tile_col}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "a PNG tile"}},
)
def basemap_tile(
    style: str, tile_matrix: int, tile_row: int, tile_col: int, cache: CacheDep
) -> Response:
    if style not in STYLES:
        raise NotFound(f"no base-map style {style!r}; styles: {', '.join(STYLES)}")
    try:
        png = cache.get(tile_matrix, tile_col, tile_row, style=style)  # type: ignore[arg-type]
    except TileOutOfRange as exc:
        raise NotFound(str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def _paint(layer_id: str, geometry: str, style: Mapping[str, Any]) -> list[dict[str, Any]]:
    """MapLibre layers drawing one catalog layer from its style hints."""
    stroke = style.get("stroke", style.get("color", "#555555"))
    width = style.get("width", 1)
    opacity = style.get("opacity", 1)
    common = {"source": layer_id, "source-layer": layer_id}
    if geometry.endswith("Polygon"):
        return [
            {
                "id": f"{layer_id}-fill",
                "type": "fill",
                **common,
                "paint": {
                    "fill-color": style.get("fill", "rgba(0,0,0,0)"),
                    "fill-opacity": opacity,
                },
            },
            {
                "id": f"{layer_id}-line",
                "type": "line",
                **common,
                "paint": {"line-color": stroke, "line-width": width},
            },
        ]
    if geometry.endswith("LineString"):
        paint: dict[str, Any] = {"line-color": stroke, "line-width": width}
        classes = style.get("classes")
        if style.get("by") and classes:
            # Roads and the like: colour and width by a class property.
            key = ["get", style["by"]]
            paint["line-color"] = ["match", key]
            paint["line-width"] = ["match", key]
            for value, look in classes.items():
                paint["line-color"] += [value, look.get("stroke", stroke)]
                paint["line-width"] += [value, look.get("width", width)]
            paint["line-color"].append(stroke)
            paint["line-width"].append(width)
        return [{"id": layer_id, "type": "line", **common, "paint": paint}]
    return [
        {
            "id": layer_id,
            "type": "circle",
            **common,
            "paint": {
                "circle-color": style.get("color", stroke),
                "circle-radius": style.get("radius", 4),
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 1,
            },
        }
    ]


def console_style(
    base: str,
    layers: Iterable[Any],
    bounds: tuple[float, float, float, float] | None = None,
    relief: str = "shaded_relief",
) -> dict[str, Any]:
    """A MapLibre style (version 8) of the console's map: the offline relief base map and the
    platform's vector layers, every URL on this server.

    ``layers`` are catalog layers (id, geometry_type, style, min_zoom), drawn in their
    ``order``; each vector source is the layer's TileJSON. ``bounds`` (lon/lat: the city's)
    centres the map."""
    if relief not in STYLES:
        raise NotFound(f"no base-map style {relief!r}; styles: {', '.join(STYLES)}")
    ordered = sorted(layers, key=lambda layer: layer.style.get("order", 50))
    sources: dict[str, Any] = {
        "relief": {
            "type": "raster",
            "tiles": [f"{base}/basemap/{relief}/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png"],
            "tileSize": 256,
            "maxzoom": 14,
            "attribution": "Relief: refinement of NOAA ETOPO1 (Amante & Eakins 2009)",
        }
    }
    drawn: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#eef1f4"}},
        {"id": "relief", "type": "raster", "source": "relief"},
    ]
    for layer in ordered:
        sources[layer.id] = {
            "type": "vector",
            "url": f"{base}/collections/{layer.id}/tiles/WebMercatorQuad/tilejson.json",
        }
        for drawn_layer in _paint(layer.id, layer.geometry_type, layer.style):
            if layer.min_zoom:
                drawn_layer["minzoom"] = layer.min_zoom
            drawn.append(drawn_layer)
    style: dict[str, Any] = {
        "version": 8,
        "name": "console",
        "metadata": {"changzhi:layers": [layer.id for layer in ordered]},
        "sources": sources,
        "layers": drawn,
    }
    if bounds is not None:
        west, south, east, north = bounds
        style["center"] = [round((west + east) / 2, 6), round((south + north) / 2, 6)]
        # The zoom at which the box's wider side fills about 1000 pixels.
        span = max(east - west, (north - south) * 1.3, 1e-6)
        style["zoom"] = max(0, min(14, int(math.log2(360 / span * 1000 / 256))))
    return style
