"""A plume handed to dispatch as a hazmat incident with its evacuation area, through the API of
the whole platform, and refused when dispatch is not installed."""

from __future__ import annotations

from typing import Any

import pytest

from apps.environment import evacuation
from apps.environment.release import Release
from gis_core.db import connect
from gis_core.errors import Conflict
from gis_core.identity import create_user

pytestmark = pytest.mark.services


def _centre(db_url: str) -> tuple[float, float]:
    with connect(db_url) as conn:
        row = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c FROM ref.admin_area"
            " WHERE level = 'city') x"
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def _incidents(db_url: str) -> int:
    with connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ops.incident").fetchone()
    assert row is not None
    return int(row[0])


def test_plume_opens_hazmat_incident_with_evacuation_area(
    api: Any, admin_headers: dict[str, str], db_url: str, reference: object
) -> None:
    lon, lat = _centre(db_url)
    body = {"lon": lon, "lat": lat, "emission_gs": 500, "wind_ms": 2.0, "wind_from_deg": 0,
            "temp_c": 15, "stability": "D", "thresholds": [10, 1000],
            "evacuate_ugm3": 100}  # fmt: skip
    r = api.post("/environment/plume/incident", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    made = r.json()
    incident, area = made["incident"], made["evacuation"]
    assert incident["incident_type"] == "hazmat"
    assert (incident["lon"], incident["lat"]) == pytest.approx((lon, lat))
    # The evacuation contour was added to the plume's and its counts are that contour's.
    levels = [f["properties"]["threshold_ugm3"] for f in made["plume"]["features"]]
    assert levels == [10, 100, 1000]
    at_100 = made["plume"]["features"][1]["properties"]
    assert area["threshold_ugm3"] == 100
    assert area["population"] == at_100["population"] and area["schools"] == at_100["schools"]
    assert area["area_km2"] > 0

    with connect(db_url) as conn:
        stored = conn.execute(
            """
            SELECT e.population, ST_Y(ST_Centroid(e.geom)),
                   ST_Area(e.geom::geography) / 1e6,
                   ST_Contains(e.geom, ST_SetSRID(ST_MakePoint(%s, %s - 0.002), 4326))
            FROM env.evacuation_area e WHERE e.incident_id = %s
            """,
            (lon, lat, incident["id"]),
        ).fetchone()
    assert stored is not None
    population, centroid_lat, km2, holds_just_south = stored
    assert population == area["population"]
    assert centroid_lat < lat  # a north wind: evacuate to the south of the release
    assert holds_just_south  # 220 m downwind of a 500 g/s ground release is far above 100
    assert km2 == pytest.approx(area["area_km2"], rel=1e-3)

    # Dispatch sees the incident with the area on its timeline, and recommends units.
    detail = api.get(f"/dispatch/incidents/{incident['id']}", headers=admin_headers).json()
    events = {e["event"]: e["detail"] for e in detail["timeline"]}
    assert events["evacuation_area"]["geometry"]["type"] == "MultiPolygon"
    assert events["evacuation_area"]["population"] == area["population"]
    rec = api.get(
        f"/dispatch/incidents/{incident['id']}/recommendations?k=2&routes=false",
        headers=admin_headers,
    )
    assert rec.status_code == 200, rec.text
    plan = {p["unit_type"]: p["count"] for p in rec.json()["plan"]}
    assert plan["hazmat"] == 1 and plan["engine"] == 2
    types = {c["unit_type"] for c in rec.json()["candidates"]}
    assert "hazmat" in types and "engine" in types

    again = api.get(f"/environment/plume/incidents/{incident['id']}", headers=admin_headers)
    assert again.status_code == 200
    assert again.json()["area_km2"] == pytest.approx(area["area_km2"])
    assert again.json()["release"]["emission_gs"] == 500
    missing = api.get("/environment/plume/incidents/999999999", headers=admin_headers)
    assert missing.status_code == 404


def test_nothing_to_evacuate_opens_nothing(
    api: Any, admin_headers: dict[str, str], db_url: str, reference: object
) -> None:
    lon, lat = _centre(db_url)
    before = _incidents(db_url)
    body = {"lon": lon, "lat": lat, "emission_gs": 1, "height_m": 100, "wind_ms": 8,
            "wind_from_deg": 90, "temp_c": 15, "stability": "D", "evacuate_ugm3": 1e5}  # fmt: skip
    r = api.post("/environment/plume/incident", json=body, headers=admin_headers)
    assert r.status_code == 422 and "nothing to evacuate" in r.json()["detail"]
    away = api.post(
        "/environment/plume/incident",
        json={**body, "lon": 100.0, "lat": 30.0, "evacuate_ugm3": 1},
        headers=admin_headers,
    )
    assert away.status_code == 422 and "outside" in away.json()["detail"]
    assert _incidents(db_url) == before


def test_only_dispatch_operators_open_incidents(api: Any, db_url: str, reference: object) -> None:
    with connect(db_url) as conn:
        conn.execute("DELETE FROM auth.app_user WHERE username = 'evac-insp'")
        create_user(conn, username="evac-insp", password="pw-evac-insp", roles=["inspector"],
                    department="environment")  # fmt: skip
        conn.commit()
    token = api.post("/auth/token", data={"username": "evac-insp", "password": "pw-evac-insp"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    lon, lat = _centre(db_url)
    body = {"lon": lon, "lat": lat, "emission_gs": 500, "wind_ms": 2.0, "wind_from_deg": 0,
            "temp_c": 15, "stability": "D"}  # fmt: skip
    r = api.post("/environment/plume/incident", json=body, headers=headers)
    assert r.status_code == 403


def test_without_dispatch_it_says_so(
    db_url: str, reference: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGZHI_APPS", "environment")
    assert not evacuation.dispatch_installed()
    lon, lat = _centre(db_url)
    spec = Release(lon=lon, lat=lat, emission_gs=500, wind_ms=2.0, wind_from_deg=0,
                   temp_c=15, stability="D")  # fmt: skip
    with connect(db_url) as conn, pytest.raises(Conflict, match=r"dispatch .* not installed"):
        evacuation.open_hazmat_incident(conn, None, spec)
    monkeypatch.setenv("CHANGZHI_APPS", "all")
    assert evacuation.dispatch_installed()
