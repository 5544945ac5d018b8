"""The offline base map: shaded-relief raster tiles rendered by the platform from its DEM."""

from __future__ import annotations

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
