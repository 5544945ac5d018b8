"""The quota watch: an alarm from 90 % of the quota, another past it, cleared when it drops."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from apps.water.monitor import EXCEEDED_RULE, WARNING_RULE, check_quotas

pytestmark = pytest.mark.services


def _reading(conn: psycopg.Connection, device: str, volume: float) -> None:
    conn.execute(
        """
        INSERT INTO iot.device_state (device_id, kind, ts, reading)
        VALUES (%s, 'water_meter', now(), %s)
        ON CONFLICT (device_id) DO UPDATE SET ts = now(), reading = excluded.reading
        """,
        (device, Jsonb({"volume_m3": volume})),
    )


def _open(conn: psycopg.Connection, device: str) -> list[str]:
    rows = conn.execute(
        "SELECT rule FROM iot.alarm WHERE device_id = %s AND cleared_at IS NULL ORDER BY rule",
        (device,),
    ).fetchall()
    return [r[0] for r in rows]


def test_quota_alarms_rise_and_clear(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        permit, device, start, quota = conn.execute(
            "SELECT p.id, m.device_id, m.year_start_m3, p.annual_quota_m3 FROM water.permit p"
            " JOIN water.meter m ON m.permit_id = p.id ORDER BY p.id DESC LIMIT 1"
        ).fetchone()
        try:
            _reading(conn, device, start + 0.89 * quota)  # just under the warning
            check_quotas(conn)
            assert _open(conn, device) == []
            # 90 % (and a hair, as the stored volumes are floats): warning
            _reading(conn, device, start + 0.9 * quota + 0.05)
            _, events = check_quotas(conn)
            assert _open(conn, device) == [WARNING_RULE]
            mine = [e for e in events if e["permit_id"] == permit]
            assert [(e["event"], e["state"]) for e in mine] == [("raised", "warning")]
            _reading(conn, device, start + quota - 0.05)  # up to the quota: still a warning
            check_quotas(conn)
            assert _open(conn, device) == [WARNING_RULE]
            _reading(conn, device, start + 1.01 * quota)  # past it: exceeded, warning cleared
            _, events = check_quotas(conn)
            assert _open(conn, device) == [EXCEEDED_RULE]
            mine = sorted((e["event"], e["rule"]) for e in events if e["permit_id"] == permit)
            assert mine == [("cleared", WARNING_RULE), ("raised", EXCEEDED_RULE)]
            _reading(conn, device, start + 0.5 * quota)  # a corrected meter: all clear
            check_quotas(conn)
            assert _open(conn, device) == []
        finally:
            conn.rollback()


def test_the_worker_announces_a_passed_quota(reference, db_url: str, settings, monkeypatch) -> None:
    from apps.water.monitor import EVENT_TOPIC, spawn_quota_watch
    from tests.support import listen, wait_until

    with psycopg.connect(db_url) as conn:
        permit, device, start, quota = conn.execute(
            "SELECT p.id, m.device_id, m.year_start_m3, p.annual_quota_m3 FROM water.permit p"
            " JOIN water.meter m ON m.permit_id = p.id ORDER BY p.id LIMIT 1"
        ).fetchone()
        _reading(conn, device, start + 1.5 * quota)
        conn.commit()
    # the spawned worker reads its settings from the environment, as under `changzhi up`
    monkeypatch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHANGZHI_MQTT_URL", settings.mqtt.url)
    client, heard = listen(settings.mqtt.url, EVENT_TOPIC)
    stop = spawn_quota_watch()
    try:
        wait_until(lambda: any(e.get("permit_id") == permit for e in heard), 30.0, "a quota event")
        event = next(e for e in heard if e["permit_id"] == permit)
        assert (event["type"], event["state"], event["rule"]) == (
            "quota",
            "exceeded",
            EXCEEDED_RULE,
        )
    finally:
        stop()
        client.disconnect()
        client.loop_stop()
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM iot.alarm WHERE device_id = %s", (device,))
            conn.execute("DELETE FROM iot.device_state WHERE device_id = %s", (device,))
            conn.commit()
