"""``changzhi environment ...``: commands work against the database; a user error is one red
line and exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from apps.environment.cli import register
from gis_core.settings import Settings, get_settings

pytestmark = pytest.mark.services


@pytest.fixture()
def cli(settings: Settings, reference: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    try:
        yield lambda *args: CliRunner().invoke(app, ["environment", *args])
    finally:
        get_settings.cache_clear()


def test_aqi_json_and_bad_standard(cli: Any) -> None:
    ok = cli("aqi", "--scope", "city", "--start", "2026-11-02", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output.strip().splitlines()[-1])["scope"] == "city"
    bad = cli("aqi", "--standard", "HJ 633-1999")
    assert bad.exit_code == 1 and "standard must be one of" in bad.output
    assert "Traceback" not in bad.output


def test_plume_and_logger_password(cli: Any, settings: Settings) -> None:
    from gis_core.db import connect

    with connect(settings.database_url) as conn:
        lon, lat, outlet = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom), id FROM env.outlet ORDER BY id DESC LIMIT 1"
        ).fetchone()
    where = ["--lon", str(lon), "--lat", str(lat), "--emission-gs", "50"]
    weather = ["--wind-from-deg", "270", "--temp-c", "10", "--stability", "C"]
    run = cli("plume", *where, "--wind-ms", "3", *weather)
    assert run.exit_code == 0, run.output
    assert "stability C" in run.output
    calm = cli("plume", *where, "--wind-ms", "0", *weather)
    assert calm.exit_code == 1 and "calm" in calm.output
    pw = cli("logger-password", str(outlet), "--password", "654321")
    assert pw.exit_code == 0 and "PW=654321" in pw.output
    missing = cli("logger-password", "NOPE")
    assert missing.exit_code == 1 and "no outlet" in missing.output


def test_plume_incident_opens_dispatch_incident(cli: Any, settings: Settings) -> None:
    from gis_core.db import connect

    with connect(settings.database_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c FROM ref.admin_area"
            " WHERE level = 'city') x"
        ).fetchone()
    where = ["--lon", str(lon), "--lat", str(lat), "--emission-gs", "300"]
    weather = ["--wind-ms", "2", "--wind-from-deg", "180", "--temp-c", "10", "--stability", "D"]
    run = cli("plume", *where, *weather, "--incident", "--evacuate-ugm3", "200")
    assert run.exit_code == 0, run.output
    assert "hazmat incident" in run.output
    incident_id = int(run.output.split("hazmat incident ")[1].split()[0])
    with connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT i.incident_type, i.source, e.threshold_ugm3, ST_Y(ST_Centroid(e.geom)) > %s"
            " FROM ops.incident i JOIN env.evacuation_area e ON e.incident_id = i.id"
            " WHERE i.id = %s",
            (lat, incident_id),
        ).fetchone()
    assert row == ("hazmat", "system", 200.0, True)  # a south wind: evacuate northwards
    nothing = cli("plume", *where, *weather, "--incident", "--evacuate-ugm3", "1e9")
    assert nothing.exit_code == 1 and "nothing to evacuate" in nothing.output


def test_upwind_ranks_and_refuses(cli: Any, settings: Settings) -> None:
    from gis_core.db import connect

    with connect(settings.database_url) as conn:
        station = conn.execute(
            "SELECT id FROM iot.device WHERE kind = 'air' ORDER BY id LIMIT 1"
        ).fetchone()[0]
    weather = ["--wind-ms", "3", "--wind-from-deg", "0", "--stability", "D"]
    run = cli("upwind", station, "--pollutant", "no2", *weather, "--json")
    assert run.exit_code == 0, run.output
    answer = json.loads(run.output.strip().splitlines()[-1])
    assert answer["emitted_as"] == "nox_mgm3" and answer["weather"]["stability"] == "D"
    shown = [s["contribution_ugm3"] for s in answer["sources"]]
    assert shown == sorted(shown, reverse=True)
    assert cli("upwind").exit_code == 1
    missing = cli("upwind", "--exceedance", "999999999")
    assert missing.exit_code == 1 and "no exceedance 999999999" in missing.output
    o3 = cli("upwind", station, "--pollutant", "o3", *weather)
    assert o3.exit_code == 1 and "no registered source emits" in o3.output
    assert "Traceback" not in o3.output + missing.output


def test_report_and_stats_commands(cli: Any, tmp_path: Any) -> None:
    pdf = tmp_path / "month.pdf"
    run = cli("report", "--month", "2026-11", "--out", str(pdf))
    assert run.exit_code == 0, run.output
    assert pdf.read_bytes().startswith(b"%PDF")
    bad = cli("report", "--month", "11/2026", "--out", str(pdf))
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output
    stats = cli("stats", "loads", "--start", "2026-11-01", "--end", "2026-11-30")
    assert stats.exit_code == 0, stats.output
    assert all(json.loads(line)["period"] == "2026-11-01" for line in stats.output.splitlines())
    wrong = cli("stats", "weights", "--start", "2026-11-01", "--end", "2026-11-30")
    assert wrong.exit_code == 1 and "loads, rates or aqi-days" in wrong.output


def test_inspection_report_and_escalate(cli: Any) -> None:
    run = cli("inspection-report", "--year", "2026", "--quarter", "4")
    assert run.exit_code == 0, run.output
    report = json.loads(run.output.strip().splitlines()[-1])
    assert report["start"] == "2026-10-01T00:00:00+08:00" and "tasks_by_state" in report
    bad = cli("inspection-report", "--year", "2026", "--quarter", "5")
    assert bad.exit_code == 1 and "quarter must be 1..4" in bad.output
    esc = cli("escalate")
    assert esc.exit_code == 0 and "overdue tasks escalated" in esc.output
