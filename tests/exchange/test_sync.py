"""Syncs against real sources started here: CSV (UTF-8, BOM, GBK), Excel, XML, SQLite files
and a second PostgreSQL database; the loaded table must equal the source after a full and an
incremental run, a killed or failed run must leave the previous table, bad rows are refused
with their reasons."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openpyxl import Workbook

from apps.exchange import service
from apps.exchange.sync import check, elements, get_source, load_full, run_sync

pytestmark = pytest.mark.services

MAPPING = {"name": "name_zh", "area": "area_code", "kind": "indicator", "amount": "value"}


def _write_csv(path: Path, rows: list[list[Any]], encoding: str = "utf-8") -> None:
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "area", "kind", "amount", "changed"])
        w.writerows(rows)


def _register(db_url: str, name: str, kind: str, location: str, **extra: Any) -> None:
    with psycopg.connect(db_url) as conn:
        service.save_source(
            conn,
            None,
            {
                "name": name,
                "title_zh": name,
                "kind": kind,
                "location": location,
                "key_column": "id",
                "changed_column": "changed",
                "mapping": MAPPING,
                "owner": "command",
                **extra,
            },
        )
        conn.commit()


def _loaded(db_url: str, name: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            f'SELECT key, name_zh, area_code, indicator, value FROM exchange_data."src_{name}"'
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


ROWS = [
    ["A1", "潞州区甲企业", "140403", "gdp", "10.5", "2026-01-01T08:00:00+08:00"],
    ["A2", "上党区乙企业", "140404", "gdp", "20", "2026-01-01T08:00:00+08:00"],
    ["A3", "屯留区丙企业", "140405", "population", "30", "2026-01-02T08:00:00+08:00"],
]


def _expected(rows: list[list[Any]]) -> dict[str, tuple[Any, ...]]:
    return {r[0]: (r[1], r[2], r[3], float(r[4])) for r in rows}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_full_then_incremental_equals_the_file(
    reference: object, db_url: str, tmp_path: Path, encoding: str
) -> None:
    name = f"csv_{encoding.replace('-', '_')}"
    path = tmp_path / "enterprises.csv"
    _write_csv(path, ROWS, encoding)
    _register(db_url, name, "csv", str(path))
    run = run_sync(db_url, name, "auto")
    assert (run["state"], run["mode"], run["rows_loaded"]) == ("ok", "full", 3), run
    assert _loaded(db_url, name) == _expected(ROWS)
    # A2 changes, A4 is new, A1 is left alone (older than the watermark: not even read).
    changed = [
        ROWS[0],
        ["A2", "上党区乙企业", "140404", "gdp", "25", "2026-01-03T08:00:00+08:00"],
        ROWS[2],
        ["A4", "潞城区丁企业", "140406", "gdp", "40", "2026-01-03T09:00:00+08:00"],
    ]
    _write_csv(path, changed, encoding)
    run = run_sync(db_url, name, "auto")
    assert (run["state"], run["mode"], run["rows_read"], run["rows_loaded"]) == (
        "ok",
        "incremental",
        2,
        2,
    ), run
    assert _loaded(db_url, name) == _expected(changed)


def test_refused_rows_keep_their_previous_value_and_say_why(
    reference: object, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "refusals.csv"
    _write_csv(path, ROWS)
    _register(db_url, "refusals", "csv", str(path), changed_column=None)
    assert run_sync(db_url, "refusals", "full")["state"] == "ok"
    bad = [
        ["A1", "甲", "140403", "gdp", "abc", "x"],  # not a number: A1 keeps 10.5
        ["A2", "乙", "140404", "tourism", "5", "x"],  # not in the code list
        ["A3", "丙", "140405", "gdp", "7", "x"],
        ["A3", "丙2", "140405", "gdp", "8", "x"],  # duplicate key: both refused
        ["", "无键", "140405", "gdp", "1", "x"],  # empty key
        ["A5", "戊", "140406", "gdp", "9", "x"],
    ]
    _write_csv(path, bad)
    run = run_sync(db_url, "refusals", "full")
    assert (run["state"], run["rows_read"], run["rows_loaded"]) == ("ok", 6, 1), run
    with psycopg.connect(db_url) as conn:
        reasons = {(r["key"], r["reason"].split(" (")[0].split(" of ")[0])
                   for r in service.refusals(conn, run["id"])}  # fmt: skip
    assert reasons == {
        ("A1", "not a number"),
        ("A2", "not in the code list"),
        ("A3", "duplicate key: the source holds it more than once"),
        (None, "empty key"),
    }
    loaded = _loaded(db_url, "refusals")
    # A1, A2, A3 refused: their previous rows carried over; A5 new.
    assert loaded == {**_expected(ROWS), "A5": ("戊", "140406", "gdp", 9.0)}


def test_a_changed_header_fails_the_run_and_keeps_the_table(
    reference: object, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "header.csv"
    _write_csv(path, ROWS)
    _register(db_url, "header", "csv", str(path))
    assert run_sync(db_url, "header", "full")["state"] == "ok"
    path.write_text("id,名称,area\nA1,x,140403\n", encoding="utf-8")
    run = run_sync(db_url, "header", "full")
    assert run["state"] == "failed"
    missing = run["error"].removeprefix("the header changed: missing column(s) ").split(";")[0]
    assert sorted(missing.split(", ")) == ["amount", "changed", "kind", "name"], run["error"]
    assert _loaded(db_url, "header") == _expected(ROWS)
    with psycopg.connect(db_url) as conn:
        state, alarm = conn.execute(
            "SELECT s.state, (SELECT count(*) FROM iot.alarm a WHERE a.device_id = 'source:header'"
            " AND a.rule = 'exchange.sync_failed' AND a.cleared_at IS NULL)"
            " FROM exchange.source s WHERE s.name = 'header'"
        ).fetchone()  # type: ignore[misc]
    assert (state, alarm) == ("failed", 1)
    _write_csv(path, ROWS)
    assert run_sync(db_url, "header", "full")["state"] == "ok"
    with psycopg.connect(db_url) as conn:
        open_alarms = conn.execute(
            "SELECT count(*) FROM iot.alarm WHERE device_id = 'source:header'"
            " AND cleared_at IS NULL"
        ).fetchone()
    assert open_alarms == (0,)


def test_a_run_killed_halfway_leaves_the_previous_table(
    reference: object, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "killed.csv"
    _write_csv(path, ROWS)
    _register(db_url, "killed", "csv", str(path))
    assert run_sync(db_url, "killed", "full")["state"] == "ok"
    _write_csv(path, [["B1", "新", "140403", "gdp", "1", "2026-02-01T00:00:00+08:00"]])
    from apps.exchange.readers import read_source

    conn = psycopg.connect(db_url)
    src = get_source(conn, "killed")
    assert src is not None
    checked = check(read_source("csv", str(path)), src, elements(conn))
    load_full(conn, src, checked, run_id=999_999)  # the swap is done, not committed
    pid = conn.info.backend_pid
    with psycopg.connect(db_url, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    assert _loaded(db_url, "killed") == _expected(ROWS)


def test_excel_and_xml_sources(reference: object, db_url: str, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "name", "area", "kind", "amount", "changed"])
    for r in ROWS:
        sheet.append([r[0], r[1], r[2], r[3], float(r[4]), r[5]])
    book.save(tmp_path / "book.xlsx")
    _register(db_url, "excel_src", "excel", str(tmp_path))  # a drop folder
    assert run_sync(db_url, "excel_src", "full")["state"] == "ok"
    assert _loaded(db_url, "excel_src") == _expected(ROWS)

    body = "".join(
        f'<row id="{r[0]}"><name>{r[1]}</name><area>{r[2]}</area><kind>{r[3]}</kind>'
        f"<amount>{r[4]}</amount><changed>{r[5]}</changed></row>"
        for r in ROWS
    )
    (tmp_path / "rows.xml").write_text(f"<rows>{body}</rows>", encoding="utf-8")
    _register(db_url, "xml_src", "xml", str(tmp_path / "rows.xml"), query="row")
    assert run_sync(db_url, "xml_src", "full")["state"] == "ok"
    assert _loaded(db_url, "xml_src") == _expected(ROWS)


def _sqlite(path: Path, rows: list[tuple[Any, ...]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS firm (id TEXT PRIMARY KEY, name TEXT, area TEXT,"
            " kind TEXT, amount REAL, changed TEXT, gone INTEGER DEFAULT 0)"
        )
        db.executemany("INSERT OR REPLACE INTO firm VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def test_sqlite_full_incremental_and_deletes(
    reference: object, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "registry.sqlite"
    _sqlite(path, [(*r[:4], float(r[4]), r[5][:19], 0) for r in ROWS])
    _register(db_url, "sqlite_src", "sql", f"sqlite:///{path}", query="firm",
              deleted_column="gone")  # fmt: skip
    assert run_sync(db_url, "sqlite_src", "auto")["mode"] == "full"
    assert _loaded(db_url, "sqlite_src") == _expected(ROWS)
    later = "2026-01-05T00:00:00"
    _sqlite(path, [("A2", "乙", "140404", "gdp", 21.0, later, 0),
                   ("A3", "丙", "140405", "population", 30.0, later, 1)])  # fmt: skip
    run = run_sync(db_url, "sqlite_src", "auto")
    assert (run["mode"], run["rows_read"], run["rows_loaded"], run["rows_deleted"]) == (
        "incremental",
        2,
        1,
        1,
    )
    assert _loaded(db_url, "sqlite_src") == {
        "A1": _expected(ROWS)["A1"],
        "A2": ("乙", "140404", "gdp", 21.0),
    }


def test_a_second_postgresql_database_and_one_that_is_down(reference: object, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS exchange_source")
        conn.execute("CREATE DATABASE exchange_source")
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    other = psycopg.conninfo.make_conninfo(db_url, dbname="exchange_source")
    with psycopg.connect(other) as src:
        src.execute(
            "CREATE TABLE firm (id text PRIMARY KEY, name text, area text, kind text,"
            " amount numeric, changed timestamptz)"
        )
        src.cursor().executemany("INSERT INTO firm VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    url = (
        f"postgresql://{info['user']}:{info.get('password', '')}@{info.get('host', 'localhost')}"
        f":{info.get('port', 5432)}/exchange_source"
    )
    _register(db_url, "pg_src", "sql", url, query="public.firm")
    run = run_sync(db_url, "pg_src", "auto")
    assert run["state"] == "ok", run
    assert _loaded(db_url, "pg_src") == _expected(ROWS)
    with psycopg.connect(other) as src:
        src.execute("UPDATE firm SET amount = 11, changed = '2026-03-01T00:00:00+08' WHERE id='A1'")
    run = run_sync(db_url, "pg_src", "auto")
    assert (run["mode"], run["rows_read"]) == ("incremental", 1), run
    assert _loaded(db_url, "pg_src")["A1"][3] == 11.0
    # The source goes down: the run fails with the reason, the table stays.
    _register(db_url, "pg_src", "sql", url.replace("/exchange_source", "/no_such_db"),
              query="public.firm")  # fmt: skip
    run = run_sync(db_url, "pg_src", "full")
    assert run["state"] == "failed" and "the source database failed" in run["error"]
    assert _loaded(db_url, "pg_src")["A1"][3] == 11.0


def test_a_slow_source_database_is_cut_off(reference: object, db_url: str) -> None:
    """The statement timeout of a SQL source ends a query that would hang the run."""
    other = psycopg.conninfo.make_conninfo(db_url, dbname="exchange_source")
    info = psycopg.conninfo.conninfo_to_dict(other)
    url = (
        f"postgresql://{info['user']}:{info.get('password', '')}@{info.get('host', 'localhost')}"
        f":{info.get('port', 5432)}/changzhi"
    )
    _register(db_url, "slow_src", "sql", url, options={"timeout_s": 1},
              query="SELECT 'A1' AS id, 'x' AS name, '140403' AS area, 'gdp' AS kind,"
                    " 1 AS amount, now() AS changed, pg_sleep(30) AS z")  # fmt: skip
    run = run_sync(db_url, "slow_src", "full")
    assert run["state"] == "failed" and "statement timeout" in run["error"], run


def test_a_2_gb_file_is_refused_before_reading(
    reference: object, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    _write_csv(path, ROWS)
    _register(db_url, "huge", "csv", str(path))
    assert run_sync(db_url, "huge", "full")["state"] == "ok"
    with path.open("r+b") as f:
        f.truncate(2 << 30)  # sparse: 2 GiB on paper, nothing on disk
    run = run_sync(db_url, "huge", "full")
    assert run["state"] == "failed" and "2.0 GiB, over the limit" in run["error"], run
    assert _loaded(db_url, "huge") == _expected(ROWS)
