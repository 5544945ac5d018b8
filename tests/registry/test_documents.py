"""A right's certificate and corner list, and the register's statistics, on the reference
register: what the documents say is what the register holds."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import psycopg
import pypdf
import pytest
import shapely

from apps.registry import certificate, service, stats
from apps.registry.corners import read_boundary
from gis_core.errors import Conflict, InvalidParameter

pytestmark = pytest.mark.services
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def right(db_url: str, reference: object) -> dict[str, Any]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT object_id, attrs, ST_Area(geom)
            FROM registry.registry_version
            WHERE recorded_to IS NULL AND object_kind = 'mining_right'
              AND attrs->>'depth_top_m' IS NOT NULL
              AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now())
            ORDER BY object_id LIMIT 1
            """
        ).fetchone()
        assert row is not None, "the reference register holds no right in force"
        held = certificate.right_in_force(conn, row[0])
    corners = certificate.corner_rows(held.geometry_gk, held.zone)
    return {"license_no": row[0], "attrs": row[1], "area_m2": row[2], "corners": corners}


def test_certificate_pdf_says_what_the_register_holds(
    api: Any, admin_headers: dict[str, str], right: dict[str, Any]
) -> None:
    r = api.get(f"/registry/rights/{right['license_no']}/certificate.pdf", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert right["license_no"] in text
    assert right["attrs"]["holder"] in text
    assert ("采矿许可证" if right["attrs"]["right_type"] == "mining" else "勘查许可证") in text
    assert f"{right['area_m2'] / 1e6:.4f} km²" in text
    # One table row per corner (ring, number, X northing, Y easting with the zone).
    assert len(right["corners"]) >= 4
    for ring, name, x, y in (right["corners"][0], right["corners"][-1]):
        assert f"{ring} {name} {x:.2f} {y:.2f}" in text


def test_corner_list_reads_back_to_the_registered_boundary(
    api: Any, admin_headers: dict[str, str], right: dict[str, Any], db_url: str
) -> None:
    r = api.get(f"/registry/rights/{right['license_no']}/corners.txt", headers=admin_headers)
    assert r.status_code == 200, r.text
    boundary = read_boundary(r.text)
    assert boundary.prefixed and boundary.depth is not None
    assert boundary.depth.top == pytest.approx(
        max(right["attrs"]["depth_top_m"], right["attrs"]["depth_bottom_m"])
    )
    # Corners are written to the centimetre: the area moves by at most perimeter × 1 cm.
    perimeter = boundary.geometry_gk.length
    assert boundary.geometry_gk.area == pytest.approx(right["area_m2"], abs=perimeter * 0.01)
    with psycopg.connect(db_url) as conn:
        held = certificate.right_in_force(conn, right["license_no"])
    # Every corner within rounding (half a centimetre each way) of the register's.
    assert shapely.hausdorff_distance(held.geometry_gk, boundary.geometry_gk) < 0.008


def test_unknown_and_lapsed_rights_are_refused(
    api: Any, admin_headers: dict[str, str], right: dict[str, Any], db_url: str
) -> None:
    r = api.get("/registry/rights/NO-SUCH-LICENCE/certificate.pdf", headers=admin_headers)
    assert r.status_code == 404 and "NO-SUCH-LICENCE" in r.json()["detail"]
    with psycopg.connect(db_url) as conn:
        start = certificate.right_in_force(conn, right["license_no"]).valid_from
        with pytest.raises(Conflict, match="not in force"):
            certificate.right_in_force(conn, right["license_no"], start - dt.timedelta(days=1))
    assert api.get(f"/registry/rights/{right['license_no']}/corners.txt").status_code == 401


def test_land_use_totals_are_the_cadastre(db_url: str, reference: object) -> None:
    now = dt.datetime.now(CST)
    with psycopg.connect(db_url) as conn:
        first = stats.land_use(conn, now, "first")
        second = stats.land_use(conn, now, "second")
        total = conn.execute(
            "SELECT sum(area_m2), count(*) FROM registry.parcel WHERE valid_to IS NULL"
        ).fetchone()
    assert total is not None and total[1] > 0
    assert sum(r["hectares"] for r in first["rows"]) == pytest.approx(total[0] / 1e4, rel=1e-6)
    assert sum(r["parcels"] for r in second["rows"]) == total[1]
    assert sum(r["mu"] for r in first["city"]) == pytest.approx(total[0] * 0.0015, rel=1e-6)
    cropland = [r for r in first["rows"] if r["class"] == "01"]
    assert cropland and all(r["class_zh"] == "耕地" for r in cropland)
    # Second-level rows roll up into their first-level class.
    for row in first["city"]:
        rolled = sum(r["hectares"] for r in second["rows"] if r["class"].startswith(row["class"]))
        assert rolled == pytest.approx(row["hectares"], abs=0.01)
    with pytest.raises(InvalidParameter, match="level"):
        stats.land_use(psycopg.connect(db_url), now, "third")


def test_change_matrix_sees_a_reclassified_parcel(db_url: str, reference: object) -> None:
    # The reference parcels are valid from their load: compare now with two hours ahead.
    t0 = dt.datetime.now(CST)
    t1 = t0 + dt.timedelta(hours=2)
    with psycopg.connect(db_url) as conn:  # rolled back at the end: the register is unchanged
        code, area, use = conn.execute(
            """SELECT parcel_code, area_m2, land_use FROM registry.parcel
               WHERE valid_to IS NULL AND land_use LIKE '01%%' AND valid_from < %s
               ORDER BY parcel_code LIMIT 1""",
            (t0,),
        ).fetchone() or (None, None, None)
        assert code is not None
        before = stats.change_matrix(conn, t0, t1)
        switch = t0 + dt.timedelta(hours=1)
        conn.execute(
            "UPDATE registry.parcel SET valid_to = %(s)s"
            " WHERE parcel_code = %(c)s AND valid_to IS NULL",
            {"s": switch, "c": code},
        )
        conn.execute(
            """
            INSERT INTO registry.parcel (parcel_code, version, land_use, land_use_zh, owner,
                district_code, area_m2, valid_from, geom)
            SELECT parcel_code, version + 1, '0601', '工业用地', owner, district_code, area_m2,
                   %(s)s, geom
            FROM registry.parcel WHERE parcel_code = %(c)s AND valid_to = %(s)s
            """,
            {"s": switch, "c": code},
        )
        after = stats.change_matrix(conn, t0, t1)
        conn.rollback()
    cell = {(c["from"], c["to"]): c["hectares"] for c in after["cells"]}
    was = {(c["from"], c["to"]): c["hectares"] for c in before["cells"]}
    assert cell[("01", "06")] == pytest.approx(was.get(("01", "06"), 0.0) + area / 1e4, abs=1e-4)
    assert after["changed_hectares"] == pytest.approx(
        before["changed_hectares"] + area / 1e4, abs=1e-3
    )
    assert use.startswith("01")
    with pytest.raises(InvalidParameter, match="after"):
        stats.change_matrix(psycopg.connect(db_url), t1, t0)


def test_rights_summary_agrees_with_the_as_of_view(
    api: Any, admin_headers: dict[str, str], db_url: str, reference: object
) -> None:
    now = dt.datetime.now(CST)
    with psycopg.connect(db_url) as conn:
        summary = stats.rights_summary(conn, now, 6)
        view = service.as_of(conn, now, kind="mining_right", limit=100_000)
    assert summary["in_force"] == view["counts"].get("mining_right", 0)
    assert sum(m["rights"] for m in summary["by_mineral"]) == summary["in_force"]
    horizon = now + dt.timedelta(days=183)
    assert all(now < e["valid_to"] <= horizon for e in summary["expiring"])
    r = api.get("/registry/stats/rights?months=12", headers=admin_headers)
    assert r.status_code == 200 and r.json()["expiring_within_months"] == 12
    assert api.get("/registry/stats/rights?months=0", headers=admin_headers).status_code == 422
    bad = api.get("/registry/stats/landuse?at=yesterday", headers=admin_headers)
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["detail"]
    r = api.get("/registry/stats/landuse?level=second", headers=admin_headers)
    assert r.status_code == 200 and r.json()["rows"][0]["class"].isdigit()
