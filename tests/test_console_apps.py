"""Every application's console panel, in a real browser (Debian's Chromium).

For each application with a panel (flood, environment, registry, traffic, water) a user whose
one role allows it logs in, opens the application's tab and must see figures this test reads
from the same API on the reference dataset, in Chinese and in English, with no page error and
no request leaving the machine; the tabs are exactly the applications the role may use. A
fixture application whose panel throws in ``mount(ctx)`` (``tests/broken_panel_app``) shows
one line in that panel's place while the rest of the wall keeps working.
``tests/browser/apps.mjs`` drives the pages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gis_core.application import installed
from gis_core.db import connect
from gis_core.identity import create_user
from gis_core.settings import Settings
from tests.support import run_browser_scenario, serve_app

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "apps.mjs"
CONSOLE_DIR = REPO / "web" / "console"
WITH_BROKEN = "all,tests.broken_panel_app"
# One user per role the panels name; each application is opened by a role it lists.
ROLES = ("planner", "inspector", "registrar", "dispatcher", "viewer")
OPENED_BY = {
    "flood": "planner",
    "environment": "inspector",
    "registry": "registrar",
    "traffic": "dispatcher",
    "water": "planner",
}
# Rain in the last hour at every rain gauge: 1, 3, 5, 7 or 9 mm (the reference data has none).
RAIN_MM = (1.0, 3.0, 5.0, 7.0, 9.0)


def user(role: str) -> tuple[str, str]:
    return f"apps-{role}", f"{role}-pass-apps"


def js_number(value: float) -> str:
    """A number as JavaScript's String() writes it (12.0 -> '12', 12.5 -> '12.5')."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def may_see(panel: dict[str, Any], roles: list[str]) -> bool:
    """The console's rule (web/console/panels.js): no roles is everyone, admin sees all."""
    wanted = panel["roles"]
    return not wanted or "admin" in roles or any(r in roles for r in wanted)


@pytest.fixture(scope="module")
def app_users(db_url: str, reference: object) -> None:
    with connect(db_url) as conn:
        for role in ROLES:
            name, password = user(role)
            found = conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (name,))
            if not found.fetchone():
                create_user(conn, username=name, password=password, roles=[role], department=None)
        conn.commit()


@pytest.fixture(scope="module")
def rain_now(db_url: str, reference: object) -> Iterator[list[str]]:
    """A reading ten minutes ago at every rain gauge, as the ingest would leave it (the reading
    and the gauge's latest state); both taken away afterwards."""
    at = datetime.now(UTC) - timedelta(minutes=10)
    with connect(db_url) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM iot.device WHERE kind = 'rain'"))
        had = {
            r[0] for r in conn.execute("SELECT device_id FROM iot.device_state WHERE kind = 'rain'")
        }
        assert not had, "the reference dataset has no rain readings of its own"
        rows = [
            (d, at, orjson.dumps({"mm": RAIN_MM[k % len(RAIN_MM)]}).decode())
            for k, d in enumerate(ids)
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, seq, reading)"
                " VALUES (%s, 'rain', %s, NULL, %s::jsonb)",
                rows,
            )
            cur.executemany(
                "INSERT INTO iot.device_state (device_id, kind, ts, reading)"
                " VALUES (%s, 'rain', %s, %s::jsonb)",
                rows,
            )
        conn.commit()
    yield ids
    with connect(db_url) as conn:
        conn.execute(
            "DELETE FROM iot.telemetry WHERE kind = 'rain' AND ts = %s AND device_id = ANY(%s)",
            (at, ids),
        )
        conn.execute("DELETE FROM iot.device_state WHERE device_id = ANY(%s)", (ids,))
        conn.commit()


@pytest.fixture(scope="module")
def console_base(settings: Settings, app_users: None) -> Iterator[str]:
    """The platform with every application and the broken-panel fixture app installed (it has
    no tables, so it shares the session's database)."""
    from web.app import create_app

    with serve_app(create_app(settings, apps=installed(WITH_BROKEN))) as base:
        yield base


def expected_figures(name: str, api: Any, headers: dict[str, str]) -> tuple[dict, str]:
    """The texts the pane must show, read from the API: {"zh": [...], "en": [...]}, and what
    the scenario types in the panel's search box (if anything)."""

    def get(path: str) -> Any:
        response = api.get(path, headers=headers)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    if name == "flood":
        rain = get("/flood/rain?window=3h&method=kriging")
        peak = js_number(rain["grid"]["max_mm"])
        assert rain["grid"]["max_mm"] > 0
        return {"zh": [f"最大 {peak} mm"], "en": [f"max {peak} mm"]}, ""
    if name == "environment":
        sources = get("/environment/sources")
        outlets = sum(len(s["outlets"]) for s in sources)
        assert sources and outlets
        first = sources[0]["enterprise"]["name_zh"]
        return {
            "zh": [f"{len(sources)} 个排放源，{outlets} 个排放口", first],
            "en": [f"{len(sources)} sources, {outlets} outlets", first],
        }, ""
    if name == "registry":
        rights = get("/registry/rights?q=公司")
        assert rights
        licence = rights[0]["license_no"]
        return {
            "zh": [f"找到 {len(rights)} 项矿业权", licence],
            "en": [f"{len(rights)} rights found", licence],
        }, "公司"
    if name == "traffic":
        junctions = get("/traffic/junctions")
        faults = sum(j["state"] == "fault" for j in junctions)
        assert junctions
        first = junctions[0]["name_zh"]
        return {
            "zh": [f"{len(junctions)} 个信号路口，{faults} 个故障", first],
            "en": [f"{len(junctions)} signalised junctions, {faults} in fault", first],
        }, ""
    if name == "water":
        permit = get("/water/permits")["permits"][0]
        quota = f"{round(permit['annual_quota_m3']):,}"
        return {
            "zh": [permit["holder_name"], quota, "取水许可"],
            "en": [permit["holder_name"], quota, "Water-use permits"],
        }, ""
    raise AssertionError(name)


def scenario(base: str, artifacts: Path, role: str, app: str, **extra: str) -> dict[str, Any]:
    name, password = user(role)
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "ARTIFACTS": str(artifacts),
        "CONSOLE_USER": name,
        "CONSOLE_PASSWORD": password,
        "APP": app,
        **extra,
    }
    return run_browser_scenario(SCRIPT, CONSOLE_DIR, env, timeout=480)


@pytest.mark.parametrize("name", list(OPENED_BY))
def test_each_application_panel_shows_its_figures_in_both_languages(
    name: str,
    console_base: str,
    rain_now: list[str],
    api: Any,
    admin_headers: dict[str, str],
    artifacts: Path,
) -> None:
    role = OPENED_BY[name]
    listed = {a["name"]: a for a in api.get("/apps").json()["applications"]}
    tabs = [
        a["name"]
        for a in listed.values()
        if a["name"] != "broken_panel" and any(may_see(p, [role]) for p in a["panels"])
    ]
    texts, search = expected_figures(name, api, admin_headers)
    result = scenario(
        console_base,
        artifacts,
        role,
        name,
        EXPECT=orjson.dumps(texts).decode(),
        SEARCH=search,
    )
    assert not result["page_errors"], result["page_errors"]
    for lang in ("zh", "en"):
        seen = result[lang]
        missing = [x for x in texts[lang] if x not in seen["pane"]]
        assert not missing, f"{name} ({lang}) does not show {missing}; it shows:\n{seen['pane']}"
        assert seen["tab"] == listed[name][f"title_{lang}"]
        assert seen["shown"] == name and seen["visible_panes"] == [name]
        # The tabs are the applications this role may use (the broken fixture app lists no
        # roles, so every user also has its tab, last).
        assert seen["tabs"] == [*tabs, "broken_panel"]
        # Only the shown application's buttons are in the map's tool bar.
        assert all(b == name for b in seen["app_buttons"]), seen["app_buttons"]
        assert [e["panel"] for e in seen["panel_errors"]] == ["broken"]
        assert seen["errors"] == [] and seen["problems"] == []
    wall = result["wall"]
    assert not [x for x in texts["zh"] if x not in wall["pane"]]
    assert wall["problems"] == []
    assert result["other"]["visible"] and result["other"]["shown"] != name
    assert result["layers_open"] is True
    for size in ("1920-zh", "1920-en", "3840-zh"):
        assert (artifacts / f"apps-{name}-{size}.png").stat().st_size > 10_000


def test_a_panel_that_throws_leaves_one_line_and_the_wall_working(
    console_base: str, artifacts: Path
) -> None:
    result = scenario(
        console_base,
        artifacts,
        "viewer",
        "broken_panel",
        EXPECT=orjson.dumps({"zh": ["正常面板"], "en": ["Steady panel"]}).decode(),
    )
    # The TypeError is contained: not a page error, one line where the panel would be.
    assert not result["page_errors"], result["page_errors"]
    for lang, title in (("zh", "坏面板"), ("en", "Broken")):
        seen = result[lang]
        assert [e["panel"] for e in seen["panel_errors"]] == ["broken"]
        assert "null" in seen["panel_errors"][0]["error"]
        [(panel, line)] = seen["error_lines"]
        assert panel == "broken" and title in line and "null" in line
        # Its neighbour in the same application mounted, and so did the rest of the wall.
        assert ("正常面板" if lang == "zh" else "Steady panel") in seen["pane"]
        # What it had put on the wall before it threw is taken away with it.
        assert "半个面板" not in seen["pane"] and "half a panel" not in seen["pane"]
        assert seen["errors"] == [] and seen["problems"] == []
    # A viewer: dispatch's panel lists no roles, nor does the fixture's; no other app's tab.
    assert result["zh"]["tabs"] == ["dispatch", "broken_panel"]
    assert result["other"]["shown"] == "dispatch" and result["other"]["visible"]
    assert result["other"]["children"] >= 1
    assert result["layers_open"] is True
