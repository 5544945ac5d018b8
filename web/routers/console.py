"""The large-screen command console (``/console``) and report maps (``/reports/map``).

The console is a static page: plain ES modules and vendored libraries under ``web/console``,
served by the platform itself so it works on a network without internet. Static files live
under a content-hashed prefix (``/console/static/<hash>/...``), so every one of them can be
cached for a year and a new release is still picked up on the next page load.

Mount with :func:`install` (``console.install(app)``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from psycopg.rows import dict_row
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gis_core.application import Installed, installed
from gis_core.errors import InvalidParameter, NotFound
from gis_core.features import BBox
from web.deps import ConnDep, CurrentUser, OptionalUser
from web.reports.folium_map import ReportError, build_report_map
from web.routers.ogc import CatalogDep

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
STATIC_SKIP = {"node_modules", "package.json", "package-lock.json"}
LONG_CACHE = "public, max-age=31536000, immutable"
# The stacks' permits, whose limits the emission thresholds compare with (as the ingest's rules
# read them): told only to users who may read a layer of that table.
PERMITS_TABLE = "env.pollution_source"

router = APIRouter(tags=["console"])


def static_version(root: Path = CONSOLE_DIR) -> str:
    """A short hash of everything the page loads: changes whenever any served file changes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in STATIC_SKIP or not path.is_file():
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class ConsoleStatic(StaticFiles):
    """The console's files with year-long caching (their URL changes when they do)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if Path(path).parts[:1] and Path(path).parts[0] in STATIC_SKIP:
            return Response("not found", status_code=404)
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = LONG_CACHE
            if path.endswith(".mjs"):
                response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        return response


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console_page(request: Request) -> HTMLResponse:
    version = request.app.state.console_version
    html = (CONSOLE_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{STATIC}}", f"/console/static/{version}")
    # The page itself is tiny and always fresh; what it loads is cached by version.
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/console/", include_in_schema=False)
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/console/api/devices")
def console_devices(user: CurrentUser, conn: ConnDep, catalog: CatalogDep) -> list[dict[str, Any]]:
    """What the console draws devices by, beyond their live state: names, departments,
    unit types and call signs, site thresholds, permit limits (for those who may read the
    permits) and districts (one row per device)."""
    permits = any(layer.table == PERMITS_TABLE for layer in catalog.visible(user))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT d.id, d.kind, d.name_zh AS name, d.department_code AS department,
                   d.expected_interval_s AS interval_s, d.site_id,
                   s.district_code AS district, s.thresholds,
                   CASE WHEN %(permits)s THEN ps.limits END AS limits,
                   u.call_sign, u.unit_type, u.status AS unit_status,
                   coalesce(u.department_code, d.department_code) AS unit_department
            FROM iot.device d
            LEFT JOIN iot.monitoring_site s ON s.id = d.site_id
            LEFT JOIN env.pollution_source ps ON ps.id = s.pollution_source_id
            LEFT JOIN ops.unit u ON u.device_id = d.id
            ORDER BY d.id
            """,
            {"permits": permits},
        )
        return cur.fetchall()


@router.get(
    "/reports/map",
    response_class=HTMLResponse,
    tags=["reports"],
    responses={200: {"content": {"text/html": {}}}},
)
def report_map(
    request: Request,
    catalog: CatalogDep,
    user: OptionalUser,
    conn: ConnDep,
    layers: Annotated[str, Query(description="comma-separated collection ids")],
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy (CRS84)")] = None,
    title: Annotated[str | None, Query(max_length=120)] = None,
    lang: Annotated[str, Query(pattern="^(zh|en)$")] = "zh",
    max_features: Annotated[int, Query(ge=1, le=50_000)] = 5000,
) -> Response:
    """A snapshot of chosen layers as one self-contained HTML map (Leaflet inlined), over the
    platform's own relief tiles; downloaded as a file."""
    ids = [part.strip() for part in layers.split(",") if part.strip()]
    if not ids:
        raise InvalidParameter("layers: name at least one collection")
    if len(ids) > 20:
        raise InvalidParameter("layers: at most 20 collections")
    chosen = [catalog.get(layer_id, user) for layer_id in ids]  # hidden layers: 404
    box = BBox.parse(bbox) if bbox else None
    base = str(request.base_url).rstrip("/")
    try:
        html = build_report_map(
            conn,
            chosen,
            bbox=box,
            tiles=f"{base}/basemap/hillshade/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png",
            title=title,
            lang=lang,
            max_features=max_features,
            author=user.username if user else None,
        )
    except ReportError as exc:
        raise NotFound(str(exc)) from None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = "report-" + re.sub(r"[^A-Za-z0-9_-]+", "_", "-".join(ids))[:60] + f"-{stamp}.html"
    return HTMLResponse(
        html,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def install(app: FastAPI, apps: Installed | None = None) -> None:
    """Mount the console, its static files, each installed application's panels (under
    ``apps/<name>/``) and the report endpoint on ``app`` (idempotent). ``apps`` defaults to
    the applications the app was made with (``app.state.apps``)."""
    if getattr(app.state, "console_version", None):
        return
    if apps is None:
        apps = getattr(app.state, "apps", None) or installed()
    panels = {a.name: a.console for a in apps if a.console is not None}
    digest = hashlib.sha256(static_version().encode())
    for name, folder in sorted(panels.items()):
        digest.update(f"{name}:{static_version(folder)}".encode())
    version = digest.hexdigest()[:12]
    app.state.console_version = version
    app.include_router(router)
    # The applications' folders first: the console's own mount below would claim their paths.
    for name, folder in panels.items():
        app.mount(
            f"/console/static/{version}/apps/{name}",
            ConsoleStatic(directory=folder),
            name=f"console-{name}",
        )
    app.mount(
        f"/console/static/{version}",
        ConsoleStatic(directory=CONSOLE_DIR),
        name="console-static",
    )
