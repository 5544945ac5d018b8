"""Reading and writing GIS files: GeoPackage, Shapefile (zipped or not), GeoJSON and CSV.

:func:`read_features` turns a file into a validated frame in EPSG:4326, ready to be stored:

- the CRS comes from the file (``.prj``, the GeoPackage SRS, GeoJSON = CRS84), or is assumed
  WGS84 when the file has none, and an explicit override wins (``"GCJ02"`` included: GCJ-02
  data usually carries a WGS84 ``.prj``, and PROJ does not know the datum);
- text encodings are honoured (``.cpg``, the DBF header) or detected (UTF-8, then GB18030, a
  superset of the GBK common in Chinese Shapefiles and CSVs);
- every feature is checked. Missing or empty geometries, non-finite or out-of-range coordinates
  and a mix of points, lines and polygons reject the file as a whole, with each failing row
  named; invalid geometries are repaired with ``shapely.make_valid`` and the repair reported.

:func:`write_features` writes a frame to GeoPackage, GeoJSON, CSV (WKT) or a zipped Shapefile.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import re
import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeAlias

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.exceptions import CRSError

from gis_core.crs import GCJ02, WGS84, UnknownCRSError, parse_crs, transform_geometry

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ImportFileError",
    "ImportRejected",
    "ReadResult",
    "RowProblem",
    "UnsupportedFormat",
    "read_features",
    "write_features",
]

READ_FORMATS: Final = {
    ".gpkg": "GeoPackage",
    ".zip": "zipped Shapefile",
    ".shp": "Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".csv": "CSV",
}
WRITE_FORMATS: Final = {
    ".gpkg": "GeoPackage",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".csv": "CSV (WKT geometry)",
    ".zip": "zipped Shapefile",
}

# CSV column names recognised without being told (compared case-insensitively).
LON_NAMES: Final = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES: Final = ("lat", "latitude", "y", "纬度")
WKT_NAMES: Final = ("wkt", "geometry", "geom", "the_geom")
# Columns that identify a feature to a person reading an error message.
ID_NAMES: Final = ("id", "fid", "objectid", "gid", "code", "编号", "编码")
MAX_LISTED: Final = 20

_DIMENSION_NAMES: Final = {0: "point", 1: "line", 2: "polygon"}
_GEOMETRYCOLLECTION: Final = 7

SourceCRS: TypeAlias = int | str | ProjCRS


class ImportFileError(ValueError):
    """The file cannot be read at all; the message names the file and the problem."""


class UnsupportedFormat(ValueError):
    """A file extension this module cannot read or write."""


@dataclass(frozen=True)
class RowProblem:
    """Why one feature was rejected; ``row`` is its 1-based position in the file."""

    row: int
    reason: str
    ident: str | None = None

    def __str__(self) -> str:
        who = f"row {self.row}" + (f" ({self.ident})" if self.ident else "")
        return f"{who}: {self.reason}"


class ImportRejected(ValueError):
    """Some features are unusable; nothing was imported. ``problems`` lists them all."""

    def __init__(self, source: str, problems: Sequence[RowProblem], total: int) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: p.row)
        self.total = total
        n = len(self.problems)
        lines = [
            f"{source}: {n} of {total} feature{'s' if total != 1 else ''} rejected, "
            "nothing was imported"
        ]
        lines += [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more")
        super().__init__("\n".join(lines))


@dataclass
class ReadResult:
    """A file read, checked and converted to EPSG:4326.

    Attributes
    ----------
    frame
        GeoDataFrame with the file's attribute columns and the geometry column ``geom`` in
        EPSG:4326; the index (``row``) is each feature's 1-based position in the file.
    source_crs
        What the coordinates were, e.g. ``"EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM
        114E)"`` or ``"GCJ-02 (given; the file says EPSG:4326)"``.
    repaired
        ``(row, reason)`` for every geometry repaired by ``make_valid``.
    geometry_type
        ``Point``, ``MultiPoint``, ``MultiLineString`` or ``MultiPolygon``; lines and polygons
        are always promoted to their Multi* type so one column type fits every row.
    source
        The file name (with the layer for multi-layer sources), for messages and the audit.
    converted
        Whether the coordinates were transformed (False when they already were WGS84).
    encoding
        The text encoding used, for Shapefiles and CSVs.
    id_column
        The column naming features in messages, if the file has one.
    notes
        Anything else worth telling the person importing (dropped Z values, ...).
    """

    frame: gpd.GeoDataFrame
    source_crs: str
    repaired: list[tuple[int, str]]
    geometry_type: str
    source: str = ""
    converted: bool = False
    encoding: str | None = None
    id_column: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass
class _Raw:
    """A file as read, before checking: attributes, geometries in the source CRS."""

    attrs: pd.DataFrame
    geoms: np.ndarray
    crs: ProjCRS | None
    source: str
    encoding: str | None = None
    # Rows already known to be unusable (CSV cells that are not numbers, bad WKT, ...).
    early: dict[int, str] = field(default_factory=dict)
    crs_hint: int | None = None  # an SRID from EWKT, used when nothing else says


# --------------------------------------------------------------------------- reading


def read_features(
    path: str | os.PathLike[str],
    *,
    crs_override: int | str | None = None,
    layer: str | None = None,
    encoding: str | None = None,
    lon: str | None = None,
    lat: str | None = None,
    wkt: str | None = None,
) -> ReadResult:
    """Read a GIS file, check every feature and convert it to EPSG:4326.

    Parameters
    ----------
    path
        A ``.gpkg``, ``.zip`` (Shapefile inside), ``.shp``, ``.geojson``/``.json`` or ``.csv``.
    crs_override
        The CRS the coordinates really are in, replacing what the file says: anything
        :func:`gis_core.crs.parse_crs` accepts, ``"GCJ02"`` included.
    layer
        Which table of a GeoPackage (or which ``.shp`` of a zip holding several).
    encoding
        Text encoding of a Shapefile's attributes or of a CSV; detected when not given.
    lon, lat, wkt
        CSV only: the coordinate columns or the WKT column, when they are not among the
        names recognised (``lon/lng/longitude/x/经度``, ``lat/latitude/y/纬度``,
        ``wkt/geometry/geom/the_geom``).

    Raises
    ------
    ImportFileError
        The file cannot be read (missing, corrupt, truncated, no coordinate columns, ...).
    UnknownCRSError
        ``crs_override`` (or the CRS a file names) is not a CRS PROJ knows.
    ImportRejected
        Some features are unusable; its message lists them by row number.
    """
    path = Path(path)
    override = _parse_override(crs_override)
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if not path.is_file():
        raise ImportFileError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix not in READ_FORMATS:
        raise ImportFileError(
            f"{path.name}: cannot import '{suffix or path.name}' files; use one of "
            + ", ".join(f"{ext} ({name})" for ext, name in READ_FORMATS.items())
        )
    if suffix != ".csv" and (lon or lat or wkt):
        raise ImportFileError(f"{path.name}: lon/lat/wkt columns apply to CSV files only")
    if encoding is not None:
        encoding = _codec(encoding, path.name)
    if suffix == ".csv":
        raw = _read_csv(path, encoding=encoding, lon=lon, lat=lat, wkt=wkt)
    elif suffix == ".zip":
        raw = _read_zip(path, layer=layer, encoding=encoding)
    elif suffix == ".shp":
        raw = _read_shapefile(path, path.name, encoding=encoding)
    elif suffix == ".gpkg":
        raw = _read_geopackage(path, layer=layer)
    else:
        raw = _read_ogr(path, path.name)
    return _check(raw, override)


def _parse_override(value: int | str | None) -> int | str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    code = parse_crs(value)
    if code != GCJ02:
        _epsg_crs(int(code), given=value)
    return code


def _epsg_crs(code: int, *, given: object = None) -> ProjCRS:
    try:
        return ProjCRS.from_epsg(code)
    except CRSError:
        plain = given is None or str(given).strip().upper() in (f"EPSG:{code}", str(code))
        what = f"EPSG:{code}" if plain else f"{given!r} (EPSG:{code})"
        raise UnknownCRSError(f"unknown CRS: {what} is not in the PROJ database") from None


def _codec(name: str, source: str) -> str:
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise ImportFileError(f"{source}: unknown text encoding {name!r}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _ogr_frame(path: Path | str, source: str, **kwargs: Any) -> gpd.GeoDataFrame:
    """pyogrio's read, with GDAL's complaints turned into an ImportFileError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pyogrio.read_dataframe(path, **kwargs)
    except UnicodeDecodeError:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise ImportFileError(f"{source}: cannot be read: {_one_line(exc)}") from None
    except (RuntimeError, ValueError, OSError, shapely.errors.ShapelyError) as exc:
        raise ImportFileError(f"{source}: cannot be read: {_one_line(exc)}") from None
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame:
        raise ImportFileError(f"{source}: has no geometry")
    return frame


def _raw_from_frame(frame: gpd.GeoDataFrame, source: str, encoding: str | None) -> _Raw:
    geom_name = frame.geometry.name
    attrs = pd.DataFrame(frame.drop(columns=[geom_name]))
    return _Raw(
        attrs=attrs.reset_index(drop=True),
        geoms=np.asarray(frame.geometry.values, dtype=object),
        crs=frame.crs,
        source=source,
        encoding=encoding,
    )


def _read_ogr(path: Path, source: str, **kwargs: Any) -> _Raw:
    return _raw_from_frame(_ogr_frame(path, source, **kwargs), source, None)


def _read_geopackage(path: Path, *, layer: str | None) -> _Raw:
    try:
        listing = pyogrio.list_layers(path)
    except (pyogrio.errors.DataSourceError, RuntimeError, OSError) as exc:
        raise ImportFileError(f"{path.name}: cannot be read: {_one_line(exc)}") from None
    names = [str(row[0]) for row in listing]
    spatial = [str(row[0]) for row in listing if row[1] is not None]
    if layer is not None:
        if layer not in names:
            raise ImportFileError(
                f"{path.name}: has no table {layer!r}; its tables: {', '.join(names) or 'none'}"
            )
        chosen = layer
    elif len(spatial) == 1:
        chosen = spatial[0]
    elif not spatial:
        raise ImportFileError(f"{path.name}: has no spatial table")
    else:
        raise ImportFileError(
            f"{path.name}: has {len(spatial)} spatial tables ({', '.join(spatial)}); "
            "choose one (source layer)"
        )
    source = path.name if len(spatial) == 1 else f"{path.name}:{chosen}"
    return _read_ogr(path, source, layer=chosen)


def _read_zip(path: Path, *, layer: str | None, encoding: str | None) -> _Raw:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFileError(f"{path.name}: not a readable zip archive ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="changzhi-import-") as tmp:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith("__MACOSX/")
        ]
        shps = [m for m in members if m.filename.lower().endswith(".shp")]
        if not shps:
            raise ImportFileError(f"{path.name}: the archive holds no .shp file")
        stems = {m.filename[:-4]: m for m in shps}
        if layer is not None:
            matches = [s for s in stems if s == layer or Path(s).name == layer]
            if not matches:
                raise ImportFileError(
                    f"{path.name}: no Shapefile {layer!r} in the archive; it holds: "
                    + ", ".join(Path(s).name for s in stems)
                )
            stem = matches[0]
        elif len(stems) > 1:
            raise ImportFileError(
                f"{path.name}: the archive holds {len(stems)} Shapefiles ("
                + ", ".join(Path(s).name for s in stems)
                + "); choose one (source layer)"
            )
        else:
            stem = next(iter(stems))
        parts = {
            m.filename[len(stem) :].lower(): m
            for m in members
            if m.filename.lower().startswith(stem.lower() + ".")
        }
        missing = [ext for ext in (".dbf", ".shx") if ext not in parts]
        if missing:
            raise ImportFileError(
                f"{path.name}: the Shapefile {Path(stem).name} lacks its "
                + " and ".join(missing)
                + " part"
            )
        # Members are written under names we choose, never their own paths (no zip-slip).
        base = Path(tmp) / "layer"
        for ext, member in parts.items():
            if not re.fullmatch(r"\.[a-z0-9.]{1,12}", ext):
                continue
            try:
                data = archive.read(member)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise ImportFileError(
                    f"{path.name}: cannot extract {member.filename} ({exc})"
                ) from None
            base.with_name("layer" + ext).write_bytes(data)
        source = path.name if len(stems) == 1 else f"{path.name}:{Path(stem).name}"
        return _read_shapefile(base.with_suffix(".shp"), source, encoding=encoding)


def _sibling(path: Path, ext: str) -> Path | None:
    """The part of a Shapefile with extension ``ext``, whatever the case of its name."""
    for candidate in path.parent.glob(path.stem + ".*"):
        if candidate.suffix.lower() == ext and candidate.stem == path.stem:
            return candidate
    return None


def _cpg_codec(text: str) -> str | None:
    """Python codec for the contents of a ``.cpg`` file (``UTF-8``, ``GBK``, ``936``, ...)."""
    key = text.strip().upper()
    m = re.fullmatch(r"(?:ANSI\s*|CP|WINDOWS-)?(\d{3,5})", key)
    if m:
        number = m.group(1)
        if number == "65001":
            return "utf-8"
        if number == "936":
            return "gb18030"
        if number.startswith("8859") and len(number) > 4:
            key = f"ISO8859-{number[4:]}"
        else:
            key = f"CP{number}"
    if key in ("GBK", "GB2312", "GB18030", "CP936", "EUC-CN"):
        # GB18030 is a superset of GBK and GB2312: it decodes all of them the same.
        return "gb18030"
    try:
        return codecs.lookup(key).name
    except LookupError:
        return None


def _read_shapefile(path: Path, source: str, *, encoding: str | None) -> _Raw:
    missing = [ext for ext in (".dbf", ".shx") if _sibling(path, ext) is None]
    if missing:
        raise ImportFileError(f"{source}: the Shapefile lacks its {' and '.join(missing)} part")
    if encoding is not None:
        frame = _shapefile_frame(path, source, encoding)
        return _raw_from_frame(frame, source, encoding)
    cpg = _sibling(path, ".cpg")
    if cpg is not None:
        codec = _cpg_codec(cpg.read_text("ascii", errors="replace"))
        if codec is not None:
            return _raw_from_frame(_shapefile_frame(path, source, codec), source, codec)
    try:
        native = str(pyogrio.read_info(path).get("encoding") or "")
    except (pyogrio.errors.DataSourceError, RuntimeError) as exc:
        raise ImportFileError(f"{source}: cannot be read: {_one_line(exc)}") from None
    if native and native.upper().replace("_", "-") not in ("ISO-8859-1", "ISO8859-1", "LATIN1"):
        # GDAL knows it (from the .cpg or the DBF's language driver byte).
        return _raw_from_frame(_ogr_frame(path, source), source, native)
    # Nothing says: ISO-8859-1 is GDAL's guess, and wrong for Chinese data. A strict UTF-8
    # read fails on GBK bytes, so try UTF-8 first, then GB18030 (which covers GBK).
    for codec in ("utf-8", "gb18030"):
        try:
            return _raw_from_frame(_shapefile_frame(path, source, codec), source, codec)
        except UnicodeDecodeError:
            continue
    # Latin-1 decodes any bytes: the text may be garbled, but the geometry is not lost.
    return _raw_from_frame(_shapefile_frame(path, source, "latin-1"), source, "latin-1")


def _shapefile_frame(path: Path, source: str, codec: str) -> gpd.GeoDataFrame:
    return _ogr_frame(path, source, encoding=codec)


def _decode(data: bytes, source: str, encoding: str | None) -> tuple[str, str]:
    candidates = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for codec in candidates:
        try:
            return data.decode(codec), "utf-8" if codec == "utf-8-sig" else codec
        except UnicodeDecodeError as exc:
            last = exc
    if encoding:
        raise ImportFileError(f"{source}: is not valid {encoding} text ({last.reason})")
    raise ImportFileError(f"{source}: text encoding is neither UTF-8 nor GBK/GB18030")


def _read_csv(
    path: Path, *, encoding: str | None, lon: str | None, lat: str | None, wkt: str | None
) -> _Raw:
    source = path.name
    text, used = _decode(path.read_bytes(), source, encoding)
    header = text.split("\n", 1)[0]
    # Chinese spreadsheets also export with semicolons or tabs; judge by the header line.
    sep = max((",", ";", "\t"), key=header.count)
    try:
        table = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ImportFileError(f"{source}: not a readable CSV file ({_one_line(exc)})") from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.apply(lambda s: s.str.strip())
    by_name = {c.lower(): c for c in table.columns}
    columns = ", ".join(table.columns) or "none"

    def named(option: str, value: str) -> str:
        column = by_name.get(value.strip().lower())
        if column is None:
            raise ImportFileError(f"{source}: no column {value!r} ({option}); columns: {columns}")
        return column

    def found(names: Iterable[str]) -> str | None:
        return next((by_name[n] for n in names if n in by_name), None)

    lon_col = lat_col = wkt_col = None
    if wkt:
        wkt_col = named("wkt", wkt)
    elif lon or lat:
        if not (lon and lat):
            raise ImportFileError(f"{source}: give both the lon and the lat column")
        lon_col, lat_col = named("lon", lon), named("lat", lat)
    else:
        lon_col, lat_col = found(LON_NAMES), found(LAT_NAMES)
        if lon_col is None or lat_col is None:
            lon_col = lat_col = None
            wkt_col = found(WKT_NAMES)
    if wkt_col is None and (lon_col is None or lat_col is None):
        raise ImportFileError(
            f"{source}: no coordinate columns; expected lon/lat columns ("
            + "/".join(LON_NAMES)
            + " and "
            + "/".join(LAT_NAMES)
            + ") or a WKT column ("
            + "/".join(WKT_NAMES)
            + f"), or name them explicitly; columns: {columns}"
        )
    early: dict[int, str] = {}
    crs_hint = None
    if wkt_col is not None:
        geoms, early, crs_hint = _wkt_geometries(table[wkt_col].tolist())
        used_cols = [wkt_col]
    else:
        assert lon_col is not None and lat_col is not None
        geoms, early = _point_geometries(table[lon_col].tolist(), table[lat_col].tolist())
        used_cols = [lon_col, lat_col]
    attrs = _typed(table.drop(columns=used_cols))
    return _Raw(attrs, geoms, None, source, encoding=used, early=early, crs_hint=crs_hint)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _point_geometries(
    lons: Sequence[str], lats: Sequence[str]
) -> tuple[np.ndarray, dict[int, str]]:
    geoms = np.full(len(lons), None, dtype=object)
    early: dict[int, str] = {}
    for i, (x_text, y_text) in enumerate(zip(lons, lats, strict=True)):
        reasons = []
        values = []
        for axis, text in (("lon", x_text), ("lat", y_text)):
            value = _number(text) if text else None
            if not text:
                reasons.append(f"{axis} is empty")
            elif value is None:
                reasons.append(f"{axis} {text[:40]!r} is not a number")
            elif not math.isfinite(value):
                reasons.append(f"{axis} {text!r} is not a finite number")
            values.append(value)
        if reasons:
            early[i] = "; ".join(reasons)
        else:
            geoms[i] = shapely.Point(values[0], values[1])
    return geoms, early


_EWKT_RE: Final = re.compile(r"^\s*SRID=(\d+)\s*;\s*(.*)$", re.IGNORECASE | re.DOTALL)


def _wkt_geometries(texts: Sequence[str]) -> tuple[np.ndarray, dict[int, str], int | None]:
    geoms = np.full(len(texts), None, dtype=object)
    early: dict[int, str] = {}
    srids: set[int] = set()
    for i, text in enumerate(texts):
        m = _EWKT_RE.match(text)
        if m:
            srids.add(int(m.group(1)))
            text = m.group(2)
        if not text:
            early[i] = "the WKT geometry is empty"
            continue
        geom = shapely.from_wkt(text, on_invalid="ignore")
        if geom is None:
            early[i] = f"the WKT {text[:40]!r} cannot be parsed"
        else:
            geoms[i] = geom
    return geoms, early, (srids.pop() if len(srids) == 1 else None)


_INT_RE: Final = re.compile(r"^[+-]?(0|[1-9]\d{0,17})$")
_FLOAT_RE: Final = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_LEADING_ZERO_RE: Final = re.compile(r"^[+-]?0\d")
_BOOLS: Final = {"true": True, "false": False}


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """CSV columns as the types their values have; codes with leading zeros stay text."""
    out = {}
    for name in table.columns:
        values = table[name]
        present = values[values != ""]
        if len(present) and present.map(lambda v: bool(_INT_RE.match(v))).all():
            out[name] = pd.array([int(v) if v != "" else None for v in values], dtype="Int64")
        elif (
            len(present)
            and present.map(
                lambda v: bool(_FLOAT_RE.match(v)) and not _LEADING_ZERO_RE.match(v)
            ).all()
        ):
            out[name] = pd.array([float(v) if v != "" else np.nan for v in values], dtype="float64")
        elif len(present) and present.str.lower().isin(list(_BOOLS)).all():
            out[name] = pd.array(
                [_BOOLS[v.lower()] if v != "" else None for v in values], dtype="boolean"
            )
        else:
            out[name] = pd.array([v if v != "" else None for v in values], dtype=object)
    return pd.DataFrame(out, index=table.index)


# --------------------------------------------------------------------------- checking


def _crs_label(code: int) -> str:
    return f"EPSG:{code} ({_epsg_crs(code).name})"


def _source_crs(raw: _Raw, override: int | str | None) -> tuple[SourceCRS, str]:
    """The CRS to convert from, and how to describe it."""
    file_code: int | None = None
    if raw.crs is not None:
        file_code = raw.crs.to_epsg()
    if raw.crs is not None:
        file_label = f"EPSG:{file_code}" if file_code else repr(raw.crs.name)
    elif raw.crs_hint is not None:
        file_label = f"EPSG:{raw.crs_hint}"
    else:
        file_label = "no CRS"
    if override is not None:
        label = "GCJ-02" if override == GCJ02 else _crs_label(int(override))
        return override, f"{label} (given; the file says {file_label})"
    if raw.crs is not None:
        if file_code is not None:
            _epsg_crs(file_code)
            return file_code, _crs_label(file_code)
        if not (raw.crs.is_geographic or raw.crs.is_projected):
            raise ImportFileError(
                f"{raw.source}: its CRS {raw.crs.name!r} cannot be converted to WGS84; "
                "give the CRS the coordinates are in (e.g. EPSG:4547)"
            )
        name = raw.crs.name if raw.crs.name and raw.crs.name != "unknown" else None
        kind = "projected" if raw.crs.is_projected else "geographic"
        return raw.crs, f"{name or f'a custom {kind} CRS'} (from the file, no EPSG code)"
    if raw.crs_hint is not None:
        _epsg_crs(raw.crs_hint)
        return raw.crs_hint, _crs_label(raw.crs_hint) + " (from the EWKT)"
    return WGS84, "EPSG:4326 (WGS 84, assumed: the file has no CRS)"


def _is_geographic(src: SourceCRS) -> bool:
    if src == GCJ02:
        return True
    if isinstance(src, ProjCRS):
        return bool(src.is_geographic)
    return bool(_epsg_crs(int(src)).is_geographic)


def _to_wgs84(geoms: np.ndarray, src: SourceCRS) -> np.ndarray:
    if isinstance(src, ProjCRS):
        transformer = Transformer.from_crs(src, WGS84, always_xy=True)

        def _fn(coords: np.ndarray) -> np.ndarray:
            x, y = transformer.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return np.asarray(shapely.transform(geoms, _fn), dtype=object)
    return np.asarray(transform_geometry(geoms, src, WGS84), dtype=object)


def _flat_parts(geom: shapely.Geometry) -> list[shapely.Geometry]:
    """Simple parts of a geometry, collections and multi-geometries flattened."""
    if shapely.get_type_id(geom) in (4, 5, 6, _GEOMETRYCOLLECTION):
        return [q for p in shapely.get_parts(geom) for q in _flat_parts(p)]
    return [geom]


def _multi(parts: Sequence[shapely.Geometry], dimension: int) -> shapely.Geometry:
    if dimension == 2:
        return shapely.multipolygons(list(parts))
    if dimension == 1:
        return shapely.multilinestrings(list(parts))
    return shapely.multipoints(list(parts))


def _range_reason(x: float, y: float, src: SourceCRS, label: str) -> str:
    if not (math.isfinite(x) and math.isfinite(y)):
        return f"coordinates cannot be converted from {label}"
    reason = f"coordinate ({x:.6g}, {y:.6g}) is outside lon -180..180 / lat -90..90"
    if abs(x) <= 90 and abs(y) <= 180:
        return reason + "; lon and lat look swapped"
    if _is_geographic(src) and (abs(x) > 1000 or abs(y) > 1000):
        return reason + f"; these look like metres, not degrees: the CRS is {label}"
    return reason


def _check(raw: _Raw, override: int | str | None) -> ReadResult:
    n = len(raw.geoms)
    if n == 0:
        raise ImportFileError(f"{raw.source}: contains no features")
    src, label = _source_crs(raw, override)
    attrs = raw.attrs.reset_index(drop=True)
    id_column = next((c for c in attrs.columns if str(c).strip().lower() in ID_NAMES), None)
    problems: dict[int, str] = dict(raw.early)
    geoms = raw.geoms.copy()
    notes: list[str] = []

    def flag(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), reason)

    flag(shapely.is_missing(geoms) | shapely.is_empty(geoms), "empty or missing geometry")
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    bad = np.zeros(n, dtype=bool)
    np.logical_or.at(bad, index, ~np.isfinite(coords).all(axis=1))
    flag(bad, "coordinates are not finite numbers (NaN or infinity)")

    # Collections of one kind become that Multi* kind; mixed ones cannot be stored.
    for i in np.flatnonzero(shapely.get_type_id(geoms) == _GEOMETRYCOLLECTION):
        if int(i) in problems:
            continue
        parts = _flat_parts(geoms[i])
        dims = {int(shapely.get_dimensions(p)) for p in parts}
        if len(dims) == 1:
            geoms[i] = _multi(parts, dims.pop())
        else:
            problems[int(i)] = "geometry collection mixing points, lines and polygons"

    def flag_outside() -> None:
        # Coordinates outside the globe: report the first offending one of each feature.
        ok = np.array([i not in problems for i in range(n)], dtype=bool)
        coords, index = shapely.get_coordinates(geoms[ok], return_index=True)
        rows = np.flatnonzero(ok)[index]
        outside = ~(
            np.isfinite(coords).all(axis=1)
            & (np.abs(coords[:, 0]) <= 180)
            & (np.abs(coords[:, 1]) <= 90)
        )
        for k in np.flatnonzero(outside):
            row = int(rows[k])
            if row not in problems:
                x, y = float(coords[k, 0]), float(coords[k, 1])
                problems[row] = _range_reason(x, y, src, label)

    ok = np.array([i not in problems for i in range(n)], dtype=bool)
    if shapely.has_z(geoms[ok]).any():
        notes.append("Z values dropped (the platform stores 2D geometries)")
    geoms[ok] = shapely.force_2d(geoms[ok])
    converted = src != WGS84
    if converted and _is_geographic(src):
        # Judge degrees before PROJ turns impossible ones into infinities.
        flag_outside()
    if converted:
        ok = np.array([i not in problems for i in range(n)], dtype=bool)
        geoms[ok] = _to_wgs84(geoms[ok], src)
    flag_outside()

    # One layer, one kind of geometry: the minority kind is what gets reported.
    ok = np.array([i not in problems for i in range(n)], dtype=bool)
    dims = shapely.get_dimensions(geoms)
    counts = Counter(int(d) for d in dims[ok])
    dimension = counts.most_common(1)[0][0] if counts else 0
    if len(counts) > 1:
        kind = _DIMENSION_NAMES[dimension]
        for i in np.flatnonzero(ok & (dims != dimension)):
            problems[int(i)] = (
                f"{geoms[i].geom_type} in a file of {kind} "
                "features: one layer cannot mix points, lines and polygons"
            )

    # Repair what is invalid, keeping parts of the layer's dimension.
    repaired: list[tuple[int, str]] = []
    ok = np.array([i not in problems for i in range(n)], dtype=bool)
    for i in np.flatnonzero(ok & ~shapely.is_valid(geoms)):
        reason = str(shapely.is_valid_reason(geoms[i]))
        method = "structure" if dimension == 2 else "linework"
        fixed = shapely.make_valid(geoms[i], method=method)
        parts = [p for p in _flat_parts(fixed) if shapely.get_dimensions(p) == dimension]
        parts = [p for p in parts if not p.is_empty]
        if not parts:
            problems[int(i)] = f"invalid geometry ({reason}) that collapses when repaired"
            continue
        geoms[i] = _multi(parts, dimension) if len(parts) > 1 else parts[0]
        repaired.append((int(i) + 1, reason))

    if problems:
        ident = (lambda i: _ident(attrs, id_column, i)) if id_column else (lambda i: None)
        raise ImportRejected(
            raw.source, [RowProblem(i + 1, r, ident(i)) for i, r in problems.items()], n
        )

    geoms, geometry_type = _promote(geoms, dimension)
    if "geom" in attrs.columns:
        attrs = attrs.rename(columns={"geom": "geom_1"})
    attrs["geom"] = gpd.GeoSeries(geoms, index=attrs.index, crs=WGS84)
    frame = gpd.GeoDataFrame(attrs, geometry="geom", crs=WGS84)
    frame.index = pd.RangeIndex(1, n + 1, name="row")
    return ReadResult(
        frame=frame,
        source_crs=label,
        repaired=repaired,
        geometry_type=geometry_type,
        source=raw.source,
        converted=converted,
        encoding=raw.encoding,
        id_column=id_column,
        notes=notes,
    )


def _ident(attrs: pd.DataFrame, column: str | None, i: int) -> str | None:
    if column is None:
        return None
    value = attrs[column].iloc[i]
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return f"{column}={value}"


def _promote(geoms: np.ndarray, dimension: int) -> tuple[np.ndarray, str]:
    """Single parts promoted to Multi*: polygons and lines always, points when any is multi."""
    types = shapely.get_type_id(geoms)
    if dimension == 0 and not (types == 4).any():
        return geoms, "Point"
    # Type ids: 0 Point, 1 LineString, 2 LinearRing, 3 Polygon.
    mask = np.isin(types, {0: [0], 1: [1, 2], 2: [3]}[dimension])
    if mask.any():
        make = {0: shapely.multipoints, 1: shapely.multilinestrings, 2: shapely.multipolygons}
        geoms = geoms.copy()
        geoms[mask] = make[dimension](geoms[mask], indices=np.arange(int(mask.sum())))
    return geoms, {0: "MultiPoint", 1: "MultiLineString", 2: "MultiPolygon"}[dimension]


# --------------------------------------------------------------------------- writing


def _plain(value: Any) -> Any:
    """A value every writer can store: JSON text for structures, floats for decimals."""
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, str | int | float | bool | date | datetime):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _writable(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.reset_index(drop=True)
    if out.crs is None:
        out = out.set_crs(WGS84)
    geom_name = out.geometry.name
    for column in out.columns:
        if column != geom_name and out[column].dtype == object:
            out[column] = out[column].map(_plain).astype(object)
    return out


def write_features(
    data: gpd.GeoDataFrame | ReadResult,
    path: str | os.PathLike[str],
    *,
    layer_name: str | None = None,
) -> Path:
    """Write features to a file chosen by its extension; return the path written.

    Parameters
    ----------
    data
        A GeoDataFrame (EPSG:4326 assumed when it has no CRS) or a :class:`ReadResult`.
    path
        ``.gpkg`` (GeoPackage), ``.geojson``/``.json`` (RFC 7946 GeoJSON), ``.csv`` (attributes
        plus a ``wkt`` column, UTF-8 with BOM so spreadsheets read Chinese text) or ``.zip`` (a
        Shapefile with a ``.cpg`` saying UTF-8). An existing file is replaced.
    layer_name
        Table name inside a GeoPackage or Shapefile; the file's stem by default.

    Raises
    ------
    UnsupportedFormat
        The extension is none of the above.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise UnsupportedFormat(
            f"{path.name}: cannot export to '{suffix or path.name}' files; use one of "
            + ", ".join(f"{ext} ({name})" for ext, name in WRITE_FORMATS.items())
        )
    frame = _writable(data.frame if isinstance(data, ReadResult) else data)
    name = layer_name or path.stem
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a failed export leaves no half file behind.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as tmp:
        staged = Path(tmp) / ("out" + suffix)
        if suffix == ".gpkg":
            pyogrio.write_dataframe(frame, staged, driver="GPKG", layer=name)
        elif suffix in (".geojson", ".json"):
            pyogrio.write_dataframe(
                frame.to_crs(WGS84), staged, driver="GeoJSON", layer=name, RFC7946="YES"
            )
        elif suffix == ".csv":
            table = pd.DataFrame(frame.drop(columns=[frame.geometry.name]))
            table["wkt"] = shapely.to_wkt(frame.geometry.values, rounding_precision=-1)
            table.to_csv(staged, index=False, encoding="utf-8-sig")
        else:
            shp_dir = Path(tmp) / "shp"
            shp_dir.mkdir()
            with warnings.catch_warnings():
                # GDAL warns when it truncates field names to the DBF's 10 characters.
                warnings.simplefilter("ignore", RuntimeWarning)
                pyogrio.write_dataframe(
                    frame, shp_dir / f"{name}.shp", driver="ESRI Shapefile", encoding="UTF-8"
                )
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
                for part in sorted(shp_dir.iterdir()):
                    archive.write(part, part.name)
        os.replace(staged, path)
    return path
