"""Inspection casework through the whole platform's API: on-site records with photos,
violations and penalties, complaints matched to enterprises (12345 hotline tickets included),
overdue escalation and the quarterly report (its figures move by exactly what was done)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.environment import casework
from gis_core.db import connect
from gis_core.identity import create_user
from gis_core.settings import Settings

pytestmark = pytest.mark.services

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def _token(api: Any, username: str, password: str) -> dict[str, str]:
    r = api.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def staff(api: Any, db_url: str, reference: object) -> dict[str, dict[str, str]]:
    with connect(db_url) as conn:
        for name, roles in (("case-insp", ["inspector"]), ("case-boss", ["supervisor"]),
                            ("case-disp", ["dispatcher"])):  # fmt: skip
            conn.execute("DELETE FROM auth.app_user WHERE username = %s", (name,))
            create_user(conn, username=name, password="pw-" + name * 2, roles=roles,
                        department="environment")  # fmt: skip
        conn.commit()
    return {n: _token(api, n, "pw-" + n * 2) for n in ("case-insp", "case-boss", "case-disp")}


def _enterprise(db_url: str) -> tuple[int, float, float]:
    with connect(db_url) as conn:
        row = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM env.enterprise e WHERE NOT EXISTS"
            " (SELECT 1 FROM env.enterprise o WHERE o.id <> e.id"
            "  AND ST_DWithin(o.geom::geography, e.geom::geography, 50)) ORDER BY id LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1]), float(row[2])


def _report(api: Any, headers: dict[str, str]) -> dict[str, Any]:
    r = api.get("/environment/reports/inspection", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_record_photos_violations_and_the_report(
    api: Any, staff: dict[str, dict[str, str]], db_url: str, settings: Settings
) -> None:
    insp, boss = staff["case-insp"], staff["case-boss"]
    enterprise_id, _, _ = _enterprise(db_url)
    before = _report(api, boss)
    late = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    task = api.post("/environment/tasks", headers=boss, json={
        "title": "现场检查", "due_at": late, "enterprise_id": enterprise_id,
        "assignee": "case-insp"}).json()  # fmt: skip
    body = {"findings": "脱硫设施停运，旁路烟道开启"}
    early = api.post(f"/environment/tasks/{task['id']}/records", headers=insp, json=body)
    assert early.status_code == 409 and "while inspecting" in early.json()["detail"]
    moved = api.post(f"/environment/tasks/{task['id']}/transition", headers=insp,
                     json={"state": "inspecting"})  # fmt: skip
    assert moved.status_code == 200, moved.text
    record = api.post(f"/environment/tasks/{task['id']}/records", headers=insp, json=body)
    assert record.status_code == 201, record.text
    rid = record.json()["id"]

    # Photos: kept under their checksum, the same photo once on disk, type by content.
    files = {"file": ("现场.png", PNG, "image/png")}
    photo = api.post(f"/environment/records/{rid}/photos", headers=insp, files=files)
    assert photo.status_code == 201, photo.text
    digest = hashlib.sha256(PNG).hexdigest()
    assert photo.json()["sha256"] == digest and photo.json()["size_bytes"] == len(PNG)
    assert photo.json()["content_type"] == "image/png"
    stored = casework.photo_dir(settings.platform.var_dir) / digest[:2] / digest
    assert stored.read_bytes() == PNG
    again = api.post(f"/environment/records/{rid}/photos", headers=insp, files=files)
    assert again.status_code == 201 and len(list(stored.parent.iterdir())) == 1
    got = api.get(f"/environment/photos/{photo.json()['id']}", headers=insp)
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    text = {"file": ("fake.jpg", b"just text, named .jpg", "image/jpeg")}
    refused = api.post(f"/environment/records/{rid}/photos", headers=insp, files=text)
    assert refused.status_code == 415 and "JPEG or PNG" in refused.json()["detail"]
    huge = b"\xff\xd8\xff" + bytes(casework.MAX_PHOTO_BYTES)
    big = api.post(f"/environment/records/{rid}/photos", headers=insp,
                   files={"file": ("big.jpg", huge, "image/jpeg")})  # fmt: skip
    assert big.status_code == 413
    exact = b"\xff\xd8\xff" + bytes(casework.MAX_PHOTO_BYTES - 3)  # at the limit: taken
    fits = api.post(f"/environment/records/{rid}/photos", headers=insp,
                    files={"file": ("max.jpg", exact, "image/jpeg")})  # fmt: skip
    assert fits.status_code == 201 and fits.json()["size_bytes"] == casework.MAX_PHOTO_BYTES
    assert api.get("/environment/photos/999999999", headers=insp).status_code == 404

    # Violations and penalties.
    v = {"clause": "大气污染防治法第九十九条", "description": "超标排放",
         "penalty_yuan": 200000, "state": "decided"}  # fmt: skip
    made = api.post(f"/environment/records/{rid}/violations", headers=insp, json=v)
    assert made.status_code == 201, made.text
    assert made.json()["enterprise_id"] == enterprise_id
    no_penalty = api.post(f"/environment/records/{rid}/violations", headers=insp,
                          json={**v, "penalty_yuan": None})  # fmt: skip
    assert no_penalty.status_code == 422 and "penalty_yuan" in no_penalty.json()["detail"]
    negative = api.post(f"/environment/records/{rid}/violations", headers=insp,
                        json={**v, "penalty_yuan": -1})  # fmt: skip
    assert negative.status_code == 422
    found = api.post(f"/environment/records/{rid}/violations", headers=insp,
                     json={**v, "penalty_yuan": None, "state": "found"})  # fmt: skip
    assert found.status_code == 201
    listed = api.get(f"/environment/tasks/{task['id']}/records", headers=insp).json()
    assert [len(listed[0]["photos"]), len(listed[0]["violations"])] == [3, 2]

    # Overdue: escalated once a day, however often asked.
    first = api.post("/environment/tasks/escalate", headers=boss).json()["escalated"]
    assert task["id"] in [e["task_id"] for e in first]
    mine = next(e for e in first if e["task_id"] == task["id"])
    assert 4.9 <= mine["overdue_hours"] <= 6 and mine["assignee"] == "case-insp"
    second = api.post("/environment/tasks/escalate", headers=boss).json()["escalated"]
    assert task["id"] not in [e["task_id"] for e in second]

    after = _report(api, boss)
    assert after["tasks"] - before["tasks"] == 1
    assert after["records"] - before["records"] == 1
    assert after["photos"] - before["photos"] == 3
    assert after["violations"] - before["violations"] == 2
    assert after["penalties_decided_yuan"] - before["penalties_decided_yuan"] == 200000
    assert after["penalties_paid_yuan"] == before["penalties_paid_yuan"]
    assert after["tasks_escalated"] - before["tasks_escalated"] == 1
    assert after["tasks_overdue"] - before["tasks_overdue"] >= 1
    bad = api.get("/environment/reports/inspection?quarter=5", headers=boss)
    assert bad.status_code == 422


def test_complaints_matched_to_enterprises_and_hotline(
    api: Any, staff: dict[str, dict[str, str]], db_url: str
) -> None:
    insp = staff["case-insp"]
    enterprise_id, lon, lat = _enterprise(db_url)
    ticket = f"T-{uuid.uuid4().hex[:10]}"
    body = {"content": "夜间排放刺鼻气味", "lon": lon, "lat": lat + 0.0003,
            "source": "phone", "ticket_id": ticket}  # fmt: skip
    r = api.post("/environment/complaints", headers=insp, json=body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["enterprise_id"] == enterprise_id
    assert c["distance_m"] == pytest.approx(0.0003 * 110_574, rel=0.02)  # ≈ 33 m north
    assert c["candidates"][0]["enterprise_id"] == enterprise_id and c["task_id"] is not None
    task = api.get(f"/environment/tasks/{c['task_id']}", headers=insp).json()
    assert task["enterprise_id"] == enterprise_id and task["state"] == "open"
    twice = api.post("/environment/complaints", headers=insp, json=body)
    assert twice.status_code == 409
    far = api.post("/environment/complaints", headers=insp,
                   json={**body, "ticket_id": None, "lon": 100.0, "lat": 30.0})  # fmt: skip
    assert far.status_code == 201
    assert far.json()["enterprise_id"] is None and far.json()["task_id"] is None
    wrong = api.post("/environment/complaints", headers=insp,
                     json={**body, "ticket_id": None, "source": "pigeon"})  # fmt: skip
    assert wrong.status_code == 422 and "source must be one of" in wrong.json()["detail"]

    # 12345 tickets dispatch imported: the environmental one becomes a matched complaint.
    smoke, lamp = f"H-{uuid.uuid4().hex[:10]}", f"H-{uuid.uuid4().hex[:10]}"
    csv = ("工单编号,诉求内容,经度,纬度\n"
           f"{smoke},工厂烟囱冒黑烟 异味严重,{lon},{lat}\n"
           f"{lamp},路灯不亮,{lon},{lat}\n").encode()  # fmt: skip
    imported = api.post("/dispatch/hotline/import", headers=staff["case-disp"],
                        files={"file": ("12345.csv", csv, "text/csv")})  # fmt: skip
    assert imported.status_code == 200 and imported.json()["created"] == 2, imported.text
    pulled = api.post("/environment/complaints/hotline", headers=insp, json={})
    assert pulled.status_code == 200, pulled.text
    tickets = {c["ticket_id"]: c for c in pulled.json()["complaints"]}
    assert smoke in tickets and lamp not in tickets
    assert tickets[smoke]["source"] == "hotline"
    assert tickets[smoke]["enterprise_id"] == enterprise_id
    again = api.post("/environment/complaints/hotline", headers=insp, json={}).json()
    assert smoke not in {c["ticket_id"] for c in again["complaints"]}
    listed = api.get("/environment/complaints?limit=5000", headers=insp).json()
    assert {ticket, smoke} <= {c["ticket_id"] for c in listed}


def test_watcher_takes_in_hotline_tickets(
    api: Any, staff: dict[str, dict[str, str]], db_url: str
) -> None:
    from apps.environment.watch import watch_once

    _, lon, lat = _enterprise(db_url)
    ticket = f"H-{uuid.uuid4().hex[:10]}"
    csv = f"工单编号,诉求内容,经度,纬度\n{ticket},夜里噪声扰民 粉尘大,{lon},{lat}\n".encode()
    imported = api.post("/dispatch/hotline/import", headers=staff["case-disp"],
                        files={"file": ("12345.csv", csv, "text/csv")})  # fmt: skip
    assert imported.status_code == 200 and imported.json()["created"] == 1, imported.text
    published: list[bytes] = []
    watch_once(db_url, published.append)
    with connect(db_url) as conn:
        row = conn.execute(
            "SELECT source, task_id FROM env.complaint WHERE ticket_id = %s", (ticket,)
        ).fetchone()
    assert row is not None and row[0] == "hotline" and row[1] is not None
    assert any(f'"task_id":{row[1]}'.encode() in p for p in published)
