"""The quota watch: an alarm at 90 % of the quota and one past it, each once a permit a year."""

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


def _alarms(conn: psycopg.Connection, device: str) -> list[tuple[str, bool]]:
    rows = conn.execute(
        "SELECT rule, cleared_at IS NULL FROM iot.alarm WHERE device_id = %s ORDER BY id",
        (device,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_each_quota_level_is_announced_once_a_year(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        permit, device, start, quota = conn.execute(
            "SELECT p.id, m.device_id, m.year_start_m3, p.annual_quota_m3 FROM water.permit p"
            " JOIN water.meter m ON m.permit_id = p.id ORDER BY p.id DESC LIMIT 1"
        ).fetchone()

        def mine(events: list[dict]) -> list[tuple[str, int, str]]:
            return [
                (e["event"], e["level"], e["state"]) for e in events if e["permit_id"] == permit
            ]

        try:
            # last year's warning, never acknowledged, is still open: this year's is new
            conn.execute(
                "INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh, message_en)"
                " VALUES ('water_meter', %s, 2, %s, '去年', 'last year')",
                (WARNING_RULE, device),
            )
            _reading(conn, device, start + 0.89 * quota)  # just under the warning
            _, events = check_quotas(conn)
            assert mine(events) == [] and _alarms(conn, device) == [(WARNING_RULE, True)]
            # 90 % (and a hair, as the stored volumes are floats): the warning
            _reading(conn, device, start + 0.9 * quota + 0.05)
            announced, events = check_quotas(conn)
            assert mine(events) == [("raised", 90, "warning")]
            assert _alarms(conn, device) == [(WARNING_RULE, True), (WARNING_RULE, True)]
            assert [a["rule"] for a in announced if a["device_id"] == device] == [WARNING_RULE]
            _reading(conn, device, start + quota - 0.05)  # up to the quota: nothing new
            _, events = check_quotas(conn)
            assert mine(events) == []
            _reading(conn, device, start + 1.01 * quota)  # past it: exceeded, once
            _, events = check_quotas(conn)
            assert mine(events) == [("raised", 100, "exceeded")]
            # a corrected meter, then past the quota again: the year's notices stand
            _reading(conn, device, start + 0.5 * quota)
            assert mine(check_quotas(conn)[1]) == []
            _reading(conn, device, start + 1.2 * quota)
            assert mine(check_quotas(conn)[1]) == []
            assert _alarms(conn, device) == [
                (WARNING_RULE, True),
                (WARNING_RULE, True),
                (EXCEEDED_RULE, True),
            ]
            notices = conn.execute(
                "SELECT level, used_m3, alarm_id IS NOT NULL FROM water.quota_notice"
                " WHERE permit_id = %s ORDER BY level",
                (permit,),
            ).fetchall()
            assert [(n[0], n[2]) for n in notices] == [(90, True), (100, True)]
            assert notices[1][1] == pytest.approx(1.01 * quota, abs=0.1)
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
        wait_until(
            lambda: any(e.get("permit_id") == permit and e["level"] == 100 for e in heard),
            30.0,
            "a quota event",
        )
        event = next(e for e in heard if e.get("permit_id") == permit and e["level"] == 100)
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
            conn.execute("DELETE FROM water.quota_notice WHERE permit_id = %s", (permit,))
            conn.execute("DELETE FROM iot.device_state WHERE device_id = %s", (device,))
            conn.commit()


def test_a_station_worse_than_its_target_is_traced_upstream(reference, db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from apps.water import tracing
    from apps.water.monitor import TARGET_RULE, check_quality

    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        stations = conn.execute(
            "SELECT d.id, d.site_id, coalesce(t.target_class, 3) FROM iot.device d"
            " LEFT JOIN water.station_target t ON t.site_id = d.site_id"
            " WHERE d.kind = 'water_quality' ORDER BY d.id"
        ).fetchall()
        # a station the trace reaches with outfalls upstream, and a target better than V
        on_river = next(
            s
            for s in stations
            if s[2] < 5 and tracing.trace_station(conn, s[1], "nh3n", 0.0)["ranked"]
        )
        try:
            # NH3-N 1.8 is class V (IV ends at 1.5): worse than any target but V
            hours = [now - timedelta(hours=h) for h in range(1, 4)]
            conn.cursor().executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'water_quality', %s, %s)",
                [
                    (
                        on_river[0],
                        ts,
                        Jsonb({"ph": 7.5, "do_mgl": 7.0, "cod_mgl": 14.0, "nh3n_mgl": 1.8}),
                    )
                    for ts in hours
                ],
            )
            announced, events = check_quality(conn, now)
            mine = [e for e in events if e["device_id"] == on_river[0]]
            assert [(e["event"], e["water_class"], e["deciding"]) for e in mine] == [
                ("raised", 5, ["nh3n"])
            ]
            trace = mine[0]["trace"]
            assert trace["factor"] == "nh3n"
            assert trace["route"] == f"/water/trace/{on_river[1]}?factor=nh3n"
            full = tracing.trace_station(conn, on_river[1], "nh3n", 0.0)["ranked"]
            assert [o["outlet_id"] for o in trace["outlets"]] == [o["outlet_id"] for o in full[:5]]
            stored = conn.execute(
                "SELECT message_zh, value, threshold FROM iot.alarm WHERE id = %s",
                (mine[0]["alarm_id"],),
            ).fetchone()
            assert "劣于目标" in stored[0] and (stored[1], stored[2]) == (5.0, on_river[2])
            assert [a["rule"] for a in announced if a["device_id"] == on_river[0]] == [TARGET_RULE]
            # the next round has nothing new to say of it
            assert [e for e in check_quality(conn, now)[1] if e["device_id"] == on_river[0]] == []
        finally:
            conn.rollback()
