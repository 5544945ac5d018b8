"""``changzhi exchange ...`` (tables, JSON, one-line errors) and the scheduler's decisions:
which sources are due, which are late (alarm raised, then cleared by a good run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from apps.exchange.cli import register
from apps.exchange.sync import LATE_RULE, due_sources, late_conditions, run_sync
from gis_core.settings import get_settings
from realtime import rules

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def run(reference: object, settings: Any) -> Iterator[Any]:
    app = typer.Typer()
    register(app)
    patch = pytest.MonkeyPatch()
    patch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, ["exchange", *args])

    yield invoke
    patch.undo()
    get_settings.cache_clear()


def test_seed_sync_and_list(run: Any, tmp_path: Path) -> None:
    result = run("seed", "--folder", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "census_2020: ok · 12 rows" in result.output
    assert "stats_indicators: ok · 180 rows" in result.output  # 12 districts x 3 x 5 years
    listed = {s["name"]: s for s in json.loads(run("sources", "--json").stdout)}
    assert listed["census_2020"]["synthesized"] is False
    assert listed["stats_indicators"]["synthesized"] is True
    synced = run("sync", "census_2020", "--json")
    assert synced.exit_code == 0
    assert json.loads(synced.stdout)["mode"] == "full"  # the census has no change column
    runs = json.loads(run("runs", "census_2020", "--json").stdout)
    assert [r["state"] for r in runs[:2]] == ["ok", "ok"]


def test_errors_are_one_line(run: Any, tmp_path: Path) -> None:
    result = run("sync", "no_such_source")
    assert result.exit_code == 1 and "no source 'no_such_source'" in result.output
    assert "Traceback" not in result.output
    result = run("sync", "census_2020", "--mode", "sideways")
    assert result.exit_code == 1 and "--mode 'sideways'" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = run("add", str(bad))
    assert result.exit_code == 1 and "bad.json" in result.output


def test_due_and_late_sources(reference: object, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    path.write_text("id,amount\nA,1\n", encoding="utf-8")
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO exchange.source (name, title_zh, kind, location, key_column, mapping,"
            " owner, schedule_s, created_at) VALUES ('daily', '日报', 'csv', %s, 'id',"
            " '{\"amount\": \"value\"}', 'command', 3600, now() - interval '3 hours')",
            (str(path),),
        )
        conn.commit()
        assert "daily" in due_sources(conn)  # never run
        late = {c.device_id: c.active for c in late_conditions(conn)}
        assert late["source:daily"] is True  # created 3 h ago, period 1 h, nothing loaded
        rules.apply(conn, late_conditions(conn))
        conn.commit()
    assert run_sync(db_url, "daily", "auto")["state"] == "ok"
    with psycopg.connect(db_url) as conn:
        assert "daily" not in due_sources(conn)  # just ran
        assert {c.device_id: c.active for c in late_conditions(conn)}["source:daily"] is False
        rules.apply(conn, late_conditions(conn))
        conn.commit()
        open_late = conn.execute(
            "SELECT count(*) FROM iot.alarm WHERE device_id = 'source:daily' AND rule = %s"
            " AND cleared_at IS NULL",
            (LATE_RULE,),
        ).fetchone()
        # Two hours later than its period (1 h) it is due again.
        conn.execute(
            "UPDATE exchange.source SET last_run_at = now() - interval '2 hours'"
            " WHERE name = 'daily'"
        )
        assert "daily" in due_sources(conn)
    assert open_late == (0,)
