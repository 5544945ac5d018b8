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
