"""Source attribution (溯源): stacks ranked by their modelled contribution at an air station.

Three stacks are registered 3 km from a station, 50 m tall, with a north wind of 3 m/s in
class D (rural):
- "up", due north (directly upwind), 100 mg/m³ SO2 × 360,000 m³/h = 10 g/s;
- "cross", 3 km north and 1.5 km east, three times as strong (30 g/s);
- "down", 3 km south (downwind of the station), 100 g/s.
By hand (Briggs rural D at x = 3000 m): σy = 0.08·3000/√1.3 = 210.49 m,
σz = 0.06·3000/√(1 + 0.0015·3000) = 76.752 m;
C = Q/(π u σy σz)·exp(−H²/2σz²) = 10/(π·3·210.49·76.752)·exp(−2500/11781.7) g/m³
= 53.12 µg/m³ from "up"; "cross" lies 7 σy off the axis (≈ 10⁻⁹ µg/m³); "down" adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from gis_core.db import connect
from gis_core.plane import LocalPlane

pytestmark = pytest.mark.services

UP_UGM3 = 53.12
STACKS = {
    "up": (0.0, 3000.0, 100.0),
    "cross": (1500.0, 3000.0, 300.0),
    "down": (0.0, -3000.0, 1000.0),
}  # fmt: skip  east, north, SO2 mg/m³ (× 360,000 m³/h)


@pytest.fixture()
def scene(db_url: str, reference: object) -> Iterator[dict[str, Any]]:
    at = (datetime.now(UTC) - timedelta(days=2)).replace(hour=14, minute=0, second=0, microsecond=0)
    made: dict[str, Any] = {"at": at, "sources": {}, "devices": []}
    with connect(db_url) as conn:
        station, lon, lat = conn.execute(
            "SELECT d.id, ST_X(s.geom), ST_Y(s.geom) FROM iot.device d"
            " JOIN iot.monitoring_site s ON s.id = d.site_id WHERE d.kind = 'air'"
            " ORDER BY d.id LIMIT 1"
        ).fetchone()
        made["station"] = station
        plane = LocalPlane(lon, lat)
        for name, (east, north, so2) in STACKS.items():
            slon, slat = plane.to_lonlat(east, north)
            device = f"EMS-UPWIND-{name.upper()}"
            conn.execute("DELETE FROM iot.device WHERE id = %s", (device,))
            conn.execute(
                "INSERT INTO iot.device (id, kind, name_zh) VALUES (%s, 'emission', %s)",
                (device, f"溯源测试 {name}"),
            )
            source = conn.execute(
                "INSERT INTO env.pollution_source (kind, name_zh, stack_height_m, geom)"
                " VALUES ('stack', %s, 50, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
                (f"溯源测试 {name}", slon, slat),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO env.outlet (source_id, code, name_zh, medium, standard, mn, pw_hash,"
                " device_id, geom) VALUES (%s, 'DA001', %s, 'air', 'GB 13223-2011', %s, 'x', %s,"
                " ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                (source, f"{name} 烟囱", f"UPWIND{name.upper():>8}", device, slon, slat),
            )
            conn.execute(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'emission', %s, %s::jsonb)",
                (device, at - timedelta(minutes=10),
                 orjson.dumps({"so2_mgm3": so2, "flow_m3h": 360000}).decode()),
            )  # fmt: skip
            made["sources"][name] = source
            made["devices"].append(device)
        # Every weather station: a north wind of 3 m/s under an overcast sky (class D).
        weather = [r[0] for r in conn.execute("SELECT id FROM iot.device WHERE kind = 'weather'")]
        reading = {"wind_ms": 3, "wind_dir_deg": 0, "temp_c": 5, "cloud_oktas": 8}
        conn.execute("DELETE FROM iot.telemetry WHERE kind = 'weather' AND ts = %s", (at,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'weather', %s, %s::jsonb)",
                [(w, at, orjson.dumps(reading).decode()) for w in weather],
            )
        made["exceedance"] = conn.execute(
            "INSERT INTO env.exceedance (kind, device_id, pollutant, averaging, limit_value,"
            " standard, peak_value, started_at, hours) VALUES ('ambient', %s, 'so2', '1h', 500,"
            " 'GB 3095-2012', 612, %s, 1) RETURNING id",
            (station, at - timedelta(minutes=30)),
        ).fetchone()[0]
        conn.commit()
    try:
        yield made
    finally:
        with connect(db_url) as conn:
            conn.execute("DELETE FROM env.exceedance WHERE id = %s", (made["exceedance"],))
            conn.execute(
                "DELETE FROM iot.telemetry WHERE kind = 'weather' AND ts = %s",
                (at,),
            )
            conn.execute("DELETE FROM iot.telemetry WHERE device_id = ANY(%s)", (made["devices"],))
            conn.execute(
                "DELETE FROM env.pollution_source WHERE id = ANY(%s)",
                (list(made["sources"].values()),),
            )
            conn.execute("DELETE FROM iot.device WHERE id = ANY(%s)", (made["devices"],))
            conn.commit()


def _ranked(answer: dict[str, Any], sources: dict[str, int]) -> dict[str, dict[str, Any]]:
    names = {v: k for k, v in sources.items()}
    return {names[s["source_id"]]: s for s in answer["sources"] if s["source_id"] in names}


def test_upwind_stack_outranks_stronger_crosswind_one(
    api: Any, admin_headers: dict[str, str], scene: dict[str, Any]
) -> None:
    params = {"device_id": scene["station"], "pollutant": "so2",
              "at": scene["at"].isoformat(), "limit": 500}  # fmt: skip
    given = {"wind_ms": 3, "wind_from_deg": 0, "stability": "D"}
    for weather in (given, {}):  # the caller's weather, then the weather stations' own
        r = api.get("/environment/upwind", params={**params, **weather}, headers=admin_headers)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["weather"]["stability"] == "D"
        assert (answer["weather"]["station"] is None) == bool(weather)
        mine = _ranked(answer, scene["sources"])
        assert mine["up"]["contribution_ugm3"] == pytest.approx(UP_UGM3, rel=1e-3)
        assert mine["up"]["emission_gs"] == pytest.approx(10.0)
        assert mine["up"]["downwind_m"] == pytest.approx(3000, abs=1)
        assert mine["up"]["rank"] < mine["cross"]["rank"]
        assert mine["cross"]["emission_gs"] == pytest.approx(30.0)
        assert mine["cross"]["contribution_ugm3"] < 1e-3
        assert "down" not in mine  # the station is upwind of it
        ranks = [s["contribution_ugm3"] for s in answer["sources"]]
        assert ranks == sorted(ranks, reverse=True)

    via = api.get(f"/environment/exceedances/{scene['exceedance']}/upwind", headers=admin_headers)
    assert via.status_code == 200, via.text
    assert via.json()["exceedance_id"] == scene["exceedance"]
    assert _ranked(via.json(), scene["sources"])["up"]["contribution_ugm3"] == pytest.approx(
        UP_UGM3, rel=1e-3
    )


def test_upwind_bad_input(api: Any, admin_headers: dict[str, str], scene: dict[str, Any]) -> None:
    base = {"device_id": scene["station"], "pollutant": "so2", "at": scene["at"].isoformat()}

    def get(**changes: Any) -> Any:
        return api.get("/environment/upwind", params={**base, **changes}, headers=admin_headers)

    o3 = get(pollutant="o3")
    assert o3.status_code == 422 and "no registered source emits 'o3'" in o3.json()["detail"]
    assert get(device_id="NOPE").status_code == 404
    emission = get(device_id="EMS-UPWIND-UP")
    assert emission.status_code == 422 and "not an air station" in emission.json()["detail"]
    naive = get(at="2026-11-30T08:00:00")
    assert naive.status_code == 422 and "offset" in naive.json()["detail"]
    long_ago = get(at="2020-01-01T08:00:00+08:00")
    assert long_ago.status_code == 422 and "no weather station" in long_ago.json()["detail"]
    calm = get(wind_ms=0.2, wind_from_deg=0, stability="F")
    assert calm.status_code == 422 and "calm" in calm.json()["detail"]
    assert (
        api.get("/environment/exceedances/999999999/upwind", headers=admin_headers).status_code
        == 404
    )
