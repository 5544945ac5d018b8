"""Geofences on the console, in a real browser (Debian's Chromium).

A dispatcher draws a fence with four clicks on the map and saves it: the API holds the polygon
the clicks made (to a few centimetres, by the map's own projection) and the map draws it. A
bow-tie is refused by the server, the reason shows in the form and nothing is stored; a dragged
vertex fixes it and it is saved under a name made of HTML, which shows as text. A click in the
list zooms to a fence; deleting asks inside the page and removes it from the list, the map and
the API. English; the 4K wall; a viewer sees the fences and no editing controls.
``tests/browser/geofences.mjs`` drives the pages; this module checks the API at each step.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gis_core.identity import create_user
from tests.support import run_browser_scenario, serve_app

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "geofences.mjs"
CONSOLE_DIR = REPO / "web" / "console"
USERS = {
    "gf-dispatcher": ("dispatcher-pass-g", ["dispatcher"]),
    "gf-viewer": ("viewer-pass-g", ["viewer"]),
}
NAME = "GF-东城区测试围栏"
XSS = "<img src=x onerror=alert(1)>"
VIEW = {"center": [113.11, 36.19], "zoom": 14}


def _cleanup(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM iot.geofence WHERE name_zh IN (%s, %s)", (NAME, XSS))


def metres(a: list[float], b: list[float]) -> float:
    """Distance between two lon/lat points a few hundred metres apart (equirectangular)."""
    lat = math.radians((a[1] + b[1]) / 2)
    dx = (a[0] - b[0]) * 111_320 * math.cos(lat)
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


def ring_of(feature: dict[str, Any]) -> list[list[float]]:
    geometry = feature["geometry"]
    assert geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 1
    rings = geometry["coordinates"][0]
    assert len(rings) == 1, "no holes"
    ring: list[list[float]] = rings[0]
    assert ring[0] == ring[-1]
    return ring[:-1]


def same_ring(ring: list[list[float]], clicked: list[list[float]], tol_m: float = 2.0) -> bool:
    """The ring is the clicked points in order (either direction, any start), each within tol."""
    if len(ring) != len(clicked):
        return False
    n = len(ring)
    for candidate in (ring, ring[::-1]):
        for shift in range(n):
            turned = candidate[shift:] + candidate[:shift]
            if all(metres(p, q) < tol_m for p, q in zip(turned, clicked, strict=True)):
                return True
    return False


@pytest.fixture(scope="module")
def accounts(db_url: str, reference: object) -> Iterator[None]:
    with psycopg.connect(db_url) as conn:
        for name, (password, roles) in USERS.items():
            known = conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (name,))
            if not known.fetchone():
                create_user(conn, username=name, password=password, roles=roles, department=None)
        _cleanup(conn)
        conn.commit()
    yield
    with psycopg.connect(db_url) as conn:
        _cleanup(conn)
        conn.commit()


@pytest.fixture(scope="module")
def geofence_console(settings: Any, accounts: None) -> Iterator[str]:
    from web.app import create_app

    with serve_app(create_app(settings)) as base:
        yield base


def test_dispatcher_draws_names_fixes_and_deletes_geofences(
    geofence_console: str, artifacts: Path
) -> None:
    base = geofence_console
    token = httpx.post(
        f"{base}/auth/token",
        data={"username": "gf-viewer", "password": USERS["gf-viewer"][0]},
        timeout=10,
    ).json()["access_token"]

    def ours() -> list[dict[str, Any]]:
        r = httpx.get(f"{base}/geofences", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        return [f for f in r.json()["features"] if f["properties"]["name_zh"] in (NAME, XSS)]

    seen: dict[str, list[dict[str, Any]]] = {}

    def snapshot(name: str) -> Any:
        def take() -> list[dict[str, Any]]:
            seen[name] = ours()
            return [f["id"] for f in seen[name]]

        return take

    steps = {name: snapshot(name) for name in ("saved", "refused", "fixed", "deleted")}
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "ARTIFACTS": str(artifacts),
        "USERS": json.dumps({name: spec[0] for name, spec in USERS.items()}),
        "FENCE_NAME": NAME,
        "XSS_NAME": XSS,
        "VIEW": json.dumps(VIEW),
    }
    result = run_browser_scenario(SCRIPT, CONSOLE_DIR, env, steps, timeout=300)
    assert not result.get("page_errors"), f"the page reported errors: {result['page_errors']}"
    assert result["dialogs"] == [], "no alert, no window.confirm"

    # The panel opened with nothing of ours, inside the map and clear of everything else.
    assert not [r for r in result["before"]["rows"] if r["name"] in (NAME, XSS)]
    assert result["before"]["newButton"] is True and result["before"]["readonly"] is False
    for layout in (result["layout"], result["wall_layout"]):
        assert layout["inside"] and layout["clearOfColumns"] and layout["belowTools"], layout
        assert layout["toolsInside"], layout
    assert result["wall_layout"]["width"] == pytest.approx(2 * result["layout"]["width"], rel=0.02)

    # Drawing: three vertices placed, the preview a polygon through the pointer, the hint shown.
    drawing = result["while_drawing"]
    assert drawing["mode"] == "drawing" and drawing["draft"] == 3 and drawing["drawShown"]
    assert "area" in result["preview"]["parts"] and "preview" in result["preview"]["parts"]
    assert len(result["preview"]["area"]["coordinates"][0]) == 5  # 3 clicks + pointer, closed
    # The double-click closed the ring with the fourth vertex and did not zoom the map.
    assert result["at_form"]["mode"] == "form" and result["at_form"]["draft"] == 4
    assert result["zoom_after_dbl"] == pytest.approx(VIEW["zoom"], abs=1e-6)

    # Saved: in the API with the clicked corners, the right kinds and flags; on the map.
    (made,) = seen["saved"]
    assert made["id"] == result["saved_id"]
    assert made["properties"]["name_zh"] == NAME
    assert made["properties"]["kinds"] == ["air", "vehicle"]
    assert made["properties"]["on_enter"] is True and made["properties"]["on_leave"] is False
    assert same_ring(ring_of(made), result["corners"]), (ring_of(made), result["corners"])
    saved = result["saved"]
    row = next(r for r in saved["rows"] if r["id"] == made["id"])
    assert row["flags"] == ["进入告警"] and "车辆" in row["kinds"] and "空气站" in row["kinds"]
    assert row["selected"] and row["delete"]
    assert made["id"] in saved["drawn"] and saved["fillVisible"] == "visible"
    assert made["id"] in result["drawn_at_middle"], "the fill is rendered inside the fence"
    assert NAME in saved["message"] and saved["mode"] is None and saved["draft"] == 0

    # The bow-tie: the server's reason in the form, the drawing kept, nothing stored.
    refused = result["refused"]
    assert refused["formError"].startswith("服务器拒绝保存：")
    assert "not valid" in refused["formError"] and "Self-intersection" in refused["formError"]
    assert refused["mode"] == "form" and refused["draft"] == 4 and refused["formShown"]
    assert [f["properties"]["name_zh"] for f in seen["refused"]] == [NAME]

    # Fixed by dragging a vertex (the map did not pan), then saved under the hostile name.
    assert result["draft_after_drag"][1] == pytest.approx(result["fixed_to"], abs=1e-9)
    assert result["center_after_drag"] == pytest.approx(VIEW["center"], abs=1e-9)
    xss = next(f for f in seen["fixed"] if f["properties"]["name_zh"] == XSS)
    expected = [result["bow"][0], result["fixed_to"], result["bow"][2], result["bow"][3]]
    assert same_ring(ring_of(xss), expected)
    fixed = result["fixed"]
    assert any(r["name"] == XSS for r in fixed["rows"])
    assert fixed["images"] == 0 and fixed["elementsInNames"] == 0
    assert XSS in fixed["message"]

    # A click in the list brought the whole fence into view, left of the panel.
    assert result["zoomed"]["inView"] and result["zoomed"]["zoom"] > 12
    assert next(r for r in result["after_zoom"]["rows"] if r["id"] == made["id"])["selected"]

    # English.
    english = result["english"]
    assert english["title"] == "Geofences" and english["button"] == "Geofences"
    assert english["newText"] == "New geofence"
    row = next(r for r in english["rows"] if r["id"] == made["id"])
    assert row["flags"] == ["on enter"] and row["kinds"] == "Air stations, Vehicles"
    assert "Click the map to place vertices" in result["english_drawing"]
    assert "Finish" in result["english_drawing"] and "Cancel" in result["english_drawing"]
    assert english["mode"] is None, "Esc closed the English drawing too"

    # Esc drops a drawing with its vertices.
    assert result["two_points"] == 2
    assert result["after_esc"]["mode"] is None and result["after_esc"]["draft"] == 0
    assert result["after_esc"]["drawShown"] is False and result["draft_features_after_esc"] == 0

    # Delete: confirmation in the page (with the name as text), cancel keeps it, delete removes.
    assert NAME in result["confirm_text"] and result["kept_after_cancel"] is True
    assert made["id"] not in [r["id"] for r in result["deleted"]["rows"]]
    assert made["id"] not in result["drawn_after_delete"]
    assert [f["properties"]["name_zh"] for f in seen["deleted"]] == [XSS]
    assert result["closed_visibility"] == "none"

    # The viewer: the list (the hostile name as text), no drawing, no deleting.
    viewer = result["viewer"]
    assert result["viewer_button"] is True
    assert any(r["name"] == XSS for r in viewer["rows"])
    assert viewer["newButton"] is False and viewer["readonly"] is True
    assert not any(r["delete"] for r in viewer["rows"])
    assert result["viewer_mode"] == [None, 0]

    for name in ("geofences-drawing", "geofences-form", "geofences-saved", "geofences-refused",
                 "geofences-xss", "geofences-english", "geofences-confirm", "geofences-4k",
                 "geofences-viewer"):  # fmt: skip
        assert (artifacts / f"{name}.png").stat().st_size > 30_000, name
