"""The offline base map: shaded-relief raster tiles rendered by the platform from its DEM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from gis_core.errors import NotFound
from gis_core.terrain import STYLES, ReliefTileStore, TileOutOfRange
from web.deps import ConnDep, SettingsDep

router = APIRouter(prefix="/basemap", tags=["base map"])


def tile_cache(request: Request, conn: ConnDep, settings: SettingsDep) -> ReliefTileStore:
    """The tile cache of the DEM the loaded dataset names (looked up once, then kept)."""
    cache: ReliefTileStore | None = getattr(request.app.state, "basemap", None)
    if cache is not None:
        return cache
    row = conn.execute(
        "SELECT dem_path FROM ref.dataset WHERE city = %s", (settings.platform.city,)
    ).fetchone()
    if row is None or not row[0]:
        raise NotFound("no DEM loaded yet: run `changzhi data load`")
    dem = Path(row[0])
    if not dem.exists():
        raise NotFound(f"the DEM {dem.name} is missing: run `changzhi data load`")
    cache = ReliefTileStore(dem, settings.platform.var_dir / "tiles" / dem.stem)
    request.app.state.basemap = cache
    return cache


CacheDep = Annotated[ReliefTileStore, Depends(tile_cache)]


@router.get("")
def styles(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    body: dict[str, Any] = {
        "styles": [
            {
                "id": style,
                "tiles": f"{base}/basemap/{style}/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png",
                "attribution": "Relief: refinement of NOAA ETOPO1 (Amante & Eakins 2009)",
            }
            for style in STYLES
        ]
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/{style}/WebMercatorQuad/{tile_matrix}/{tile_row}/{tile_col}.png",
    responses={200: {"content": {"image/png": {}}}},
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
