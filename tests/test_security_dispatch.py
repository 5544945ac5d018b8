"""Issue 12: the department rule of dispatch cannot be bypassed in two calls. Only a
supervisor (or the command centre, or an admin) declares an incident joint; a department's
dispatcher closes only an incident of their department with no other agency's unit on it.

Each test was run against the code before its fix and failed there."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gis_core.identity import create_user

# --------------------------------------------------------------------------- departments


@pytest.fixture(scope="module")
def desks(api: Any, reference: object, db_url: str) -> dict[str, dict[str, str]]:
    """Bearer headers of a fire dispatcher, a 120 (medical) dispatcher and a supervisor."""
    suffix = secrets.token_hex(3)
    specs = {
        "fire": (["dispatcher"], "fire"),
        "medical": (["dispatcher"], "medical"),
        "supervisor": (["supervisor"], "command"),
    }
    with psycopg.connect(db_url) as conn:
        for name, (roles, dept) in specs.items():
            create_user(
                conn,
                username=f"sec-{name}-{suffix}",
                password="security-pass-1",
                roles=roles,
                department=dept,
            )
        conn.commit()
    out = {}
    for name in specs:
        r = api.post(
            "/auth/token", data={"username": f"sec-{name}-{suffix}", "password": "security-pass-1"}
        )
        out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


@pytest.fixture
def scene(db_url: str, desks: Any) -> Iterator[tuple[float, float]]:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE ops.unit SET status = 'available'")
        row = conn.execute(
            "SELECT ST_X(geom) + 0.0066, ST_Y(geom) FROM ref.poi WHERE category = 'fire_station'"
            " ORDER BY id LIMIT 1"
        ).fetchone()
        conn.commit()
    yield float(row[0]), float(row[1])
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("UPDATE ops.unit SET status = 'available'")


def _unit(db_url: str, unit_type: str) -> str:
    with psycopg.connect(db_url) as conn:
        return str(
            conn.execute(
                "SELECT id FROM ops.unit WHERE unit_type = %s ORDER BY id LIMIT 1", (unit_type,)
            ).fetchone()[0]
        )


def _incident(api: Any, headers: dict[str, str], scene: tuple[float, float], **more: Any) -> int:
    body = {"incident_type": "traffic_accident", "lon": scene[0], "lat": scene[1], **more}
    r = api.post("/dispatch/incidents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_a_dispatcher_cannot_declare_joint_a_supervisor_can(api, desks, scene, db_url) -> None:
    fire = desks["fire"]
    r = api.post(
        "/dispatch/incidents",
        json={"incident_type": "traffic_accident", "lon": scene[0], "lat": scene[1], "joint": True},
        headers=fire,
    )
    assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    incident = _incident(api, fire, scene)
    r = api.patch(f"/dispatch/incidents/{incident}", json={"joint": True}, headers=fire)
    assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    ambulance = _unit(db_url, "ambulance")
    r = api.post(
        f"/dispatch/incidents/{incident}/assignments", json={"unit_ids": [ambulance]}, headers=fire
    )
    assert r.status_code == 403
    # The supervisor declares it joint: now the fire desk may send the ambulance.
    r = api.patch(
        f"/dispatch/incidents/{incident}", json={"joint": True}, headers=desks["supervisor"]
    )
    assert r.status_code == 200 and r.json()["joint"] is True
    r = api.post(
        f"/dispatch/incidents/{incident}/assignments", json={"unit_ids": [ambulance]}, headers=fire
    )
    assert r.status_code == 201, r.text
    # ... but may not undo the declaration either.
    r = api.patch(f"/dispatch/incidents/{incident}", json={"joint": False}, headers=fire)
    assert r.status_code == 403


def test_closing_needs_the_incident_to_be_the_desks_own(api, desks, scene, db_url) -> None:
    fire, medical = desks["fire"], desks["medical"]
    only_medical = _incident(api, medical, scene, incident_type="medical")
    r = api.post(f"/dispatch/incidents/{only_medical}/close", headers=fire)
    assert r.status_code == 403 and "medical" in r.json()["detail"]
    r = api.patch(f"/dispatch/incidents/{only_medical}", json={"priority": 4}, headers=fire)
    assert r.status_code == 403
    assert api.post(f"/dispatch/incidents/{only_medical}/close", headers=medical).status_code == 200
    # A joint incident with an ambulance still on it: the fire desk may not close it (that
    # would release medical's unit); once medical clears its unit, it may.
    joint = _incident(api, fire, scene)
    api.patch(f"/dispatch/incidents/{joint}", json={"joint": True}, headers=desks["supervisor"])
    ambulance = _unit(db_url, "ambulance")
    made = api.post(
        f"/dispatch/incidents/{joint}/assignments", json={"unit_ids": [ambulance]}, headers=fire
    ).json()["assignments"][0]
    r = api.post(f"/dispatch/incidents/{joint}/close", headers=fire)
    assert r.status_code == 403 and ambulance in r.json()["detail"]
    r = api.post(
        f"/dispatch/assignments/{made['assignment_id']}/status",
        json={"status": "cleared"},
        headers=medical,
    )
    assert r.status_code == 200, r.text
    assert api.post(f"/dispatch/incidents/{joint}/close", headers=fire).status_code == 200
    # The supervisor closes anything.
    other = _incident(api, medical, scene, incident_type="medical")
    assert (
        api.post(f"/dispatch/incidents/{other}/close", headers=desks["supervisor"]).status_code
        == 200
    )
