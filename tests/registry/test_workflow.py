"""The registry application on the platform: applications checked against the reference
register, the workflow with its roles and its race, waivers, history and as-of views."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely
from shapely import affinity
from shapely.geometry import mapping

from apps.registry import service
from gis_core.errors import Conflict
from gis_core.identity import Principal, create_user

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "registry-pass-1"
# A 1 km square in zone 38 near the city (X northing, Y easting with the zone prefix).
SQUARE = """1,4007000.00,38420000.00
2,4007000.00,38421000.00
3,4006000.00,38421000.00
4,4006000.00,38420000.00
*,1200,800,,,1
"""


@pytest.fixture(scope="module")
def desks(api: Any, reference: object, db_url: str) -> dict[str, dict[str, str]]:
    suffix = secrets.token_hex(3)
    roles = {"registrar": "registrar", "inspector": "inspector", "supervisor": "supervisor"}
    with psycopg.connect(db_url) as conn:
        for name, role in roles.items():
            create_user(
                conn,
                username=f"reg-{name}-{suffix}",
                password=PASSWORD,
                roles=[role],
                department="land",
            )
        conn.commit()
    out = {}
    for name in roles:
        r = api.post("/auth/token", data={"username": f"reg-{name}-{suffix}", "password": PASSWORD})
        out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


@pytest.fixture(scope="module")
def right(db_url: str, reference: object) -> dict[str, Any]:
    """A reference right the register holds now: licence, WGS84 geometry, depths, area."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT object_id, ST_AsBinary(ST_Transform(geom, 4326)),
                   (attrs->>'depth_top_m')::float8, (attrs->>'depth_bottom_m')::float8,
                   ST_Area(geom), valid_from
            FROM registry.registry_version
            WHERE recorded_to IS NULL AND object_kind = 'mining_right'
              AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now())
            ORDER BY object_id LIMIT 1
            """
        ).fetchone()
    assert row is not None, "the synthesizer entered no current right in the register"
    return {
        "license_no": row[0],
        "geom": shapely.from_wkb(bytes(row[1])),
        "top": row[2],
        "bottom": row[3],
        "area_m2": row[4],
        "valid_from": row[5],
    }


def _submit(api: Any, headers: dict[str, str], **body: Any) -> Any:
    body = {"kind": "mining", "applicant": "测试矿业有限公司", **body}
    return api.post("/registry/applications", json=body, headers=headers)


def _overlaps(app: dict[str, Any], license_no: str) -> list[dict[str, Any]]:
    return [
        f
        for f in app["findings"]
        if f["check_kind"] == "right_overlap" and f["other_id"] == license_no
    ]


def test_the_reference_rights_are_in_the_register_once(db_url: str, reference: object) -> None:
    with psycopg.connect(db_url) as conn:
        held = conn.execute(
            "SELECT count(*), count(DISTINCT object_id) FROM registry.registry_version"
            " WHERE recorded_to IS NULL"
        ).fetchone()
        rights = conn.execute(
            "SELECT count(*) FROM registry.mining_right WHERE valid_to IS NULL"
        ).fetchone()
        farmland = conn.execute("SELECT count(*) FROM registry.basic_farmland").fetchone()
    assert held is not None and rights is not None and farmland is not None
    assert held[0] == held[1] == rights[0] > 0
    assert farmland[0] > 0


def test_a_copy_of_a_right_overlaps_it_entirely(
    api: Any, desks: dict[str, dict[str, str]], right: dict[str, Any]
) -> None:
    r = _submit(
        api,
        desks["registrar"],
        object_id=f"COPY-{secrets.token_hex(3)}",
        geometry=mapping(right["geom"]),
        depth_top_m=right["top"],
        depth_bottom_m=right["bottom"],
    )
    assert r.status_code == 201, r.text
    (hit,) = _overlaps(r.json(), right["license_no"])
    # The whole right, to the rounding of the WGS84 round trip.
    assert hit["area_m2"] == pytest.approx(right["area_m2"], rel=1e-6)
    assert hit["area_mu"] == pytest.approx(right["area_m2"] * 15 / 10000, rel=1e-6)
    assert hit["share"] == pytest.approx(1.0, abs=1e-6)
    assert hit["status"] == "open" and hit["geometry"]["type"] == "MultiPolygon"


@pytest.mark.parametrize(("gap", "conflict"), [(1.0, False), (0.0, False), (-1.0, True)])
def test_depth_ranges_that_only_touch_do_not_conflict(
    api: Any, desks: dict[str, dict[str, str]], right: dict[str, Any], gap: float, conflict: bool
) -> None:
    # A range right below the right's: gap > 0 apart, 0 touching, < 0 one metre into it.
    _, hi = sorted((right["top"], right["bottom"]))
    r = _submit(
        api,
        desks["registrar"],
        object_id=f"DEPTH-{secrets.token_hex(3)}",
        geometry=mapping(right["geom"]),
        depth_top_m=hi + gap,
        depth_bottom_m=hi + gap + 100.0,
    )
    assert r.status_code == 201, r.text
    assert bool(_overlaps(r.json(), right["license_no"])) is conflict


def test_a_corner_list_is_read_with_its_area_and_depth(
    api: Any, desks: dict[str, dict[str, str]]
) -> None:
    r = _submit(api, desks["registrar"], object_id=f"CORN-{secrets.token_hex(3)}", corners=SQUARE)
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["area_m2"] == pytest.approx(1_000_000.0, abs=1.0)  # zone 38 is EPSG:4547
    assert app["area_mu"] == pytest.approx(1500.0, abs=0.01)
    assert (app["depth_top_m"], app["depth_bottom_m"]) == (1200.0, 800.0)
    assert app["state"] == "application" and app["steps"][0]["step"] == "submit"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {
                "corners": SQUARE.replace(
                    "3,4006000.00,38421000.00", "3,4006000.00,38420000.00"
                ).replace("4,4006000.00,38420000.00", "4,4006000.00,38421000.00")
            },
            "self-intersect",
        ),
        ({"corners": SQUARE.replace("2,4007000.00", "1,4007000.00")}, "appears twice"),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[113.0, 36.0], [113.1, 36.1], [113.1, 36.0], [113.0, 36.1], [113.0, 36.0]]
                    ],
                }
            },
            "Self-intersection",
        ),
        ({"corners": SQUARE, "geometry": {"type": "Point", "coordinates": [113, 36]}}, "either"),
        ({"corners": SQUARE, "kind": "gold"}, "kind must be one of"),
    ],
)
def test_bad_boundaries_are_refused_with_the_reason(
    api: Any, desks: dict[str, dict[str, str]], db_url: str, body: dict[str, Any], words: str
) -> None:
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM registry.application").fetchone()
    r = _submit(api, desks["registrar"], object_id="BAD-1", **body)
    assert r.status_code == 422, r.text
    assert words.lower() in r.json()["detail"].lower()
    with psycopg.connect(db_url) as conn:
        after = conn.execute("SELECT count(*) FROM registry.application").fetchone()
    assert before == after  # nothing half-written


def test_workflow_roles_findings_waiver_race_and_certificate(
    api: Any, desks: dict[str, dict[str, str]], right: dict[str, Any], db_url: str
) -> None:
    reg, ins, sup = desks["registrar"], desks["inspector"], desks["supervisor"]
    licence = f"NEW-{secrets.token_hex(4)}"
    # Half the right's width to the east: a partial overlap in plan, same depth.
    x0, _, x1, _ = right["geom"].bounds
    shifted = affinity.translate(right["geom"], (x1 - x0) / 2, 0)
    assert _submit(api, ins, object_id=licence, geometry=mapping(shifted)).status_code == 403
    r = _submit(
        api,
        reg,
        object_id=licence,
        geometry=mapping(shifted),
        depth_top_m=right["top"],
        depth_bottom_m=right["bottom"],
        attrs={"mineral": "煤"},
    )
    assert r.status_code == 201, r.text
    app = r.json()
    app_id, url = app["id"], f"/registry/applications/{app['id']}/transition"
    (hit,) = _overlaps(app, right["license_no"])
    assert 0 < hit["share"] < 1

    def move(headers: dict[str, str], action: str, **extra: Any) -> Any:
        return api.post(url, json={"action": action, **extra}, headers=headers)

    assert move(ins, "review").status_code == 409  # not accepted yet
    assert move(ins, "accept").status_code == 403
    assert move(reg, "accept").json()["state"] == "accepted"
    assert move(ins, "review", version=1).status_code == 409  # stale version
    assert move(ins, "review", version=2).json()["state"] == "reviewed"
    refused = move(sup, "approve")
    assert refused.status_code == 409 and "unresolved" in refused.json()["detail"]
    for f in api.get(f"/registry/applications/{app_id}", headers=reg).json()["findings"]:
        assert (
            api.post(
                f"/registry/findings/{f['id']}/waive", json={"reason": "x"}, headers=reg
            ).status_code
            == 403
        )
        assert (
            api.post(
                f"/registry/findings/{f['id']}/waive", json={"reason": ""}, headers=sup
            ).status_code
            == 422
        )
        w = api.post(
            f"/registry/findings/{f['id']}/waive", json={"reason": "经协调同意"}, headers=sup
        )
        assert w.status_code == 200, w.text
    version = api.get(f"/registry/applications/{app_id}", headers=reg).json()["version"]

    # Two supervisors approve the same version at once: exactly one wins.
    boss = Principal(0, "race", frozenset({"supervisor"}), None)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def approve() -> None:
        with psycopg.connect(db_url) as conn:
            barrier.wait()
            try:
                service.transition(conn, boss, app_id, "approve", version=version)
                conn.commit()
                results.append("won")
            except Conflict:
                conn.rollback()
                results.append("refused")

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["refused", "won"]

    before = dt.datetime.now(dt.UTC)
    done = move(reg, "certify")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "certified" and done.json()["txn_id"]
    steps = [s["step"] for s in done.json()["steps"]]
    assert steps == ["submit", "accept", "review", "waive", "approve", "certify"]

    hist = api.get(f"/registry/rights/{licence}/history", headers=reg).json()
    (version_row,) = hist["versions"]
    assert version_row["transaction"]["applicant"] == "测试矿业有限公司"
    assert version_row["transaction"]["approver"] == "race"
    now = dt.datetime.now(dt.UTC).isoformat()
    seen = api.get("/registry/rights/asof", params={"valid": now}, headers=reg).json()
    assert licence in {f["id"] for f in seen["features"]}
    # As the register knew it before the certificate: not there.
    earlier = api.get(
        "/registry/rights/asof",
        params={"valid": now, "known": before.isoformat(), "license_no": licence},
        headers=reg,
    ).json()
    assert earlier["numberReturned"] == 0
    # A second certificate of the same licence is a conflict, never a second holder.
    assert move(reg, "certify").status_code == 409


def test_history_cannot_be_edited(db_url: str, right: dict[str, Any]) -> None:
    for statement in (
        "UPDATE registry.registry_version SET attrs = '{}' WHERE object_id = %s",
        "DELETE FROM registry.registry_version WHERE object_id = %s",
    ):
        with (
            psycopg.connect(db_url) as conn,
            pytest.raises(psycopg.errors.IntegrityError, match="append-only"),
        ):
            conn.execute(statement, (right["license_no"],))


def test_as_of_before_a_right_existed_and_bad_times(
    api: Any, desks: dict[str, dict[str, str]], right: dict[str, Any]
) -> None:
    reg = desks["registrar"]
    before = (right["valid_from"] - dt.timedelta(days=1)).isoformat()
    on = right["valid_from"].isoformat()
    lic = right["license_no"]
    got = api.get(
        "/registry/rights/asof", params={"valid": before, "license_no": lic}, headers=reg
    ).json()
    assert got["numberReturned"] == 0
    got = api.get(
        "/registry/rights/asof", params={"valid": on, "license_no": lic}, headers=reg
    ).json()
    assert got["numberReturned"] == 1 and got["counts"] == {"mining_right": 1}
    bad = api.get("/registry/rights/asof", params={"valid": "2020-01-01T00:00"}, headers=reg)
    assert bad.status_code == 400 and "offset" in bad.json()["detail"]
    assert api.get("/registry/rights/NOSUCH/history", headers=reg).status_code == 404
    found = api.get("/registry/rights", params={"q": lic[:8]}, headers=reg).json()
    assert lic in {f["license_no"] for f in found}


def test_the_full_check_summarizes_every_check(api: Any, desks: dict[str, dict[str, str]]) -> None:
    r = api.get("/registry/check", headers=desks["inspector"])
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert set(checks) == {
        "parcel_overlap",
        "parcel_gap",
        "sliver",
        "right_overlap",
        "right_constraint",
    }
    for c in checks.values():
        assert c["area_mu"] == pytest.approx(c["area_m2"] * 15 / 10000)
    # The reference data seeds overlapping parcels: some are found.
    assert checks["parcel_overlap"]["count"] > 0


def test_the_command_line_refuses_in_one_red_line(settings: Any, db_url: str) -> None:
    env = {**os.environ, "CHANGZHI_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", "registry", "history", "NOSUCH"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NOSUCH" in lines[0] and "Traceback" not in done.stderr
