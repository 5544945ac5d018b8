"""``changzhi water ...`` on the loaded reference dataset: tables, JSON, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
import typer
from pypdf import PdfReader
from typer.testing import CliRunner

from apps.water.cli import register
from gis_core.settings import get_settings

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def run(reference, settings) -> Iterator[object]:
    app = typer.Typer()
    register(app)
    patch = pytest.MonkeyPatch()
    patch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()

    def invoke(*args: str) -> object:
        return CliRunner().invoke(app, ["water", *args])

    yield invoke
    patch.undo()
    get_settings.cache_clear()


def test_every_command_answers(run, tmp_path) -> None:
    for args, expect in (
        (("classes",), "compliance"),
        (("drought",), "probes graded"),
        (("permits",), "permit"),
        (("spi", "--scale", "1"), "SPI-1 for"),
        (("balance",), "metered permits"),
        (("compliance", "--days", "7"), "station days"),
        (("outlook", "--days", "3", "--tmin-c", "8", "--tmax-c", "20"), "8..20 °C (given)"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert expect in result.output
    result = run("drought-map", "--out", str(tmp_path / "drought.geojson"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "drought.geojson").read_text())["type"] == "FeatureCollection"
    year = str(datetime.now().year)
    result = run("report", "--year", year, "--out", str(tmp_path / "report.pdf"))
    assert result.exit_code == 0, result.output
    assert PdfReader(tmp_path / "report.pdf").metadata.title.endswith(f"{year}年水资源年报")
    result = run("permits", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["permits"]


def test_user_errors_are_one_red_line(run) -> None:
    for args, expect in (
        (("trace", "NOPE"), "no water-quality station 'NOPE'"),
        (("classes", "--date", "yesterday"), "is not a date"),
        (("drought", "--stage", "winter"), "crop stage 'winter'"),
        (("permits", "--base-rate", "-1"), "base rate must be positive"),
        (("spi", "--scale", "12"), "scale must be one of 1, 3, 6"),
        (("spi", "--month", "June"), "is not a month"),
        (("outlook", "--rain-mm", "1,x"), "must be numbers"),
        (("drought-map", "--out", "/nonexistent/dir/x.geojson"), "cannot write"),
        (("report", "--year", "1999", "--out", "x.pdf"), "--year 1999 must be within"),
        (("balance", "--year", "2099"), "year must be within 2000.."),
        (("compliance", "--days", "0"), "days must be within 1..366"),
    ):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert expect in result.output and "Traceback" not in result.output


def test_rain_record_import_is_all_or_nothing(run, settings, tmp_path) -> None:
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        gauge = conn.execute(
            # Gauges at a site: other modules add bare rain devices to the shared database.
            "SELECT d.id FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id"
            " WHERE d.kind = 'rain' ORDER BY d.id"
        ).fetchone()[0]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"gauge,month,mm\n{gauge},1980-01,12.5\nNOPE,1980-02,3\n{gauge},1980-03,-1\n")
    result = run("rain-record", str(bad))
    assert result.exit_code == 1, result.output
    assert "line 3: 'NOPE' is not a rain gauge" in result.output
    assert "line 4: mm '-1' must be a number, not negative" in result.output
    good = tmp_path / "good.csv"
    good.write_text(f"gauge,month,mm\n{gauge},1980-01,12.5\n{gauge},1980-02,0\n")
    try:
        with psycopg.connect(settings.database_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM water.rain_month"
                " WHERE gauge_id = %s AND month < '1981-01-01'",
                (gauge,),
            ).fetchone()[0]
            assert stored == 0  # the bad file stored nothing
        result = run("rain-record", str(good), "--source", "test")
        assert result.exit_code == 0, result.output
        assert "2 monthly totals of 1 gauge(s) stored" in result.output
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute(
                "SELECT month::text, mm, source FROM water.rain_month"
                " WHERE gauge_id = %s AND month < '1981-01-01' ORDER BY month",
                (gauge,),
            ).fetchall()
        assert rows == [("1980-01-01", 12.5, "test"), ("1980-02-01", 0.0, "test")]
    finally:
        with psycopg.connect(settings.database_url) as conn:
            conn.execute(
                "DELETE FROM water.rain_month WHERE gauge_id = %s AND month < '1981-01-01'",
                (gauge,),
            )
            conn.commit()
