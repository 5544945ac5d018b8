"""GET /telemetry/health: field devices online, offline and never heard from, for operators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gis_core.identity import create_user

pytestmark = pytest.mark.services

DEPT = "hl-api-qa"


def _token(api: Any, db_url: str, username: str, roles: list[str]) -> dict[str, str]:
    password = f"{username}-pass"
    with psycopg.connect(db_url) as conn:
        known = conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (username,))
        if not known.fetchone():
            create_user(conn, username=username, password=password, roles=roles, department=None)
            conn.commit()
    response = api.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def fleet(db_url: str) -> Iterator[None]:
    """A department of its own with devices in every state: air H-A1 online, H-A2 offline (it
    said so), H-A3 silent for 5 of its 60 s intervals but still flagged online (the workers'
    maintenance has not passed yet), H-A4 never heard from; water gauge H-W1 online, H-W2 never;
    a vehicle H-V1 offline with a position."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO auth.department (code, name_zh, name_en) VALUES (%s, '测试部门', 'QA')"
            " ON CONFLICT DO NOTHING",
            (DEPT,),
        )
        conn.execute(
            """
            INSERT INTO iot.device (id, kind, department_code, name_zh, expected_interval_s)
            VALUES ('H-A1', 'air', %(d)s, '空气一', 60), ('H-A2', 'air', %(d)s, '空气二', 60),
                   ('H-A3', 'air', %(d)s, '空气三', 60), ('H-A4', 'air', %(d)s, '空气四', 60),
                   ('H-W1', 'water_level', %(d)s, '水位一', 600),
                   ('H-W2', 'water_level', %(d)s, '水位二', 600),
                   ('H-V1', 'vehicle', %(d)s, '车一', 5)
            """,
            {"d": DEPT},
        )
        conn.execute(
            """
            INSERT INTO iot.device_state (device_id, kind, ts, received_at, online, reading, geom)
            VALUES ('H-A1', 'air', now(), now(), true, '{}', NULL),
                   ('H-A2', 'air', now() - interval '2 min', now() - interval '2 min', false,
                    '{}', NULL),
                   ('H-A3', 'air', now() - interval '5 min', now() - interval '5 min', true,
                    '{}', NULL),
                   ('H-W1', 'water_level', now() - interval '20 min',
                    now() - interval '20 min', true, '{}', NULL),
                   ('H-V1', 'vehicle', now() - interval '1 hour', now() - interval '1 hour',
                    false, '{}', ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))
            """
        )
        conn.commit()
    yield
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM iot.device_state WHERE device_id LIKE 'H-%'")
        conn.execute("DELETE FROM iot.device WHERE id LIKE 'H-%'")
        conn.execute("DELETE FROM auth.department WHERE code = %s", (DEPT,))
        conn.commit()


def test_health_is_for_operators_only(api, db_url):
    viewer = _token(api, db_url, "hl-api-viewer", ["viewer"])
    refused = api.get("/telemetry/health", headers=viewer)
    assert refused.status_code == 403 and "roles" in refused.json()["detail"]
    assert api.get("/telemetry/health").status_code == 401


def test_health_counts_devices_by_kind(api, db_url, fleet):
    inspector = _token(api, db_url, "hl-api-inspector", ["inspector"])
    response = api.get("/telemetry/health", params={"department": DEPT}, headers=inspector)
    assert response.status_code == 200, response.text
    body = response.json()
    kinds = {k["kind"]: k for k in body["kinds"]}
    assert kinds == {
        "air": {"kind": "air", "total": 4, "online": 1, "offline": 2, "never": 1},
        "water_level": {"kind": "water_level", "total": 2, "online": 1, "offline": 0, "never": 1},
        "vehicle": {"kind": "vehicle", "total": 1, "online": 0, "offline": 1, "never": 0},
    }
    assert body["totals"] == {"total": 7, "online": 2, "offline": 3, "never": 2}
    assert body["offline_total"] == 3
    # Heard from last first; the vehicle's last position comes along.
    assert [d["id"] for d in body["offline"]] == ["H-A2", "H-A3", "H-V1"]
    vehicle = body["offline"][2]
    assert vehicle["lon"] == pytest.approx(113.1) and vehicle["lat"] == pytest.approx(36.2)
    assert vehicle["expected_interval_s"] == 5 and vehicle["name_zh"] == "车一"
    assert vehicle["reported_online"] is False and body["offline"][1]["reported_online"] is True
    assert body["offline"][0]["lon"] is None

    # The offline list for one kind, and cut short: the counts stay whole.
    air = api.get(
        "/telemetry/health",
        params={"department": DEPT, "kind": "air", "limit": 1},
        headers=inspector,
    ).json()
    assert [d["id"] for d in air["offline"]] == ["H-A2"]
    assert air["offline_total"] == 2 and air["totals"]["total"] == 7

    # The whole city holds them too.
    everything = api.get("/telemetry/health", params={"limit": 5000}, headers=inspector).json()
    assert everything["totals"]["total"] >= 7
    assert {"H-A2", "H-A3", "H-V1"} <= {d["id"] for d in everything["offline"]}


def test_health_refuses_bad_parameters_with_a_reason(api, db_url, admin_headers):
    for params, words in (
        ({"kind": "toaster"}, "unknown kind"),
        ({"kind": ""}, "unknown kind"),
        ({"department": "nowhere"}, "unknown department"),
        ({"department": "a\x00b"}, "NUL"),
    ):
        response = api.get("/telemetry/health", params=params, headers=admin_headers)
        assert response.status_code == 400, (params, response.text)
        assert words in response.json()["detail"]
    for params in ({"limit": 0}, {"limit": 5001}, {"limit": "many"}, {"department": "x" * 33}):
        response = api.get("/telemetry/health", params=params, headers=admin_headers)
        assert response.status_code == 422, (params, response.text)
