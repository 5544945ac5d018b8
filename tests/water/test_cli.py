"""``changzhi water ...`` on the loaded reference dataset: tables, JSON, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import typer
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


def test_every_command_answers(run) -> None:
    for args, expect in (
        (("classes",), "compliance"),
        (("drought",), "probes graded"),
        (("permits",), "permit"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert expect in result.output
    result = run("permits", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["permits"]


def test_user_errors_are_one_red_line(run) -> None:
    for args, expect in (
        (("trace", "NOPE"), "no water-quality station 'NOPE'"),
        (("classes", "--date", "yesterday"), "is not a date"),
        (("drought", "--stage", "winter"), "crop stage 'winter'"),
        (("permits", "--base-rate", "-1"), "base rate must be positive"),
    ):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert expect in result.output and "Traceback" not in result.output
