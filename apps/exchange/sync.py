"""Keeping a source's table in step: read, check every value against its data element, load.

A **full** run loads every valid row into a new table beside the live one and swaps them in
one transaction; an **incremental** run reads the rows changed since the last change time
loaded (the source's own index finds them) into a temporary staging table and merges them in
one transaction. Either way a run that fails, or is killed, halfway leaves the previous table
as it was. A refused row never replaces the loaded one of its key: in a full run the previous
row of a refused key is carried over.

Every run is a row of ``exchange.sync_run`` (counts, duration, error) with its refusals in
``exchange.refusal``; a failed run raises the alarm ``exchange.sync_failed`` on the source,
the next good one clears it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.rows import dict_row

from apps.exchange.readers import SourceError, read_source
from realtime import rules

SCHEMA = "exchange_data"
PG_TYPES = {
    "str": "text",
    "code": "text",
    "int": "bigint",
    "num": "double precision",
    "date": "date",
}
TRUTHY = frozenset({"1", "true", "t", "y", "yes", "d", "deleted", "是", "删除"})
# Refusals kept per run (all are counted): enough to fix a file, not a second copy of it.
KEEP_REFUSALS = 10_000
FAILED_RULE = "exchange.sync_failed"
LATE_RULE = "exchange.sync_late"


def live_table(name: str) -> sql.Composable:
    return sql.Identifier(SCHEMA, f"src_{name}")


@dataclass
class Checked:
    """A source frame after checking: the rows to load, the refusals and deletions."""

    rows: pd.DataFrame  # key, element columns (typed), changed_at
    refusals: pd.DataFrame  # row_no, key, column, value, reason
    refused_keys: list[str]
    deleted_keys: list[str]
    read: int
    watermark: str | None
    columns: dict[str, str] = field(default_factory=dict)  # element code -> element type
    total: int | None = None  # rows of the table after a full run
    added: int = 0  # new keys of an incremental run


def check(
    frame: pd.DataFrame, source: dict[str, Any], elements: dict[str, dict[str, Any]]
) -> Checked:
    """Judge every row of ``frame`` against the source's mapping and its data elements."""
    key_col, changed_col, deleted_col = (
        source["key_column"],
        source["changed_column"],
        source["deleted_column"],
    )
    mapping: dict[str, str] = source["mapping"]
    key_from = (source["options"] or {}).get("key_from")
    if key_from and all(c in frame.columns for c in key_from):
        # No single key column (a statistics table): the key is the columns that identify it.
        parts_ = [frame[c].astype(object).where(frame[c].notna(), "") for c in key_from]
        composed = parts_[0].astype(str).str.cat([p.astype(str) for p in parts_[1:]], sep="|")
        frame = frame.assign(**{key_col: composed})
    needed = [key_col, *mapping, *(c for c in (changed_col, deleted_col) if c)]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise SourceError(
            f"the header changed: missing column(s) {', '.join(missing)}; the source has "
            f"{', '.join(map(str, frame.columns[:20]))}"
        )
    n = len(frame)
    # Trimmed in Arrow (C), not by a Python call per key.
    keys = pd.Series(
        pc.utf8_trim_whitespace(
            pa.array(frame[key_col].astype(object), type=pa.string(), from_pandas=True)
        ).to_numpy(zero_copy_only=False),
        index=frame.index,
        dtype=object,
    )
    row_no = np.arange(1, n + 1)
    bad = np.zeros(n, dtype=bool)
    parts: list[pd.DataFrame] = []

    def refuse(mask: np.ndarray, column: str | None, values: Any, reason: Any) -> None:
        nonlocal bad
        if not mask.any():
            return
        bad |= mask
        parts.append(
            pd.DataFrame(
                {
                    "row_no": row_no[mask],
                    "key": keys.to_numpy()[mask],
                    "column": column,
                    "value": None if values is None else np.asarray(values, dtype=object)[mask],
                    "reason": reason if isinstance(reason, str) else np.asarray(reason)[mask],
                }
            )
        )

    empty = keys.isna().to_numpy() | (keys == "").to_numpy()
    refuse(empty, key_col, None, "empty key")
    dup = keys.duplicated(keep=False).to_numpy() & ~empty
    refuse(dup, key_col, keys, "duplicate key: the source holds it more than once")

    out = pd.DataFrame({"key": keys})
    types: dict[str, str] = {}
    for column, code in mapping.items():
        element = elements.get(code)
        if element is None:
            raise SourceError(f"column {column!r} is mapped to an unknown data element {code!r}")
        raw = frame[column]
        present = raw.notna().to_numpy()
        kind = element["type"]
        types[code] = kind
        if kind in ("int", "num"):
            value = pd.to_numeric(raw, errors="coerce")
            nan = value.isna().to_numpy()
            refuse(present & nan, column, raw, f"not a number ({element['code']})")
            if kind == "int":
                frac = ~nan & (value.to_numpy() % 1 != 0)
                refuse(frac, column, raw, f"not a whole number ({element['code']})")
            v = value.to_numpy()
            for limit, test, word in (("min", np.less, "below"), ("max", np.greater, "above")):
                if element[limit] is not None:
                    over = ~nan & test(v, element[limit])
                    refuse(
                        over,
                        column,
                        raw,
                        f"{word} the {limit} {element[limit]:g} of {element['code']}",
                    )
            if kind == "int":
                out[code] = value.where(~nan & (v % 1 == 0)).astype("Int64")
            else:
                out[code] = value.astype(float)
        elif kind == "date":
            value = pd.to_datetime(raw, errors="coerce", format="ISO8601")
            refuse(present & value.isna().to_numpy(), column, raw, "not a date (YYYY-MM-DD)")
            out[code] = value.dt.strftime("%Y-%m-%d")
        elif kind == "code":
            allowed = set(element["code_list"] or ())
            unknown = present & ~raw.isin(allowed).to_numpy()
            refuse(unknown, column, raw, f"not in the code list of {element['code']}")
            out[code] = raw
        else:
            out[code] = raw
    watermark: str | None = None
    if changed_col:
        raw = frame[changed_col]
        changed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        refuse(changed.isna().to_numpy(), changed_col, raw, "no valid change time")
        out["changed_at"] = changed
        if changed.notna().any():
            watermark = str(
                raw.iloc[
                    int(
                        np.nanargmax(
                            changed.to_numpy(dtype="int64", na_value=np.iinfo(np.int64).min)
                        )
                    )
                ]
            )
    else:
        out["changed_at"] = pd.NaT
    deleted = np.zeros(n, dtype=bool)
    if deleted_col:
        flag = (
            frame[deleted_col]
            .astype(object)
            .map(lambda v: isinstance(v, str) and v.strip().lower() in TRUTHY)
        )
        deleted = flag.to_numpy(dtype=bool) & ~bad
    refusals = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["row_no", "key", "column", "value", "reason"])
    )
    refused_keys = sorted({k for k in keys.to_numpy()[bad] if k})
    keep = ~bad & ~deleted
    return Checked(
        rows=out[keep].reset_index(drop=True),
        refusals=refusals,
        refused_keys=refused_keys,
        deleted_keys=list(keys.to_numpy()[deleted]),
        read=n,
        watermark=watermark,
        columns=types,
    )


def since_filter(frame: pd.DataFrame, changed_column: str, watermark: str) -> pd.DataFrame:
    """The rows of a file source changed after the watermark (rows without a valid change
    time stay in, so that they are refused and logged)."""
    changed = pd.to_datetime(frame[changed_column], errors="coerce", utc=True, format="ISO8601")
    mark = pd.to_datetime(watermark, utc=True, format="ISO8601")
    return frame[(changed > mark).to_numpy() | changed.isna().to_numpy()]


def csv_payload(rows: pd.DataFrame) -> bytes:
    """The rows as COPY's CSV (pyarrow writes it in C; a null is an empty unquoted field)."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            # Written as UTC without a zone: formatting with one is ten times slower in Arrow;
            # the loaders COPY with the session in UTC.
            naive = pc.cast(table.column(i), pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
            table = table.set_column(i, f.name, naive)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _create(conn: psycopg.Connection, table: sql.Composable, types: dict[str, str]) -> None:
    cols: list[sql.Composable] = [sql.SQL("key text NOT NULL")]
    cols += [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(PG_TYPES[t])) for c, t in types.items()
    ]
    cols.append(sql.SQL("changed_at timestamptz"))
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(cols)))


def _copy(conn: psycopg.Connection, table: sql.Composable, rows: pd.DataFrame) -> None:
    conn.execute("SET LOCAL TIME ZONE 'UTC'")  # csv_payload writes times in UTC
    names = sql.SQL(", ").join(sql.Identifier(c) for c in rows.columns)
    payload = csv_payload(rows)
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(table, names)) as copy,
    ):
        view = memoryview(payload)
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])


def _columns(conn: psycopg.Connection, name: str) -> dict[str, str] | None:
    rows = conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (f'{SCHEMA}."src_{name}"',),
    ).fetchall()
    return {r[0]: r[1] for r in rows} if rows else None


def load_full(
    conn: psycopg.Connection, source: dict[str, Any], checked: Checked, run_id: int
) -> tuple[int, int]:
    """Build the next table, carry refused keys' previous rows, swap (caller's transaction).
    Returns (rows loaded, rows deleted)."""
    name = source["name"]
    live, nxt = live_table(name), sql.Identifier(SCHEMA, f"src_{name}__next")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(nxt))
    _create(conn, nxt, checked.columns)
    _copy(conn, nxt, checked.rows)
    before = _columns(conn, name)
    same_shape = before is not None and list(before) == ["key", *checked.columns, "changed_at"]
    carried = 0
    if same_shape and checked.refused_keys:
        carried = conn.execute(
            sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE key = ANY(%s)").format(nxt, live),
            (checked.refused_keys,),
        ).rowcount
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (key)").format(
            nxt, sql.Identifier(f"pk_src_{source['id']}_{run_id}")
        )
    )
    deleted = 0
    if before is not None:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {} l"
                " WHERE NOT EXISTS (SELECT 1 FROM {} n WHERE n.key = l.key)"
            ).format(live, nxt)
        ).fetchone()
        deleted = int(row[0]) if row else 0
        conn.execute(sql.SQL("DROP TABLE {}").format(live))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(nxt, sql.Identifier(f"src_{name}")))
    checked.total = len(checked.rows) + carried
    return len(checked.rows), deleted


def load_incremental(
    conn: psycopg.Connection, source: dict[str, Any], checked: Checked
) -> tuple[int, int]:
    """Merge the changed rows and delete the deleted keys (caller's transaction)."""
    live = live_table(source["name"])
    conn.execute(sql.SQL("CREATE TEMP TABLE exchange_stage (LIKE {}) ON COMMIT DROP").format(live))
    stage = sql.Identifier("exchange_stage")
    _copy(conn, stage, checked.rows)
    cols = ["key", *checked.columns, "changed_at"]
    names = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols[1:]
    )
    # The rows that are new (not updates) keep the source's row count without a count(*).
    added = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {live} l"
            " WHERE l.key = s.key)"
        ).format(stage=stage, live=live)
    ).fetchone()
    conn.execute(
        sql.SQL(
            "INSERT INTO {live} ({names}) SELECT {names} FROM {stage} "
            "ON CONFLICT (key) DO UPDATE SET {updates}"
        ).format(live=live, names=names, stage=stage, updates=updates)
    )
    deleted = 0
    if checked.deleted_keys:
        cur = conn.execute(
            sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(live), (checked.deleted_keys,)
        )
        deleted = cur.rowcount
    checked.added = int(added[0]) if added else 0
    return len(checked.rows), deleted


def elements(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return {r["code"]: r for r in cur.execute("SELECT * FROM exchange.element").fetchall()}


def get_source(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM exchange.source WHERE name = %s", (name,)).fetchone()


def run_sync(db_url: str, name: str, mode: str = "auto", actor: str = "system") -> dict[str, Any]:
    """Sync one source and log the run; returns the run's row (``state`` ok or failed) and
    the alarm events to announce. ``auto``: incremental when the source has a change column
    and a loaded table, else full."""
    started = time.perf_counter()
    with psycopg.connect(db_url, autocommit=True) as log_conn:
        source = get_source(log_conn, name)
        if source is None:
            raise LookupError(f"no source {name!r}")
        loaded = _columns(log_conn, name) is not None
        if mode == "auto":
            mode = (
                "incremental"
                if source["changed_column"] and loaded and source["watermark"]
                else "full"
            )
        elif mode == "incremental" and not (source["changed_column"] and loaded):
            mode = "full"  # nothing to be incremental against yet
        row = log_conn.execute(
            "INSERT INTO exchange.sync_run (source_id, mode, actor) VALUES (%s, %s, %s)"
            " RETURNING id",
            (source["id"], mode, actor),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        log_conn.execute(
            "UPDATE exchange.source SET state = 'running', last_run_at = now() WHERE id = %s",
            (source["id"],),
        )
    error: str | None = None
    checked: Checked | None = None
    loaded_n = deleted_n = 0
    try:
        with psycopg.connect(db_url) as conn:
            since = source["watermark"] if mode == "incremental" else None
            frame = read_source(
                source["kind"],
                source["location"],
                query=source["query"],
                options=source["options"],
                changed_column=source["changed_column"],
                since=since,
            )
            if (
                since is not None
                and source["kind"] != "sql"
                and (source["changed_column"] in frame.columns)
            ):
                frame = since_filter(frame, source["changed_column"], since)
            checked = check(frame, source, elements(conn))
            if mode == "full":
                loaded_n, deleted_n = load_full(conn, source, checked, run_id)
            else:
                loaded_n, deleted_n = load_incremental(conn, source, checked)
            _finish(conn, source, run_id, "ok", checked, loaded_n, deleted_n, None, started)
            conn.commit()
    # Whatever stops a run (an unreadable source, a database error, a bug) is the run's error:
    # logged and alarmed, the previous table intact, never an exception for the caller.
    except Exception as exc:
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with psycopg.connect(db_url) as conn:
            _finish(conn, source, run_id, "failed", checked, 0, 0, error, started)
            conn.commit()
    with psycopg.connect(db_url) as conn:
        announced = rules.apply(conn, [_alarm(source, error)])
        conn.commit()
        with conn.cursor(row_factory=dict_row) as cur:
            run = cur.execute("SELECT * FROM exchange.sync_run WHERE id = %s", (run_id,)).fetchone()
    assert run is not None
    run["source"] = name
    run["alarms"] = announced
    return run


def _finish(
    conn: psycopg.Connection,
    source: dict[str, Any],
    run_id: int,
    state: str,
    checked: Checked | None,
    loaded: int,
    deleted: int,
    error: str | None,
    started: float,
) -> None:
    refused = len(checked.refusals) if checked is not None else 0
    conn.execute(
        """
        UPDATE exchange.sync_run SET state = %s, finished_at = now(), duration_ms = %s,
               rows_read = %s, rows_loaded = %s, rows_deleted = %s, rows_refused = %s, error = %s
        WHERE id = %s
        """,
        (
            state,
            (time.perf_counter() - started) * 1000.0,
            checked.read if checked else 0,
            loaded,
            deleted,
            refused,
            error,
            run_id,
        ),
    )
    if checked is not None and refused:
        kept = checked.refusals.head(KEEP_REFUSALS)
        with (
            conn.cursor() as cur,
            cur.copy(
                'COPY exchange.refusal (run_id, row_no, key, "column", value, reason) FROM STDIN'
            ) as copy,
        ):
            for r in kept.itertuples(index=False):
                copy.write_row((run_id, int(r.row_no), r.key, r.column, r.value, r.reason))
    if state == "ok":
        assert checked is not None
        conn.execute(
            "UPDATE exchange.source SET state = 'ok', last_ok_at = now(),"
            " watermark = coalesce(%s, watermark),"
            " rows = coalesce(%s, rows + %s - %s) WHERE id = %s",
            (checked.watermark, checked.total, checked.added, deleted, source["id"]),
        )
    else:
        conn.execute("UPDATE exchange.source SET state = 'failed' WHERE id = %s", (source["id"],))


def _alarm(source: dict[str, Any], error: str | None) -> rules.Condition:
    title = source["title_zh"]
    return rules.Condition(
        "exchange",
        FAILED_RULE,
        f"source:{source['name']}",
        error is not None,
        3,
        message_zh=f"数据源 {title} 同步失败：{error}",
        message_en=f"source {source['name']} failed to sync: {error}",
    )


def late_conditions(conn: psycopg.Connection) -> list[rules.Condition]:
    """Sources with a schedule whose last good run is older than two periods: late."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT name, title_zh, schedule_s,
                   coalesce(last_ok_at, created_at) < now() - 2 * schedule_s * interval '1 s'
                       AS late
            FROM exchange.source WHERE schedule_s IS NOT NULL
            """
        ).fetchall()
    return [
        rules.Condition(
            "exchange",
            LATE_RULE,
            f"source:{r['name']}",
            bool(r["late"]),
            2,
            message_zh=f"数据源 {r['title_zh']} 超过两个同步周期未更新",
            message_en=f"source {r['name']} has not synced for two periods",
        )
        for r in rows
    ]


def due_sources(conn: psycopg.Connection) -> list[str]:
    """Sources whose schedule says a run is due (none running)."""
    rows = conn.execute(
        """
        SELECT name FROM exchange.source
        WHERE schedule_s IS NOT NULL
          -- a run killed mid-way leaves 'running': retried after an hour
          AND (state <> 'running' OR last_run_at < now() - interval '1 hour')
          AND (last_run_at IS NULL OR last_run_at < now() - schedule_s * interval '1 s')
        ORDER BY last_run_at NULLS FIRST
        """
    ).fetchall()
    return [r[0] for r in rows]
