"""The devices & data quality panel on the console, in a real browser (Debian's Chromium).

An inspector opens the panel from the map toolbar: devices by kind, the offline ones (one click
flies the map to the last position), the last day's refused messages by reason and the latest
of them, filtered by reason and by device; a payload carrying HTML stays text; a new refused
message appears without a click; English throughout; the 4K wall; a viewer sees no button.
``tests/browser/health.mjs`` drives the pages; this module prepares the devices and letters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gis_core.identity import create_user
from tests.support import run_browser_scenario, serve_app

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "health.mjs"
CONSOLE_DIR = REPO / "web" / "console"
USERS = {
    "hl-inspector": ("inspector-pass-h", ["inspector"]),
    "hl-viewer": ("viewer-pass-h", ["viewer"]),
}
OFFLINE = "HL-OFF-1"
OFFLINE_AT = (113.05, 36.25)
XSS = "<img src=x onerror=alert(1)>"
XSS_PAYLOAD = '{"pm25": ' + XSS + "}"
LONG = '{"pm25": ' + ", ".join(str(i) for i in range(200)) + "}"


def _cleanup(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM iot.dead_letter WHERE device_id LIKE 'HL-%'")
    conn.execute("DELETE FROM iot.device_state WHERE device_id LIKE 'HL-%'")
    conn.execute("DELETE FROM iot.device WHERE id LIKE 'HL-%'")


@pytest.fixture(scope="module")
def field(db_url: str, reference: object) -> Iterator[dict[str, Any]]:
    """Three air stations of our own (one online, one offline with a position, one never
    heard from) and refused messages: one whose payload is HTML, one out of the area, one
    long one, one from a device nobody registered."""
    with psycopg.connect(db_url) as conn:
        for name, (password, roles) in USERS.items():
            known = conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (name,))
            if not known.fetchone():
                create_user(conn, username=name, password=password, roles=roles, department=None)
        _cleanup(conn)
        conn.execute(
            """
            INSERT INTO iot.device (id, kind, name_zh, expected_interval_s) VALUES
                ('HL-ON-1', 'air', '测试空气站（在线）', 60),
                ('HL-OFF-1', 'air', '测试空气站（离线）', 60),
                ('HL-NEVER-1', 'air', '测试空气站（未上报）', 300)
            """
        )
        conn.execute(
            """
            INSERT INTO iot.device_state (device_id, kind, ts, received_at, online, reading, geom)
            VALUES ('HL-ON-1', 'air', now(), now(), true, '{"pm25": 31}', NULL),
                   ('HL-OFF-1', 'air', now() - interval '4 min', now() - interval '4 min', false,
                    '{"pm25": 12}', ST_SetSRID(ST_MakePoint(%s, %s), 4326))
            """,
            OFFLINE_AT,
        )
        letters = [
            ("bad_json", OFFLINE, "Expecting value: line 1 column 10", XSS_PAYLOAD),
            ("out_of_area", "HL-ON-1", "lon 121.5, lat 40.1 is outside the city", '{"lon": 121.5}'),
            ("bad_value", OFFLINE, "pm25: expected a finite number", LONG),
            ("unknown_device", "HL-GHOST-9", "not in the device registry", '{"pm25": 3}'),
        ]
        xss_at = None
        for k, (reason, device, detail, payload) in enumerate(letters):
            row = conn.execute(
                """
                INSERT INTO iot.dead_letter (received_at, topic, device_id, reason, detail,
                                             payload, payload_bytes)
                VALUES (now() - make_interval(mins => %s), %s, %s, %s, %s, %s, %s)
                RETURNING received_at
                """,
                (
                    10 - k,
                    f"changzhi/air/{device}/telemetry",
                    device,
                    reason,
                    detail,
                    payload,
                    len(payload.encode()),
                ),
            ).fetchone()
            assert row is not None
            if reason == "bad_json":
                xss_at = row[0]
        conn.commit()
    yield {"xss_at": xss_at}
    with psycopg.connect(db_url) as conn:
        _cleanup(conn)
        conn.commit()


@pytest.fixture(scope="module")
def health_console(settings: Any, field: dict[str, Any]) -> Iterator[str]:
    from web.app import create_app

    with serve_app(create_app(settings)) as base:
        yield base


def run_health(base: str, artifacts: Path, db_url: str) -> dict[str, Any]:

    def new_letter() -> dict[str, Any]:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "INSERT INTO iot.dead_letter (topic, device_id, reason, detail, payload,"
                " payload_bytes) VALUES ('changzhi/air/HL-OFF-1/status', %s, 'bad_status',"
                " 'status is online or offline', 'maybe', 5) RETURNING id",
                (OFFLINE,),
            ).fetchone()
            conn.commit()
        assert row is not None
        return {"id": str(row[0])}

    steps = {"new_letter": new_letter}
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "ARTIFACTS": str(artifacts),
        "USERS": json.dumps({name: spec[0] for name, spec in USERS.items()}),
        "OFFLINE_DEVICE": OFFLINE,
        "XSS_PAYLOAD": XSS,
    }
    result = run_browser_scenario(SCRIPT, CONSOLE_DIR, env, steps, timeout=240)
    assert not result.get("page_errors"), f"the page reported errors: {result['page_errors']}"
    return result


def test_operator_sees_device_health_and_refused_messages(
    health_console: str, artifacts: Path, field: dict[str, Any], db_url: str
) -> None:
    result = run_health(health_console, artifacts, db_url)
    assert result["button_visible"] is True
    first, data = result["first"], result["data"]

    # Devices by kind: every row shows the API's figures, and the air row holds ours.
    for k in data["kinds"]:
        assert first["kinds"][k["kind"]][1:5] == [
            str(k["online"]),
            str(k["offline"]),
            str(k["never"]),
            str(k["total"]),
        ]
    tot = data["totals"]
    assert first["totals"][1:5] == [str(tot[x]) for x in ("online", "offline", "never", "total")]
    with psycopg.connect(db_url) as conn:
        air_total = conn.execute("SELECT count(*) FROM iot.device WHERE kind = 'air'").fetchone()
        all_total = conn.execute("SELECT count(*) FROM iot.device").fetchone()
    assert air_total and all_total
    assert first["kinds"]["air"][0] == "空气站"
    assert int(first["kinds"]["air"][4]) == air_total[0] and tot["total"] == all_total[0]
    air = next(k for k in data["kinds"] if k["kind"] == "air")
    assert air["online"] >= 1 and air["offline"] >= 1 and air["never"] >= 1

    # The offline list for air stations holds ours; a click flies the map to it.
    assert OFFLINE in result["air_only"]["offline"]
    assert result["center"] == pytest.approx(list(OFFLINE_AT), abs=1e-4)
    assert result["focus"] == pytest.approx(list(OFFLINE_AT), abs=1e-9)

    # Refused in the last day, by reason, with its readable name.
    for code in ("bad_json", "out_of_area", "bad_value", "unknown_device"):
        assert first["reasons"][code][1] == f"{data['counts'][code]:,}"
    assert first["reasons"]["bad_json"][0] == "JSON 格式错误"
    assert first["reasons"]["out_of_area"][0] == "超出市域范围"

    # The hostile payload: its characters on screen, no element made of it, no dialog.
    xss = result["xss_letter"]
    assert xss and XSS in xss["payload"] and xss["device"] == OFFLINE
    assert xss["pill"] == "JSON 格式错误"
    beijing = field["xss_at"].astimezone(ZoneInfo("Asia/Shanghai"))
    assert beijing.strftime("%H:%M:%S") in xss["time"]
    assert beijing.strftime("%Y/%m/%d") in xss["time"]
    assert xss["size"] == f"{len(XSS_PAYLOAD.encode())} 字节"
    assert first["images"] == 0 and first["elementsInPayloads"] == 0
    assert result["dialogs"] == []
    long = next(x for x in first["letters"] if x["reason"] == "bad_value")
    assert long["payload"].endswith("…") and len(long["payload"]) < len(LONG)

    # Filters: by reason (the select, then a reason row), by device.
    assert result["by_json"] and {x["reason"] for x in result["by_json"]} == {"bad_json"}
    assert any(XSS in x["payload"] for x in result["by_json"])
    assert result["by_area"] and {x["reason"] for x in result["by_area"]} == {"out_of_area"}
    assert result["select_after_row"] == "out_of_area"
    assert {x["device"] for x in result["by_device"]} == {OFFLINE}
    assert {x["reason"] for x in result["by_device"]} >= {"bad_json", "bad_value"}

    # Auto-refresh brought the new one within a refresh period (12 s) and a bit.
    assert result["auto_ms"] < 16_000

    # English.
    english = result["english"]
    assert english["title"] == "Devices & data quality"
    assert english["button"] == "Devices & data quality"
    assert english["head"][:5] == ["Kind", "Online", "Offline", "Never reported", "Total"]
    assert english["kinds"]["air"][0] == "Air stations"
    assert english["reasons"]["bad_json"][0] == "Malformed JSON"
    assert english["reasons"]["unknown_device"][0] == "Unregistered device"
    assert any(x["pill"] == "Malformed JSON" for x in english["letters"])
    assert any(x["size"].endswith(" B") for x in english["letters"])

    # Closed, it asks nothing; on both screens it sits inside the map, clear of the columns.
    assert result["requests_while_closed"] == 0
    for layout in (result["layout"], result["wall_layout"]):
        assert layout["inside"] and layout["clearOfColumns"] and layout["belowTools"], layout
    assert result["wall_layout"]["width"] == pytest.approx(2 * result["layout"]["width"], rel=0.02)

    # A viewer: no button, no panel, not one request for it.
    assert result["viewer_button"] is False and result["viewer_panel"] is False
    assert result["viewer_requests"] == 0

    for name in ("health-open", "health-offline-focus", "health-filtered", "health-english",
                 "health-4k", "health-viewer"):  # fmt: skip
        assert (artifacts / f"{name}.png").stat().st_size > 30_000, name
