"""Reading a source into a frame of text columns: CSV, Excel, XML files (or the newest file of
a drop folder), SQL databases through SQLAlchemy, JSON endpoints on the local network.

Every reader returns a :class:`pandas.DataFrame` whose columns are the source's own, all as
strings (``None`` for missing), so that one validator judges every source the same way. A
reader that cannot read raises :class:`SourceError` with a message naming what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import ipaddress
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import charset_normalizer
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

# Bigger files are refused before reading: a sync holds one source in memory.
MAX_FILE_BYTES = 1 << 30
SQL_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 15
SUFFIXES = {"csv": (".csv", ".txt"), "excel": (".xlsx", ".xlsm"), "xml": (".xml",)}


class SourceError(Exception):
    """A source that cannot be read as registered; the message says why (one line)."""


def read_source(
    kind: str,
    location: str,
    *,
    query: str | None = None,
    options: dict[str, Any] | None = None,
    changed_column: str | None = None,
    since: str | None = None,
) -> pd.DataFrame:
    """All rows of a source (or, for SQL with ``since``, those changed after it)."""
    options = options or {}
    if kind == "sql":
        return read_sql(location, query or "", changed_column, since, options)
    if kind == "json":
        return read_json(location, query, options)
    path = resolve_file(kind, location)
    if kind == "csv":
        return read_csv(path, options.get("encoding"), options.get("delimiter", ","))
    if kind == "excel":
        return read_excel(path, options.get("sheet"))
    if kind == "xml":
        return read_xml(path, query)
    raise SourceError(f"unknown source kind {kind!r}")


def resolve_file(kind: str, location: str) -> Path:
    """The file to read: ``location`` itself, or the newest matching file of a drop folder."""
    path = Path(location)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.suffix.lower() in SUFFIXES[kind] and p.is_file()]
        if not found:
            raise SourceError(f"the drop folder {path} holds no {kind} file")
        path = max(found, key=lambda p: (p.stat().st_mtime, p.name))
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SourceError(
            f"{path.name} is {size / 2**30:.1f} GiB, over the limit of "
            f"{MAX_FILE_BYTES / 2**30:.1f} GiB: split it or use a database source"
        )
    return path


def decode(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Text of a file and the encoding used: the one given, else a BOM, UTF-8, or the best
    guess of charset-normalizer (GBK/GB18030 for most Chinese office files)."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise SourceError(f"the file is not in {encoding}: {exc}") from None
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for candidate in ("gb18030",):  # a superset of GBK and GB2312
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            pass
    best = charset_normalizer.from_bytes(raw[: 1 << 20]).best()
    if best is None:
        raise SourceError("the file's encoding cannot be recognised (not UTF-8 nor GBK)")
    try:
        return raw.decode(best.encoding), best.encoding
    except UnicodeDecodeError as exc:
        raise SourceError(f"the file is not text in {best.encoding}: {exc}") from None


def read_csv(path: Path, encoding: str | None = None, delimiter: str = ",") -> pd.DataFrame:
    raw = path.read_bytes()
    text, used = decode(raw, encoding)
    first = text.split("\n", 1)[0].strip("\r")
    if not first.strip():
        raise SourceError(f"{path.name} is empty: it has no header row")
    names = next(csv.reader([first], delimiter=delimiter))
    if len(set(names)) != len(names):
        raise SourceError(f"{path.name}: the header names a column twice ({first})")
    # UTF-8 is parsed as it is; anything else once re-encoded (pyarrow reads UTF-8 only).
    utf8 = raw if used == "utf-8" else raw[3:] if used == "utf-8-sig" else text.encode("utf-8")
    try:
        table = pacsv.read_csv(
            io.BytesIO(utf8),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                # Every column as text: the data elements say what it should be.
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{path.name}: {str(exc).splitlines()[0]}") from None
    return table.to_pandas()


def read_excel(path: Path, sheet: str | None = None) -> pd.DataFrame:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise SourceError(f"{path.name} is not an Excel workbook: {exc}") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise SourceError(f"{path.name} has no sheet {sheet!r} ({', '.join(book.sheetnames)})")
        rows = book[sheet] if sheet else book.worksheets[0]
        it = rows.iter_rows(values_only=True)
        header = next(it, None)
        if header is None:
            raise SourceError(f"{path.name}: the sheet is empty")
        names = [str(h).strip() if h is not None else f"column_{i}" for i, h in enumerate(header)]
        body = [[_text(v) for v in r] for r in it if any(v is not None for v in r)]
    finally:
        book.close()
    return pd.DataFrame(body, columns=names, dtype=object)


def read_xml(path: Path, record: str | None = None) -> pd.DataFrame:
    """Records are the elements named ``record`` (default: the root's children); fields are
    their attributes and child elements' text."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"{path.name} is not well-formed XML: {exc}") from None
    records = root.iter(record) if record else iter(root)
    rows = []
    for el in records:
        if not isinstance(el.tag, str):
            continue
        row = {k: v for k, v in el.attrib.items()}
        for child in el:
            if isinstance(child.tag, str):
                row[etree.QName(child).localname] = (child.text or "").strip() or None
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


def read_sql(
    url: str,
    query: str,
    changed_column: str | None,
    since: str | None,
    options: dict[str, Any],
) -> pd.DataFrame:
    """Rows of a table (a bare name) or a SELECT on any SQLAlchemy database; with ``since``,
    only rows whose change column is later (the source's index on it does the finding)."""
    import sqlalchemy as sa

    timeout = int(options.get("timeout_s", SQL_TIMEOUT_S))
    # A bare postgresql:// URL means psycopg 3, the driver the platform ships.
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        engine = sa.create_engine(url, **_connect_args(url, timeout))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise SourceError(f"not a database URL SQLAlchemy can use: {exc}") from None
    quote = engine.dialect.identifier_preparer.quote
    body = query.strip()
    if not body:
        raise SourceError("a SQL source needs a table name or a SELECT (query)")
    if not body.lower().startswith(("select", "with")):
        body = "SELECT * FROM " + ".".join(quote(p) for p in body.split("."))
    params: dict[str, Any] = {}
    if since is not None and changed_column:
        body = f"SELECT * FROM ({body}) AS s WHERE s.{quote(changed_column)} > :since"
        params["since"] = since
    try:
        # Untyped binds: the source compares in its own type (no ::VARCHAR cast added).
        binds = [sa.bindparam(k, v, type_=sa.types.NullType()) for k, v in params.items()]
        compiled = sa.text(body).bindparams(*binds).compile(dialect=engine.dialect)
        args: Any = (
            tuple(compiled.params[k] for k in compiled.positiontup or ())
            if engine.dialect.positional
            else compiled.params
        )
        with engine.connect() as conn:
            # The driver's own cursor: its tuples as they come, without a SQLAlchemy Row each
            # (a million rows read in a third of the time).
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(compiled), args)
                names = [d[0] for d in cursor.description]
                rows = cursor.fetchall()
            finally:
                cursor.close()
    except sa.exc.SQLAlchemyError as exc:
        message = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        raise SourceError(f"the source database failed: {message[0] if message else exc}") from None
    except engine.dialect.loaded_dbapi.Error as exc:
        message = str(exc).strip().splitlines()
        raise SourceError(f"the source database failed: {message[0] if message else exc}") from None
    finally:
        engine.dispose()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pd.DataFrame(
        {n: _texts(col) for n, col in zip(names, columns, strict=True)}, columns=names
    )


def _texts(values: tuple[Any, ...]) -> Any:
    """A column of database values as text: through Arrow when the column has one type (fast,
    in C), value by value when it mixes them (SQLite allows that)."""
    try:
        arr = pa.array(values, from_pandas=True)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return arr.to_pandas()
        if (
            pa.types.is_integer(arr.type)
            or pa.types.is_floating(arr.type)
            or (pa.types.is_decimal(arr.type) or pa.types.is_null(arr.type))
        ):
            return arr.cast(pa.string()).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    return pd.Series([_text(v) for v in values], dtype=object)


def _connect_args(url: str, timeout: int) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": timeout}}
    if url.startswith("postgresql+psycopg"):
        return {
            "connect_args": {
                "connect_timeout": min(timeout, 10),
                # A slow source must not hold a run for ever.
                "options": f"-c statement_timeout={timeout * 1000}",
            }
        }
    return {}


def read_json(url: str, record: str | None, options: dict[str, Any]) -> pd.DataFrame:
    """A JSON list of objects (or the list under ``record``) from an endpoint on the local
    network: hosts outside private, loopback and link-local addresses are refused."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{url!r} is not an http(s) URL")
    try:
        addresses = {str(a[4][0]) for a in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except socket.gaierror:
        raise SourceError(f"the host {parts.hostname} cannot be resolved") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_private or ip.is_loopback or ip.is_link_local):
            raise SourceError(f"{parts.hostname} ({ip}) is not on the local network")
    timeout = float(options.get("timeout_s", HTTP_TIMEOUT_S))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"the endpoint failed: {exc}") from None
    if len(body) > MAX_FILE_BYTES:
        raise SourceError("the endpoint's answer is over the size limit")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"the endpoint did not answer JSON: {exc}") from None
    if record:
        for step in record.split("."):
            data = data.get(step) if isinstance(data, dict) else None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SourceError(
            "the endpoint's answer is not a list of objects"
            + (f" under {record!r}" if record else "")
        )
    return pd.DataFrame([{k: _text(v) for k, v in r.items()} for r in data], dtype=object)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    text = str(value).strip()
    return text or None
