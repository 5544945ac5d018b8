"""The flood routes and commands: answers, and a clear 4xx or one red line for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from apps.flood.cli import register
from gis_core.network import reopen_roads

pytestmark = pytest.mark.services


@pytest.fixture
def gauge(prepared: object, db_url: str) -> Iterator[str]:
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT site_id FROM flood.catchment ORDER BY area_km2 DESC").fetchone()
        yield row[0]
        reopen_roads(c, source="flood")
        c.commit()


def test_routes_answer_and_refuse_bad_input_with_4xx(api, admin_headers, gauge) -> None:
    h = admin_headers
    long_ago = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    r = api.get("/flood/rain", params={"window": "24h", "end": long_ago}, headers=h)
    assert r.status_code == 422 and "no rain gauge reported" in r.json()["detail"]
    r = api.get("/flood/rain", params={"window": "2h"}, headers=h)
    assert r.status_code == 422 and "window '2h'" in r.json()["detail"]
    assert api.get("/flood/rain").status_code == 401
    r = api.get("/flood/gauges/WL-nowhere/forecast", headers=h)
    assert r.status_code == 404 and "WL-nowhere" in r.json()["detail"]
    r = api.post("/flood/inundation", json={"rise_m": 3.0}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["wet_cells"] > 0 and body["roads_closed"] == len(body["roads_flooded"])
    assert body["flooded"]["type"] == "FeatureCollection"
    r = api.delete("/flood/inundation", headers=h)
    assert r.status_code == 200 and r.json()["reopened"] == body["roads_closed"]
    r = api.post("/flood/inundation", json={"stages": {gauge: -5.0}}, headers=h)
    assert r.status_code == 422 and "below its channel bed" in r.json()["detail"]
    r = api.post("/flood/inundation", json={"rise_m": 1.0, "observed": True}, headers=h)
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    r = api.post("/flood/evacuation", json={"rise_m": 3.0, "routes": 5}, headers=h)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["assigned"] + plan["unassigned"] == plan["people"]
    assert len(plan["routes"]["features"]) <= 5
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/flood/rain", "/flood/gauges/{gauge_id}/forecast", "/flood/inundation"):
        assert p in paths


def _cli(settings, monkeypatch, *args: str):
    from gis_core.settings import get_settings

    monkeypatch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHANGZHI_VAR_DIR", str(settings.platform.var_dir))
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    try:
        return CliRunner().invoke(app, ["flood", *args])
    finally:
        get_settings.cache_clear()


def test_cli_commands_and_their_errors(settings, monkeypatch, gauge) -> None:
    result = _cli(settings, monkeypatch, "inundate", "--rise", "2", "--no-close-roads")
    assert result.exit_code == 0, result.output
    assert "km² under water" in result.output and "0 roads closed" in result.output
    result = _cli(settings, monkeypatch, "inundate", "--stage", "nonsense")
    assert result.exit_code == 1 and "GAUGE=LEVEL" in result.output
    result = _cli(settings, monkeypatch, "forecast", "WL-nowhere")
    assert result.exit_code == 1 and "no river gauge 'WL-nowhere'" in result.output
    result = _cli(settings, monkeypatch, "rain", "--window", "5h")
    assert result.exit_code == 1 and "window '5h'" in result.output
    result = _cli(settings, monkeypatch, "evacuate", "--rise", "2", "--json")
    assert result.exit_code == 0, result.output
    assert '"assigned"' in result.output


def test_the_panel_and_layers_are_listed_and_served(api, admin_headers, prepared) -> None:
    apps = api.get("/apps", headers=admin_headers).json()
    flood = next(a for a in apps["applications"] if a["name"] == "flood")
    panel = flood["panels"][0]
    assert panel["module"] == "apps/flood/flood.js" and flood["prefix"] == "/flood"
    assert set(flood["layers"]) == {"flood_streams", "flood_catchments"}
    assert "inundation" in flood["events"]
    static = api.get("/console").text.split('src="', 1)[1].split("/app.js", 1)[0]
    module = api.get(f"{static}/{panel['module']}")
    assert module.status_code == 200 and "export function mount" in module.text
    assert "innerHTML" not in module.text
    strings = api.get(f"{static}/{panel['strings']}").json()
    assert strings["zh"].keys() == strings["en"].keys() and strings["zh"]["title"] == "防汛减灾"
    for layer in ("flood_streams", "flood_catchments"):
        items = api.get(f"/collections/{layer}/items", headers=admin_headers).json()
        assert items["features"], layer
