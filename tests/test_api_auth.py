"""The API shell: health, JSON errors, log-in, roles and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from gis_core.db import head_revision


def test_health_reports_database_and_broker(api):
    body = api.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"]["postgis"].startswith("3.")
    assert body["database"]["schema_revision"] == head_revision()
    assert body["broker"]["status"] == "ok"


def test_openapi_and_json_errors(api):
    assert api.get("/openapi.json").json()["info"]["title"].startswith("Changzhi")
    missing = api.get("/no/such/thing")
    assert missing.status_code == 404 and "detail" in missing.json()
    wrong_method = api.delete("/health")
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()


def test_login_and_identity(api, admin_password):
    bad = api.post("/auth/token", data={"username": "root-admin", "password": "nope-nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "wrong username or password"
    unknown = api.post("/auth/token", data={"username": "nobody", "password": "nope-nope"})
    assert unknown.status_code == 401
    ok = api.post("/auth/token", data={"username": "root-admin", "password": admin_password})
    assert ok.status_code == 200
    token = ok.json()["access_token"]
    me = api.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "root-admin" and me["roles"] == ["admin"]
    assert api.get("/auth/me").status_code == 401
    assert api.get("/auth/me", headers={"Authorization": "Bearer garbage"}).status_code == 401


def test_expired_token_says_so(api, settings, admin_headers):
    user_id = api.get("/auth/me", headers=admin_headers).json()["id"]
    stale = jwt.encode(
        {"sub": str(user_id), "exp": datetime.now(UTC) - timedelta(minutes=1)},
        settings.jwt_secret,
        algorithm="HS256",
    )
    response = api.get("/auth/me", headers={"Authorization": f"Bearer {stale}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    forged = jwt.encode({"sub": str(user_id)}, "another-key-entirely-0123456789-abcdef", "HS256")
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_roles_guard_writes_and_every_write_is_audited(api, admin_headers):
    made = api.post(
        "/admin/users",
        headers=admin_headers,
        json={
            "username": "viewer-1",
            "password": "viewer-password",
            "roles": ["viewer"],
            "department": "water",
        },
    )
    assert made.status_code == 201, made.text
    viewer = api.post("/auth/token", data={"username": "viewer-1", "password": "viewer-password"})
    viewer_headers = {"Authorization": f"Bearer {viewer.json()['access_token']}"}
    forbidden = api.post(
        "/admin/users",
        headers=viewer_headers,
        json={"username": "sneaky", "password": "sneaky-password", "roles": ["admin"]},
    )
    assert forbidden.status_code == 403
    assert api.post("/admin/users", json={"username": "x"}).status_code in (401, 422)
    bad_dept = api.post(
        "/admin/users",
        headers=admin_headers,
        json={
            "username": "v2",
            "password": "viewer-password",
            "roles": ["viewer"],
            "department": "ministry-of-magic",
        },
    )
    assert bad_dept.status_code == 422 and "unknown department" in bad_dept.json()["detail"]
    dup = api.post(
        "/admin/users",
        headers=admin_headers,
        json={"username": "viewer-1", "password": "viewer-password", "roles": ["viewer"]},
    )
    assert dup.status_code == 422 and "already exists" in dup.json()["detail"]

    trail = api.get("/admin/audit", headers=admin_headers, params={"object_type": "user"}).json()
    creations = [e for e in trail if e["action"] == "create"]
    assert creations[0]["username"] == "root-admin"
    assert creations[0]["detail"]["username"] == "viewer-1"
    actions = {e["action"] for e in trail}
    assert {"login", "login_failed", "create"} <= actions
    assert api.get("/admin/audit", headers=viewer_headers).status_code == 403
