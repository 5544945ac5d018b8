"""The /exchange routes: sharing by approval (403 before, 200 after, reads logged), joins by
each key on known rows, statistics from the real 2020 census with CSV and Excel export, and
bad input answered with a 4xx."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openpyxl import load_workbook

from apps.exchange.samples import write_samples
from apps.exchange.sync import run_sync
from gis_core.identity import create_user

pytestmark = pytest.mark.services
PASSWORD = "exchange-pass-19"
CENSUS_2020 = {"140403": 895_280, "140404": 319_660, "140431": 149_975}


def _login(api: Any, username: str) -> dict[str, str]:
    r = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def people(reference: object, api: Any, db_url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(db_url) as conn:
        for code, zh, en in (("stats", "市统计局", "Statistics"), ("market", "市场监管局",
                             "Market regulation")):  # fmt: skip
            conn.execute(
                "INSERT INTO auth.department (code, name_zh, name_en) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (code, zh, en),
            )
        for username, roles, dept in (
            ("stats_boss", ["supervisor"], "stats"),
            ("stats_clerk", ["planner"], "stats"),
            ("market_user", ["planner"], "market"),
            ("market_boss", ["supervisor"], "market"),
        ):
            if not conn.execute(
                "SELECT 1 FROM auth.app_user WHERE username = %s", (username,)
            ).fetchone():
                create_user(conn, username=username, password=PASSWORD, roles=roles,
                            department=dept)  # fmt: skip
        conn.commit()
    return {u: _login(api, u) for u in ("stats_boss", "stats_clerk", "market_user", "market_boss")}


@pytest.fixture(scope="module")
def known(reference: object, db_url: str) -> dict[str, Any]:
    """Rows of the reference dataset the join source is built from."""
    with psycopg.connect(db_url) as conn:
        towns = [r[0] for r in conn.execute(
            "SELECT code FROM exchange.division WHERE level = 'town' ORDER BY code LIMIT 2"
        ).fetchall()]  # fmt: skip
        credit = conn.execute(
            "SELECT credit_code FROM env.enterprise ORDER BY id LIMIT 1"
        ).fetchone()
        village = conn.execute(
            "SELECT a.name_zh || v.name_zh, v.id FROM ref.village v"
            " JOIN ref.admin_area a ON a.code = v.district_code ORDER BY v.id LIMIT 1"
        ).fetchone()
        inside = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM ref.admin_area"
            " WHERE code = '140403') s"
        ).fetchone()
    assert towns and credit and village and inside
    return {"towns": towns, "credit": credit[0], "address": village[0], "inside": inside}


def _bad_check_char(code: str) -> str:
    return code[:17] + ("0" if code[17] != "0" else "1")


@pytest.fixture(scope="module")
def joins_source(
    people: dict[str, dict[str, str]], known: dict[str, Any], api: Any, tmp_path_factory: Any
) -> str:
    t1, t2 = known["towns"]
    rows = [
        ["J1", t1, known["credit"], known["address"], *known["inside"], "10"],
        ["J2", t1 + "001", _bad_check_char(known["credit"]), "不存在的地方甲乙丙丁", "0", "0",
         "5"],
        ["J3", t2, "", "", "", "", "7"],
        ["J4", "140403000000", "", "", "", "", "100"],
        ["J5", "999999", "", "", "", "", "1"],
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("exchange") / "joins.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "area", "credit", "addr", "x", "y", "amount"])
        w.writerows(rows)
    body = {
        "title_zh": "联接测试",
        "kind": "csv",
        "location": str(path),
        "key_column": "id",
        "mapping": {"area": "area_code", "credit": "credit_code", "addr": "address",
                    "x": "lon", "y": "lat", "amount": "value"},
        "owner": "stats",
    }  # fmt: skip
    r = api.put("/exchange/sources/joins", json=body, headers=people["stats_boss"])
    assert r.status_code == 200, r.text
    r = api.post("/exchange/sources/joins/sync", json={}, headers=people["stats_boss"])
    assert r.status_code == 200 and r.json()["state"] == "ok", r.text
    return "joins"


def test_sharing_needs_the_owners_approval(
    joins_source: str, people: dict[str, dict[str, str]], api: Any, db_url: str
) -> None:
    market, boss = people["market_user"], people["stats_boss"]
    assert api.get("/exchange/sources/joins/rows", headers=market).status_code == 403
    # Not published yet: nothing to apply for.
    assert api.post("/exchange/sources/joins/access", json={}, headers=market).status_code == 403
    # A clerk of the owner may read but not publish.
    assert api.get("/exchange/sources/joins/rows", headers=people["stats_clerk"]).status_code == 200
    assert (
        api.post("/exchange/sources/joins/publish", headers=people["stats_clerk"]).status_code
        == 403
    )
    assert api.post("/exchange/sources/joins/publish", headers=boss).status_code == 204
    r = api.post("/exchange/sources/joins/access", json={"purpose": "监管"}, headers=market)
    assert r.status_code == 201, r.text
    access_id = r.json()["id"]
    assert api.post("/exchange/sources/joins/access", json={}, headers=market).status_code == 409
    assert api.get("/exchange/sources/joins/rows", headers=market).status_code == 403
    # The applicant's own supervisor cannot approve it.
    decide = f"/exchange/access/{access_id}/decision"
    assert (
        api.post(decide, json={"decision": "approve"}, headers=people["market_boss"]).status_code
        == 403
    )
    r = api.post(decide, json={"decision": "approve", "note": "同意"}, headers=boss)
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    r = api.get("/exchange/sources/joins/rows", headers=market)
    assert r.status_code == 200 and r.json()["total"] == 5
    reads = api.get("/exchange/sources/joins/reads", headers=boss).json()
    assert reads[0]["username"] == "market_user" and reads[0]["what"] == "rows"
    with psycopg.connect(db_url) as conn:
        actions = {r[0] for r in conn.execute(
            "SELECT action FROM auth.audit_log WHERE object_type = 'exchange.access'"
            " AND object_id = %s", (str(access_id),)).fetchall()}  # fmt: skip
    assert actions == {"apply", "approve"}
    # Revoked: 403 again.
    assert api.post(decide, json={"decision": "revoke"}, headers=boss).status_code == 200
    assert api.get("/exchange/sources/joins/rows", headers=market).status_code == 403


def test_join_by_division_code(
    joins_source: str, known: dict[str, Any], people: dict[str, dict[str, str]], api: Any
) -> None:
    boss = people["stats_boss"]
    q = "/exchange/sources/joins/join?by=division&key=area_code&value=value"
    towns = api.get(q + "&level=town", headers=boss).json()
    t1, t2 = known["towns"]
    values = {f["properties"]["code"]: f["properties"]["value"] for f in towns["features"]}
    # J1 (the town) + J2 (a village of it) = 15; J3 = 7; J4 is a district: not a town.
    assert values == {t1: 15.0, t2: 7.0}
    assert (
        towns["kind"] == "choropleth" and towns["features"][0]["geometry"]["type"] == "MultiPolygon"
    )
    assert {u["key"] for u in towns["unjoined"]} == {"J4", "J5"}
    districts = api.get(q + "&level=district", headers=boss).json()
    by_district = {f["properties"]["code"]: f["properties"]["value"] for f in districts["features"]}
    assert by_district["140403"] >= 100.0  # J4, and J1-J3 if the towns are in 潞州区
    assert sum(by_district.values()) == 10 + 5 + 7 + 100
    assert [u["key"] for u in districts["unjoined"]] == ["J5"]


def test_join_by_credit_code_address_and_coordinates(
    joins_source: str, known: dict[str, Any], people: dict[str, dict[str, str]], api: Any
) -> None:
    boss = people["stats_boss"]
    r = api.get("/exchange/sources/joins/join?by=credit_code&key=credit_code", headers=boss)
    body = r.json()
    assert [f["id"] for f in body["features"]] == ["J1"]
    reasons = {u["key"]: u["reason"] for u in body["unjoined"]}
    assert "check character" in reasons["J2"] and set(reasons) == {"J2", "J3", "J4", "J5"}

    body = api.get("/exchange/sources/joins/join?by=address&key=address", headers=boss).json()
    assert [f["id"] for f in body["features"]] == ["J1"]
    assert "J2" in {u["key"] for u in body["unjoined"]}

    body = api.get("/exchange/sources/joins/join?by=coordinates&lon=lon&lat=lat&value=value",
                   headers=boss).json()  # fmt: skip
    assert [f["id"] for f in body["features"]] == ["J1"]
    assert body["features"][0]["properties"]["district_code"] == "140403"
    assert {u["key"]: u["reason"] for u in body["unjoined"]}["J2"] == "outside the city"


def test_statistics_from_the_2020_census(
    people: dict[str, dict[str, str]], api: Any, db_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_url) as conn:
        write_samples(conn, tmp_path)
        conn.commit()
    for name in ("census_2020", "stats_indicators"):
        assert run_sync(db_url, name, "full")["state"] == "ok"
    boss = people["stats_boss"]
    url = "/exchange/sources/census_2020/statistics?indicators=population&years=2020"
    body = api.get(url, headers=boss).json()
    assert body["synthesized"] is False
    figures = {r["area_code"]: r["value"] for r in body["table"]}
    assert len(figures) == 12 and sum(figures.values()) == 3_180_884
    assert all(figures[c] == v for c, v in CENSUS_2020.items())
    assert body["chart"]["by_area"][0]["data"][0] == 895_280  # 140403 sorts first
    assert len(body["choropleth"]["features"]) == 12
    exported = api.get(url + "&format=csv", headers=boss)
    assert exported.content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert len(lines) == 13 and lines[0][0] == "indicator"
    book = load_workbook(io.BytesIO(api.get(url + "&format=xlsx", headers=boss).content))
    assert book.active is not None and book.active.max_row == 13
    synth = api.get("/exchange/sources/stats_indicators/statistics?indicators=gdp,grain_output"
                    "&areas=140403,140404", headers=boss).json()  # fmt: skip
    assert synth["synthesized"] is True and len(synth["table"]) == 2 * 2 * 5
    assert len(synth["chart"]["by_year"]) == 4 and len(synth["chart"]["years"]) == 5


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/exchange/sources/joins/join?by=colour", None, 422),
        ("get", "/exchange/sources/joins/join?by=division&key=nothing", None, 422),
        ("get", "/exchange/sources/joins/join?by=division&key=area_code&level=street", None, 422),
        ("get", "/exchange/sources/nosuch/rows", None, 404),
        ("get", "/exchange/sources/joins/statistics?indicators=gdp", None, 422),
        ("get", "/exchange/sources/joins/statistics?indicators=gdp&years=20x1", None, 422),
        ("post", "/exchange/access/999999/decision", {"decision": "approve"}, 404),
        ("post", "/exchange/access/1/decision", {"decision": "maybe"}, 422),
        ("put", "/exchange/sources/Bad-Name", {}, 422),
    ],
)
def test_bad_input_is_a_4xx(
    joins_source: str,
    people: dict[str, dict[str, str]],
    api: Any,
    method: str,
    url: str,
    body: Any,
    status: int,
) -> None:
    r = getattr(api, method)(
        url, headers=people["stats_boss"], **({"json": body} if body is not None else {})
    )
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_registering_bad_sources(people: dict[str, dict[str, str]], api: Any) -> None:
    base = {"title_zh": "x", "kind": "csv", "location": "/nonexistent.csv", "key_column": "id",
            "mapping": {"a": "value"}, "owner": "stats"}  # fmt: skip
    boss = people["stats_boss"]
    for change, status, words in (
        ({"mapping": {"a": "no_such_element"}}, 422, "unknown data element"),
        ({"owner": "market"}, 403, "its own sources"),
        ({"owner": "nobody"}, 422, "unknown department"),
        ({"schedule_s": 5}, 422, "schedule_s"),
    ):
        r = api.put("/exchange/sources/bad_one", json=base | change, headers=boss)
        assert r.status_code == status and words in r.json()["detail"], r.text
    r = api.put("/exchange/sources/missing_file", json=base, headers=boss)
    assert r.status_code == 200
    run = api.post("/exchange/sources/missing_file/sync", json={}, headers=boss).json()
    assert run["state"] == "failed" and run["error"].endswith("does not exist")
