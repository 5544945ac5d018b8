"""The consultation briefing: a PDF whose text says what the office must see, a PNG, and
clear refusals."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from pypdf import PdfReader

from apps.flood.briefing import briefing
from gis_core.documents import cjk_family
from tests.flood.test_api_cli import _cli

pytestmark = pytest.mark.services

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


@pytest.fixture
def storm(prepared: object, db_url: str) -> Iterator[tuple[psycopg.Connection, str, str]]:
    """An hour of rain at every rain gauge and a river gauge rising past its warning level."""
    with psycopg.connect(db_url) as conn:
        site, device, name, warning = conn.execute(
            "SELECT s.id, d.id, s.name_zh, (s.thresholds->>'warning_m')::float8"
            " FROM flood.catchment c JOIN iot.monitoring_site s ON s.id = c.site_id"
            " JOIN iot.device d ON d.site_id = s.id AND d.kind = 'water_level'"
            " ORDER BY c.area_km2 DESC LIMIT 1"
        ).fetchone()
        rain = conn.execute("SELECT id FROM iot.device WHERE kind = 'rain'").fetchall()
        rows = [
            (d, "rain", END - timedelta(minutes=m), {"mm": 6.0})
            for (d,) in rain
            for m in range(0, 60, 10)
        ]
        # Rising 0.3 m an hour to just under the warning level at END: the forecast passes it.
        rows += [
            (
                device,
                "water_level",
                END - timedelta(minutes=m),
                {"level_m": warning - 0.05 - m / 200},
            )
            for m in range(0, 180, 15)
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, %s, %s, %s::jsonb)",
                [(d, k, ts, orjson.dumps(r).decode()) for d, k, ts, r in rows],
            )
        yield conn, site, name
        conn.rollback()


def test_pdf_briefing_holds_the_map_hydrographs_alarms_and_tables(storm, artifacts) -> None:
    conn, site, name = storm
    assert cjk_family()  # the machine has one (fonts-noto-cjk)
    data, summary = briefing(conn, fmt="pdf", window="3h", end=END, rise_m=3.0)
    assert data[:5] == b"%PDF-"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    for words in (
        "防汛会商简报",
        "Flood consultation briefing",
        "Forecast alarms",
        "Affected people",
        "Evacuation",
        site,
        name,
    ):
        assert words in text, words
    # the rising gauge is forecast past its warning level, and the alarm is on the page
    alarm = next(a for a in summary["alarms"] if a["site_id"] == site)
    assert alarm["warning_at"] is not None
    assert summary["people"] is not None and summary["people"] > 0
    assert summary["evacuated"] is not None
    png, _ = briefing(conn, fmt="png", window="3h", end=END, rise_m=3.0)
    (artifacts / "flood-briefing.png").write_bytes(png)


def test_png_briefing_and_bad_requests(storm, api, admin_headers, settings, monkeypatch) -> None:
    r = api.get("/flood/briefing.png", params={"rise_m": 2}, headers=admin_headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = api.get("/flood/briefing.gif", headers=admin_headers)
    assert r.status_code == 422 and "briefing.pdf or briefing.png" in r.json()["detail"]
    r = api.get("/flood/briefing.pdf", params={"rise_m": 99}, headers=admin_headers)
    assert r.status_code == 422
    assert api.get("/flood/briefing.pdf").status_code == 401
    result = _cli(settings, monkeypatch, "briefing", "--out", "x.docx")
    assert result.exit_code == 1 and "a .pdf or a .png" in result.output
