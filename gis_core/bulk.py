"""Bulk loading through PostgreSQL ``COPY``: the fast path for frames of rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg
import shapely
from psycopg import sql


def _plain(value: Any) -> Any:
    """A value psycopg's COPY can write: no numpy scalars, no NaN, JSON as text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, date | datetime | str | int | bool):
        return value
    return value


def ewkb_hex(geoms: Iterable[Any], srid: int) -> list[str | None]:
    arr = np.asarray(list(geoms), dtype=object)
    arr = shapely.set_srid(arr, srid)
    return list(shapely.to_wkb(arr, hex=True, include_srid=True))


def copy_rows(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    on_row: Callable[[], None] | None = None,
) -> int:
    """COPY rows into ``schema.table`` (columns in order); return the count."""
    schema, name = table.split(".", 1)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row([_plain(v) for v in row])
            count += 1
            if on_row is not None:
                on_row()
    return count


def copy_frame(
    conn: psycopg.Connection,
    table: str,
    frame: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    geometry: str | None = "geom",
    srid: int = 4326,
) -> int:
    """COPY a (Geo)DataFrame into a table; the geometry column travels as hex EWKB."""
    columns = list(columns or frame.columns)
    data = {c: frame[c].tolist() for c in columns if c != geometry}
    if geometry is not None and geometry in columns:
        data[geometry] = ewkb_hex(frame[geometry].values, srid)
    rows = zip(*(data[c] for c in columns), strict=True)
    return copy_rows(conn, table, columns, rows)
