"""The dispatcher's workflow on the console, in a real browser (Debian's Chromium via Playwright).

Two dispatchers of the fire brigade on two consoles (two browser contexts: separate sessions,
separate sockets) against a real uvicorn server with the console mounted. Console A takes a
call by address, sees the geocoder's match, the recommendation and its routes on the map, and
assigns the top unit with one click; console B sees all of it live. Then both go for the same
unit while B's live feed lags: exactly one wins and B is told so. ``tests/browser/dispatch.mjs``
drives the pages; this module prepares the city and checks the ledger afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from apps.dispatch import gazetteer
from gis_core.identity import create_user
from tests.support import run_browser_scenario, serve_app

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "dispatch.mjs"
CONSOLE_DIR = REPO / "web" / "console"
USERS = {
    "cd-fire-a": ("fire-pass-a", ["dispatcher"], "fire"),
    "cd-fire-b": ("fire-pass-b", ["dispatcher"], "fire"),
    "cd-viewer": ("viewer-pass-c", ["viewer"], None),
    "cd-super": ("super-pass-d", ["supervisor"], "command"),
}
NONSENSE = "火星基地第九号发射塔"


def _reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE ops.incident CASCADE")
    conn.execute("TRUNCATE ops.gps_suspect")
    conn.execute("UPDATE ops.unit SET status = 'available'")


@pytest.fixture(scope="module")
def city(db_url: str, reference: object) -> Iterator[dict[str, Any]]:
    """No incidents, every unit available and live at its station, the accounts, and an
    address in town (a unique place name near the first fire station)."""
    with psycopg.connect(db_url) as conn:
        for name, (password, roles, dept) in USERS.items():
            known = conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (name,))
            if not known.fetchone():
                create_user(conn, username=name, password=password, roles=roles, department=dept)
        _reset(conn)
        conn.execute(
            """
            INSERT INTO iot.device_state (device_id, kind, ts, geom, reading, online)
            SELECT u.device_id, 'vehicle', now(), p.geom, '{}', true
            FROM ops.unit u JOIN ref.poi p ON p.id = u.station_poi_id
            WHERE u.device_id IS NOT NULL
            ON CONFLICT (device_id) DO UPDATE SET ts = now(), geom = excluded.geom, online = true
            """
        )
        station = conn.execute(
            "SELECT geom FROM ref.poi WHERE category = 'fire_station' ORDER BY id LIMIT 1"
        ).fetchone()
        place = conn.execute(
            """
            SELECT p.name_zh FROM ref.poi p
            WHERE p.category IN ('school', 'hospital', 'police_station')
              AND ST_DWithin(p.geom::geography, %s::geography, 6000)
              AND (SELECT count(*) FROM ref.poi q WHERE q.name_zh = p.name_zh) = 1
            ORDER BY p.geom <-> %s LIMIT 1
            """,
            (station[0], station[0]),
        ).fetchone()
        assert place, "the reference city has a named place near a fire station"
        match = gazetteer.geocode(gazetteer.gazetteer_for(conn), place[0])
        conn.commit()
    yield {"address": place[0], "match": match}
    with psycopg.connect(db_url) as conn:
        _reset(conn)
        conn.execute(
            "DELETE FROM iot.device_state WHERE device_id IN (SELECT device_id FROM ops.unit)"
        )
        conn.commit()


@pytest.fixture(scope="module")
def dispatch_console(settings: Any, city: dict[str, Any]) -> Iterator[str]:
    """The platform (API, live feed, console) on a free port, after the city is prepared."""
    from web.app import create_app

    app = create_app(settings)
    with serve_app(app) as base:
        yield base


def run_dispatch(base: str, artifacts: Path, extra: dict[str, str], db_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "ARTIFACTS": str(artifacts),
        "USERS": json.dumps({name: spec[0] for name, spec in USERS.items()}),
        **extra,
    }

    def declare_joint() -> None:
        # The supervisor declares the fire consoles' open incident joint.
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT max(id) FROM ops.incident WHERE closed_at IS NULL"
            ).fetchone()
        login = httpx.post(
            f"{base}/auth/token", data={"username": "cd-super", "password": USERS["cd-super"][0]}
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        answer = httpx.patch(
            f"{base}/dispatch/incidents/{row[0] if row else 0}",
            json={"joint": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text

    result = run_browser_scenario(
        SCRIPT, CONSOLE_DIR, env, steps={"joint": declare_joint}, timeout=240
    )
    assert not result.get("page_errors"), f"the page reported errors: {result['page_errors']}"
    return result


def test_two_consoles_take_a_call_assign_and_race_for_a_unit(
    dispatch_console: str, artifacts: Path, city: dict[str, Any], db_url: str
) -> None:
    match = city["match"]
    result = run_dispatch(
        dispatch_console,
        artifacts,
        {"ADDRESS": city["address"], "NONSENSE": NONSENSE},
        db_url,
    )
    # Call taking: a nonsense address answers with clickable suggestions, a real one with the
    # geocoder's match and confidence.
    assert result["suggestions"] >= 1
    assert "未找到" in result["unmatched_text"]
    assert match["match"] in result["match_text"]
    assert f"{round(match['confidence'] * 100)}%" in result["match_text"]
    incident_id = result["incident_id"]
    # The recommendation: ranked units with ETAs, their routes on the map.
    assert result["candidates"] >= 2
    assert result["route_lines"] >= 2, "every candidate's road route is in the map source"
    assert result["route_lines_drawn"] > 0, "the routes are drawn"
    assert result["emphasised_routes"] == 1
    assert result["eta_text"] and ":" in result["eta_text"]
    assert result["incident_in_view"] is True
    top = result["top_unit"]
    # Console B, without a reload: the incident, the unit's status, the timeline, live.
    assert result["b_unit_status"] == "dispatched"
    assert result["b_unit_status_after_en_route"] == "en_route"
    assert result["b_timeline"][:2] == ["created", "dispatched"]
    assert result["b_reloads"] == 0 and result["a_reloads"] == 0
    # The race: B's feed lagged, B tried A's unit, B was told and its list corrected.
    raced = result["raced_unit"]
    assert raced != top
    assert result["conflict_text"].startswith("冲突")
    assert raced in result["conflict_text"]
    assert result["raced_still_offered_on_b"] is False
    assert result["a_timeline"][:2] == ["created", "dispatched"]
    # Joint: the other agencies' units come into view on the other console too.
    assert result["ambulance_after_joint_on_b"] is True
    # A call placed with a click on the map lands where the click was.
    second = result["second"]
    assert second["method"] == "coordinates"
    assert second["lon"] == pytest.approx(result["aimed_at"][0], abs=1e-5)
    assert second["lat"] == pytest.approx(result["aimed_at"][1], abs=1e-5)
    assert f"{result['aimed_at'][0]:.5f}" in result["picked_text"]
    # Closed by A: B's list drops it, B's panel says so, no routes and no assign buttons left.
    closed = result["b_closed"]
    assert closed["timeline"][0] == "created" and closed["timeline"][-1] == "closed"
    assert closed["routes"] == 0 and closed["assign_buttons"] == 0
    # Roles: a viewer gets no controls (and, as before, no incident list).
    assert result["viewer_new_button"] is False and result["viewer_assign_buttons"] == 0
    assert result["dispatcher_new_button"] is True
    assert result["english_heading"] == "Timeline"
    for name in ("dispatch-unmatched", "dispatch-new", "dispatch-recommend", "dispatch-b-live",
                 "dispatch-conflict", "dispatch-closed", "dispatch-english",
                 "dispatch-laptop"):  # fmt: skip
        assert (artifacts / f"{name}.png").stat().st_size > 30_000, name
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT unit_id, assigned_by FROM ops.assignment WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        ).fetchall()
        incident = conn.execute(
            "SELECT address, geocode->>'match', status FROM ops.incident WHERE id = %s",
            (incident_id,),
        ).fetchone()
    assert rows == [(top, "cd-fire-a"), (raced, "cd-fire-a")]
    assert incident == (city["address"], match["match"], "closed")
