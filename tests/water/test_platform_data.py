"""The water application on the platform: its tables, reference data and simulator models."""

from __future__ import annotations

import math

import psycopg
import pytest

from apps.water.resources import validate_uscc

pytestmark = pytest.mark.services


def test_reference_load_places_permits_wells_meters_and_zones(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        counts = dict(
            conn.execute(
                "SELECT 'permit', count(*) FROM water.permit UNION ALL "
                "SELECT 'well', count(*) FROM water.well UNION ALL "
                "SELECT 'meter', count(*) FROM water.meter UNION ALL "
                "SELECT 'zone', count(*) FROM water.function_zone UNION ALL "
                "SELECT 'target', count(*) FROM water.station_target UNION ALL "
                "SELECT 'wq', count(*) FROM iot.monitoring_site WHERE kind = 'water_quality'"
            ).fetchall()
        )
        assert counts["permit"] >= 3
        assert counts["meter"] == counts["permit"]  # one meter per permit
        assert 0 < counts["well"] <= counts["permit"]
        assert counts["zone"] > 0
        assert counts["target"] == counts["wq"]  # every station has a target class
        holders = conn.execute(
            "SELECT p.holder_uscc, e.credit_code FROM water.permit p"
            " LEFT JOIN env.enterprise e ON e.credit_code = p.holder_uscc"
        ).fetchall()
        for uscc, enterprise in holders:
            assert validate_uscc(uscc) == uscc and enterprise == uscc
        # Every new device sits at a site of its own kind and reports hourly.
        bad = conn.execute(
            "SELECT d.id FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id"
            " WHERE d.kind IN ('well', 'water_meter')"
            " AND (s.kind <> d.kind OR d.expected_interval_s <> 3600)"
        ).fetchall()
        assert bad == []
        # Wells: the red line is below the static level, the static level below the ground.
        rows = conn.execute(
            "SELECT w.ground_m, (s.thresholds->>'static_level_m')::float,"
            " (s.thresholds->>'alarm_level_m')::float"
            " FROM water.well w JOIN iot.monitoring_site s ON s.id = w.site_id"
        ).fetchall()
        assert all(g > st > red for g, st, red in rows)


def test_synthesis_is_reproducible_and_replaces_its_own_rows(reference, db_url: str) -> None:
    from pathlib import Path

    from apps.water.synth import synthesize
    from gis_core.application import SynthContext

    with psycopg.connect(db_url) as conn:
        dem, seed, scale = conn.execute("SELECT dem_path, seed, scale FROM ref.dataset").fetchone()
        before = conn.execute(
            "SELECT id, holder_uscc, annual_quota_m3 FROM water.permit ORDER BY id"
        ).fetchall()
        context = SynthContext(Path("."), "x", seed, scale, Path(dem) if dem else None)
        counts = synthesize(conn, context)
        after = conn.execute(
            "SELECT id, holder_uscc, annual_quota_m3 FROM water.permit ORDER BY id"
        ).fetchall()
        conn.rollback()
    assert counts["water.permit"] == len(before)
    assert after == before
    assert all(math.isfinite(q) for _, _, q in after)
