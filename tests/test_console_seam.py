"""The console is built from ``GET /apps``, in a real browser (Debian's Chromium).

The platform runs with the seam probe installed (``tests/seam_app``, by configuration alone) on
its own database: the probe's panel mounts through the console's ctx contract (web/console/
panels.js) with its title in both languages, its ``beacon`` kind shows in the live-kinds legend
with its label and its square, and its threshold (lux above 800) flags a beacon over it and not
one under it. ``tests/browser/seam.mjs`` drives the pages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gis_core.identity import create_user
from gis_core.settings import Settings
from tests.support import run_browser_scenario, serve_app

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "seam.mjs"
CONSOLE_DIR = REPO / "web" / "console"
USER, PASSWORD = "seam-viewer", "seam-viewer-pass"
# Two beacons in the city: one over the probe's glare limit (800 lx), one well under it.
HOT, CALM = "SEAM-B-HOT", "SEAM-B-CALM"


@pytest.fixture(scope="module")
def probe_console(probe_settings: Settings, reference: object, db_url: str) -> Iterator[str]:
    from web.app import create_app

    # The relief under the map: the reference dataset's record (its DEM) is the only row of
    # the city's data the probe's own database needs.
    with (
        psycopg.connect(db_url) as source,
        psycopg.connect(probe_settings.database_url) as conn,
        source.cursor().copy("COPY ref.dataset TO STDOUT") as out,
        conn.cursor().copy("COPY ref.dataset FROM STDIN") as into,
    ):
        for block in out:
            into.write(block)
    with psycopg.connect(probe_settings.database_url) as conn:
        create_user(conn, username=USER, password=PASSWORD, roles=["viewer"], department=None)
        for device, lux, lon in ((HOT, 900.0, 113.10), (CALM, 120.0, 113.12)):
            conn.execute(
                "INSERT INTO iot.device (id, kind, name_zh, expected_interval_s)"
                " VALUES (%s, 'beacon', %s, 30)",
                (device, f"测试信标 {device}"),
            )
            conn.execute(
                """
                INSERT INTO iot.device_state (device_id, kind, ts, received_at, online, reading,
                                              geom)
                VALUES (%s, 'beacon', now(), now(), true, jsonb_build_object('lux', %s::float),
                        ST_SetSRID(ST_MakePoint(%s, 36.18), 4326))
                """,
                (device, lux, lon),
            )
        conn.commit()
    with serve_app(create_app(probe_settings)) as base:
        yield base


def test_the_probe_panel_and_kind_come_from_apps(probe_console: str, artifacts: Path) -> None:
    env = {
        **os.environ,
        "CONSOLE_URL": f"{probe_console}/console",
        "ARTIFACTS": str(artifacts),
        "CONSOLE_USER": USER,
        "CONSOLE_PASSWORD": PASSWORD,
        "HOT_BEACON": HOT,
        "CALM_BEACON": CALM,
    }
    result: dict[str, Any] = run_browser_scenario(SCRIPT, CONSOLE_DIR, env, timeout=240)
    assert result["failed_requests"] == []
    assert not result.get("page_errors"), f"the page reported errors: {result['page_errors']}"
    assert result["errors"] == []
    # The panel, mounted in the column it asked for, titled from its own strings.json.
    assert result["zh"]["probe_title"] == "接缝探针"
    assert result["en"]["probe_title"] == "Seam probe"
    assert result["zh"]["probe_column"] == "right"
    # Every panel this viewer may see is mounted: the probe's (no roles), dispatch's (it says
    # the role may not read incidents), the platform's geofences; health is for operators only,
    # so its object exists but shows no button.
    assert result["panels"] == ["geofences", "health", "incidents", "probe"]
    # The kind, in the legend with its label in each language and its square marker.
    assert result["zh"]["beacon_label"] == "信标"
    assert result["en"]["beacon_label"] == "Beacons"
    assert result["zh"]["beacon_checked"] is True
    assert result["zh"]["beacon_glyph"] == ["rect"]
    # Only kinds some device has are listed: the probe's database has beacons only.
    assert result["zh"]["kinds"] == ["beacon"]
    assert result["wall"]["probe_title"] == "接缝探针" and result["wall"]["beacon_label"] == "信标"
    # The kind's threshold, evaluated by the console from GET /apps: 900 lx > 800, 120 lx not.
    assert result["status"] == {"hot": "warning", "calm": "normal"}
    for name in ("seam-console", "seam-console-en", "seam-console-4k"):
        assert (artifacts / f"{name}.png").stat().st_size > 10_000
