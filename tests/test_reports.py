"""Report maps: self-contained HTML (Leaflet inlined, nothing from the internet), the platform's
relief tiles, the chosen layers only, and restricted layers refused to those who may not read them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_core.db import connect
from layers.catalog import installed_catalog
from web.reports.folium_map import build_report_map, leaflet_assets

pytestmark = pytest.mark.services

# What a browser fetches by itself: script/img/iframe sources, linked sheets, CSS urls.
URL_RE = re.compile(
    r"""<(?:script|img|iframe|source)\b[^>]*\bsrc\s*=\s*["']([^"']+)["']"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']([^"']+)["']""",
    re.I,
)
CSS_URL_RE = re.compile(r"url\(\s*['\"]?([^'\")]+)")


@pytest.fixture(scope="module")
def client(settings: Any, reference: object) -> Iterator[TestClient]:
    from web.app import create_app
    from web.routers import console

    app = create_app(settings)
    console.install(app)
    with TestClient(app) as c:
        yield c


def loaded_urls(html: str) -> list[str]:
    """Every URL the page would load (scripts, style sheets, images), not plain text."""
    tags = [a or b for a, b in URL_RE.findall(html)]
    return tags + CSS_URL_RE.findall(html)


def test_leaflet_is_inlined_with_its_images() -> None:
    script, css = leaflet_assets()
    assert "L.version" in script or "Leaflet" in script
    assert "data:image/png;base64," in css
    assert "images/layers.png" not in css


def test_report_map_is_self_contained(client: TestClient, artifacts: Any) -> None:
    bbox = "112.6,35.9,113.5,36.6"
    response = client.get(f"/reports/map?layers=districts,hospitals,rivers&bbox={bbox}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-disposition"].startswith('attachment; filename="report-')
    html = response.text
    (artifacts / "report-map.html").write_text(html, encoding="utf-8")
    base = str(client.base_url).rstrip("/")
    for url in loaded_urls(html):
        assert url.startswith(("data:", "#", base)), f"the report loads {url}"
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html and "code.jquery" not in html
    # The platform's relief tiles, the layers chosen, a legend and a title.
    assert f"{base}/basemap/hillshade/WebMercatorQuad/{{z}}/{{y}}/{{x}}.png" in html
    assert "医院" in html and "区县" in html and "河流" in html
    assert "cz-report-legend" in html and "长治市态势图" in html
    assert "L.map(" in html and html.count('"type": "Feature"') + html.count('"type":"Feature"') > 0


def test_report_in_english_with_a_title(client: TestClient) -> None:
    response = client.get("/reports/map?layers=districts&lang=en&title=Flood%20briefing")
    assert response.status_code == 200
    assert "Flood briefing" in response.text and "Districts and counties" in response.text


def test_report_refuses_what_the_user_may_not_read(client: TestClient) -> None:
    hidden = client.get("/reports/map?layers=districts,parcels")
    assert hidden.status_code == 404
    assert "parcels" in hidden.json()["detail"]
    assert client.get("/reports/map?layers=").status_code in (400, 422)
    assert client.get("/reports/map?layers=districts&bbox=1,2,3").status_code == 400
    assert client.get("/reports/map?layers=nope").status_code == 404


def test_report_with_login_sees_restricted_layers(client: TestClient, admin_password: str) -> None:
    token = client.post(
        "/auth/token", data={"username": "root-admin", "password": admin_password}
    ).json()["access_token"]
    response = client.get(
        "/reports/map?layers=enterprises", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert "企业" in response.text


def test_builder_takes_a_connection_and_catalog_layers(db_url: str, reference: object) -> None:
    catalog = installed_catalog()
    with connect(db_url) as conn:
        html = build_report_map(
            conn,
            [catalog.get("fire_stations"), catalog.get("city")],
            bbox=None,
            tiles="http://127.0.0.1:8000/basemap/hillshade/WebMercatorQuad/{z}/{y}/{x}.png",
            max_features=3,
        )
    assert "消防站" in html and "市域" in html
    assert "fitBounds" in html


def test_console_page_and_static_files(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    static = re.findall(r'(/console/static/[0-9a-f]{12}/[^"]+)', page.text)
    assert any(s.endswith("app.js") for s in static)
    for url in static:
        got = client.get(url)
        assert got.status_code == 200, url
        assert "immutable" in got.headers["cache-control"]
    prefix = static[0].rsplit("/", 1)[0].split("/console/static/")[1].split("/")[0]
    worker = client.get(f"/console/static/{prefix}/vendor/maplibre-gl/maplibre-gl-worker.mjs")
    assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
    assert client.get(f"/console/static/{prefix}/package.json").status_code == 404
    assert client.get(f"/console/static/{prefix}/node_modules/x").status_code == 404
    assert client.get("/console/api/devices").status_code == 401
    # Nothing the page loads points off the machine.
    for url in static:
        body = client.get(url).text if url.endswith((".js", ".css", ".html")) else ""
        for match in re.findall(r"""(?:import|from)\s*['"]([^'"]+)['"]""", body):
            assert not match.startswith(("http:", "https:", "//")), f"{url} imports {match}"
