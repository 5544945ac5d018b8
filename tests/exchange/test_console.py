"""The exchange panel in Chromium (tests/exchange/panel.mjs): the sources, a choropleth on the
console's map, a chart of the real 2020 census, both languages, the apply button of another
department; no request leaves the machine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from apps.exchange.samples import write_samples
from apps.exchange.sync import run_sync
from gis_core.identity import create_user
from tests.support import run_browser_scenario, serve_app

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "exchange" / "panel.mjs"
CONSOLE_DIR = REPO / "web" / "console"
PASSWORD = "exchange-panel-19"
CLERK = {"username": "panel_clerk", "roles": ["planner"], "department": "stats"}
MARKET = {"username": "panel_market", "roles": ["planner"], "department": "market"}


@pytest.fixture(scope="module")
def console(settings: Any, reference: object, db_url: str, tmp_path_factory: Any) -> Iterator[str]:
    from web.app import create_app

    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO auth.department (code, name_zh, name_en) VALUES ('market', '市场监管局',"
            " 'Market regulation') ON CONFLICT DO NOTHING"
        )
        write_samples(conn, tmp_path_factory.mktemp("samples"))
        for who in (CLERK, MARKET):
            conn.execute("DELETE FROM auth.app_user WHERE username = %s", (who["username"],))
            create_user(conn, username=who["username"], password=PASSWORD, roles=who["roles"],
                        department=who["department"])  # fmt: skip
        conn.execute(
            "DELETE FROM exchange.access WHERE department = 'market' AND source_id ="
            " (SELECT id FROM exchange.source WHERE name = 'census_2020')"
        )
        conn.commit()
    for name in ("census_2020", "stats_indicators"):
        assert run_sync(db_url, name, "full")["state"] == "ok"
    with serve_app(create_app(settings)) as base:
        yield base


def test_panel_in_chromium(console: str, artifacts: Path, db_url: str) -> None:
    env = {
        **os.environ,
        "CONSOLE_URL": f"{console}/console",
        "ARTIFACTS": str(artifacts),
        "PASSWORD": PASSWORD,
        "CLERK": json.dumps(CLERK),
        "MARKET": json.dumps(MARKET),
    }
    result = run_browser_scenario(SCRIPT, CONSOLE_DIR, env, {}, timeout=240)
    assert "error" not in result, result
    assert result["external"] == [] and not result["page_errors"], result
    sources = {row[0]: row[1:] for row in result["sources"]}
    assert sources["census_2020"][0] == "第七次全国人口普查（区县）"
    assert sources["census_2020"][2] == "正常" and sources["census_2020"][3] == "12"
    assert "合成数据" in sources["stats_indicators"][0]
    assert result["joined"] == "已关联 12 行，未关联 0 行"
    on_map = {code: value for code, value, _ in result["map"]}
    assert len(on_map) == 12 and on_map["140403"] == 895_280
    # The biggest district is in the darkest class, the smallest in the lightest.
    colours = {code: colour for code, _, colour in result["map"]}
    assert colours["140403"] == "#08306b" and colours["140425"] == "#f7fbff"
    assert len(result["stat_rows"]) == 12
    assert ["常住人口", "潞州区", "2020", "895280"] in result["stat_rows"]
    assert result["note_zh"] == "数据来源：真实统计数据"
    assert result["title_en"] == "Data exchange"
    assert result["headings_en"] == ["Sources and sync state", "Join onto the map", "Statistics"]
    assert result["head_en"][:3] == ["Source", "Owner", "State"]
    assert result["market_buttons"] == ["申请共享"]
    assert result["market_map"] == "暂无可读的数据源（可申请共享）"
    with psycopg.connect(db_url) as conn:
        applied = conn.execute(
            "SELECT a.state, a.requested_by FROM exchange.access a JOIN exchange.source s"
            " ON s.id = a.source_id WHERE s.name = 'census_2020' AND a.department = 'market'"
        ).fetchone()
    assert applied == ("requested", "panel_market")
