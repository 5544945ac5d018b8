"""Importing GIS files into layers and exporting layers, against the throwaway PostGIS.

Fixture files are written here, in the test's tmp_path: GeoPackage, zipped Shapefile (GBK
attributes), GeoJSON and CSV (lon/lat, WKT, GCJ-02).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import LineString, Point, Polygon
from typer.testing import CliRunner

from gis_core.crs import UnknownCRSError, gcj02_to_wgs84
from gis_core.db import connect
from gis_core.errors import Conflict, InvalidInput
from gis_core.io import (
    ImportFileError,
    ImportRejected,
    ReadResult,
    UnsupportedFormat,
    read_features,
    write_features,
)
from gis_core.settings import Settings
from layers.catalog import installed_catalog
from layers.user_layers import ImportReport, export_layer, import_layer, user_layers

pytestmark = pytest.mark.services

TO_GK = Transformer.from_crs(4326, 4547, always_xy=True)
GEOD = Geod(ellps="WGS84")
# Near Changzhi's centre; every fixture sits around here.
LONLAT = [(113.1164, 36.1954), (113.1301, 36.2012), (113.0987, 36.1876)]


@pytest.fixture()
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with connect(db_url) as c:
        yield c


def _import(db_url: str, result: ReadResult, layer_id: str, **kwargs: Any) -> ImportReport:
    with connect(db_url) as c:
        report = import_layer(c, result, layer_id, catalog=installed_catalog(), **kwargs)
        c.commit()
    return report


def _scalar(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _registered(conn: psycopg.Connection, layer_id: str) -> bool:
    return bool(_scalar(conn, "SELECT count(*) FROM ref.user_layer WHERE id = %s", (layer_id,)))


def _audits(conn: psycopg.Connection, layer_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT detail FROM auth.audit_log WHERE action = 'import' AND object_type = 'layer'"
        " AND object_id = %s ORDER BY id",
        (layer_id,),
    ).fetchall()
    return [r[0] for r in rows]


def _csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _zip_shapefile(tmp_path: Path, frame: gpd.GeoDataFrame, *, keep_cpg: bool) -> Path:
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    frame.to_file(shp_dir / "地块.shp", encoding="GBK")
    if not keep_cpg:
        (shp_dir / "地块.cpg").unlink()
    archive = tmp_path / "parcels.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in sorted(shp_dir.iterdir()):
            zf.write(part, f"export/{part.name}")
    return archive


def _square(lon: float, lat: float, d: float = 0.001) -> Polygon:
    return Polygon([(lon, lat), (lon + d, lat), (lon + d, lat + d), (lon, lat + d)])


# --------------------------------------------------------------------------- formats


def test_geopackage_in_cgcs2000_gk_is_converted(tmp_path: Path, db_url: str, conn: Any) -> None:
    xs, ys = TO_GK.transform([p[0] for p in LONLAT], [p[1] for p in LONLAT])
    frame = gpd.GeoDataFrame(
        {
            "name_zh": ["长治站", "潞州区", "西站"],
            "Floors": [3, 5, 1],
            "height m": [9.5, 15.2, 3.0],
            "active": [True, False, True],
            "id": ["a", "b", "c"],
            "surveyed": pd.to_datetime(["2024-05-01 08:00", None, "2024-06-30 17:30"], utc=True),
        },
        geometry=[Point(x, y) for x, y in zip(xs, ys, strict=True)],
        crs=4547,
    )
    path = tmp_path / "stations.gpkg"
    frame.to_file(path, layer="stations", driver="GPKG")

    result = read_features(path)
    assert result.source_crs.startswith("EPSG:4547")
    assert result.converted and result.geometry_type == "Point"
    report = _import(db_url, result, "t_io_gpkg", title_zh="站点", title_en="Stations")
    assert (report.rows, report.created, report.builtin) == (3, True, False)
    assert report.columns["Floors"] == "floors" and report.columns["id"] == "src_id"

    rows = conn.execute(
        "SELECT name_zh, floors, height_m, active, src_id, ST_X(geom), ST_Y(geom), "
        "ST_SRID(geom) FROM userdata.t_io_gpkg ORDER BY id"
    ).fetchall()
    assert [r[:5] for r in rows] == [
        ("长治站", 3, 9.5, True, "a"),
        ("潞州区", 5, 15.2, False, "b"),
        ("西站", 1, 3.0, True, "c"),
    ]
    for (lon, lat), row in zip(LONLAT, rows, strict=True):
        assert abs(row[5] - lon) < 1e-7 and abs(row[6] - lat) < 1e-7
        assert row[7] == 4326
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'userdata' AND table_name = 't_io_gpkg'"
        ).fetchall()
    )
    assert types["floors"] == "bigint" and types["height_m"] == "double precision"
    assert types["active"] == "boolean" and types["name_zh"] == "text"
    assert types["surveyed"] == "timestamp with time zone"
    surveyed = [r[0] for r in conn.execute("SELECT surveyed FROM userdata.t_io_gpkg ORDER BY id")]
    assert surveyed[1] is None and surveyed[0] == pd.Timestamp("2024-05-01 08:00", tz="UTC")
    assert _scalar(
        conn,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'userdata'"
        " AND tablename = 't_io_gpkg' AND indexdef ILIKE '%USING gist%'",
    )
    layer = next(x for x in user_layers(conn) if x.id == "t_io_gpkg")
    assert layer.group == "imported" and layer.roles == () and layer.title_zh == "站点"
    assert layer.table == "userdata.t_io_gpkg" and layer.geometry_type == "Point"
    assert "floors" in layer.properties and layer.label == "name_zh"
    assert report.layer == layer
    assert _audits(conn, "t_io_gpkg")[-1]["rows"] == 3


def test_geopackage_with_several_tables_needs_a_choice(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    pts = gpd.GeoDataFrame({"n": [1]}, geometry=[Point(113.1, 36.2)], crs=4326)
    pts.to_file(path, layer="points", driver="GPKG")
    lines = gpd.GeoDataFrame(
        {"n": [1, 2]},
        geometry=[LineString([(113.1, 36.2), (113.2, 36.3)])] * 2,
        crs=4326,
    )
    lines.to_file(path, layer="lines", driver="GPKG")
    with pytest.raises(ImportFileError, match=r"two\.gpkg.*2 spatial tables.*points"):
        read_features(path)
    chosen = read_features(path, layer="lines")
    assert chosen.rows == 2 and chosen.geometry_type == "MultiLineString"
    with pytest.raises(ImportFileError, match="no table 'roads'"):
        read_features(path, layer="roads")


@pytest.mark.parametrize("keep_cpg", [False, True], ids=["detected", "cpg"])
def test_zipped_shapefile_with_gbk_attributes(
    tmp_path: Path, db_url: str, conn: Any, keep_cpg: bool
) -> None:
    frame = gpd.GeoDataFrame(
        {"名称": ["长治市潞州区地块", "襄垣县仓库"], "DKBM": ["140402001", "140423007"]},
        geometry=[_square(113.11, 36.19), _square(113.12, 36.20, 0.002)],
        crs=4490,
    )
    archive = _zip_shapefile(tmp_path, frame, keep_cpg=keep_cpg)
    result = read_features(archive)
    assert result.encoding == "gb18030"
    assert result.source_crs.startswith("EPSG:4490")
    assert list(result.frame.columns) == ["名称", "DKBM", "geom"]
    layer_id = f"t_io_shp_{'cpg' if keep_cpg else 'detected'}"
    report = _import(db_url, result, layer_id)
    assert report.geometry_type == "MultiPolygon" and report.rows == 2
    rows = conn.execute(
        f'SELECT "名称", dkbm, GeometryType(geom), ST_Area(geom::geography) '
        f"FROM userdata.{layer_id} ORDER BY id"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        ("长治市潞州区地块", "140402001", "MULTIPOLYGON"),
        ("襄垣县仓库", "140423007", "MULTIPOLYGON"),
    ]
    # A 0.001-degree square near 36.2N is about 111 m x 90 m.
    assert 9000 < rows[0][3] < 11000


def test_shapefile_zip_missing_parts_and_corrupt_zip(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ImportFileError, match=r"broken\.zip: not a readable zip"):
        read_features(broken)
    lonely = tmp_path / "lonely.zip"
    with zipfile.ZipFile(lonely, "w") as zf:
        zf.writestr("a.shp", b"\x00" * 100)
    with pytest.raises(ImportFileError, match=r"lonely\.zip.*lacks its \.dbf and \.shx"):
        read_features(lonely)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(ImportFileError, match=r"holds no \.shp"):
        read_features(empty)


def test_geojson_lines(tmp_path: Path, db_url: str, conn: Any) -> None:
    frame = gpd.GeoDataFrame(
        {"road": ["太行东街", "英雄南路"], "lanes": [6, 4]},
        geometry=[
            LineString([(113.10, 36.19), (113.13, 36.19)]),
            LineString([(113.12, 36.17), (113.12, 36.21), (113.125, 36.22)]),
        ],
        crs=4326,
    )
    path = tmp_path / "roads.geojson"
    frame.to_file(path, driver="GeoJSON")
    result = read_features(path)
    assert not result.converted and result.geometry_type == "MultiLineString"
    _import(db_url, result, "t_io_geojson")
    rows = conn.execute(
        "SELECT road, lanes, ST_NumPoints(ST_GeometryN(geom, 1)) FROM userdata.t_io_geojson"
        " ORDER BY id"
    ).fetchall()
    assert rows == [("太行东街", 6, 2), ("英雄南路", 4, 3)]


def test_csv_with_lon_lat_columns(tmp_path: Path, db_url: str, conn: Any) -> None:
    path = _csv(
        tmp_path / "wells.csv",
        "编号,名称,经度,纬度,深度,district\n"
        "W1,一号井,113.1164,36.1954,120.5,0401\n"
        "W2,二号井,113.1301,36.2012,,0402\n",
        encoding="gb18030",
    )
    result = read_features(path)
    assert result.encoding == "gb18030" and "assumed" in result.source_crs
    report = _import(db_url, result, "t_io_csv")
    assert report.columns == {
        "编号": "编号",
        "名称": "名称",
        "深度": "深度",
        "district": "district",
    }
    rows = conn.execute(
        'SELECT "编号", "名称", "深度", district, ST_X(geom), ST_Y(geom)'
        " FROM userdata.t_io_csv ORDER BY id"
    ).fetchall()
    # Codes with leading zeros stay text; the empty depth is NULL.
    assert rows == [
        ("W1", "一号井", 120.5, "0401", 113.1164, 36.1954),
        ("W2", "二号井", None, "0402", 113.1301, 36.2012),
    ]


def test_csv_with_wkt_and_explicit_columns(tmp_path: Path, db_url: str, conn: Any) -> None:
    path = _csv(
        tmp_path / "zones.csv",
        "zone;shape;x\n"
        "A;POLYGON((113.1 36.2, 113.11 36.2, 113.11 36.21, 113.1 36.21, 113.1 36.2));1\n"
        "B;MULTIPOLYGON(((113.2 36.2, 113.21 36.2, 113.21 36.21, 113.2 36.2)));2\n",
    )
    # "x" would be taken for a longitude column: name the WKT column explicitly.
    result = read_features(path, wkt="Shape")
    assert result.geometry_type == "MultiPolygon" and result.rows == 2
    _import(db_url, result, "t_io_wkt")
    assert conn.execute(
        "SELECT zone, x, ST_NumGeometries(geom) FROM userdata.t_io_wkt ORDER BY id"
    ).fetchall() == [("A", 1, 1), ("B", 2, 1)]
    lonlat = _csv(tmp_path / "named.csv", "E,N,name\n113.1,36.2,a\n")
    assert read_features(lonlat, lon="e", lat="n").frame.geometry.iloc[0].equals(Point(113.1, 36.2))


def test_gcj02_csv_lands_600_m_away(tmp_path: Path, db_url: str, conn: Any) -> None:
    path = _csv(tmp_path / "amap.csv", "name,lng,lat\n高德点,113.1,36.2\n")
    result = read_features(path, crs_override="GCJ02")
    assert result.source_crs.startswith("GCJ-02") and result.converted
    _import(db_url, result, "t_io_gcj")
    lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM userdata.t_io_gcj").fetchone()
    expected = gcj02_to_wgs84(113.1, 36.2)
    assert abs(lon - expected[0]) < 1e-9 and abs(lat - expected[1]) < 1e-9
    distance = GEOD.inv(113.1, 36.2, lon, lat)[2]
    assert 500 < distance < 650
    # GCJ-02 shifts east and north: the true position is west and south of it.
    assert lon < 113.1 and lat < 36.2


# --------------------------------------------------------------------------- checking


def test_self_intersecting_polygon_is_repaired_and_reported(
    tmp_path: Path, db_url: str, conn: Any
) -> None:
    bowtie = Polygon([(113.1, 36.2), (113.11, 36.21), (113.11, 36.2), (113.1, 36.21)])
    assert not bowtie.is_valid
    frame = gpd.GeoDataFrame(
        {"name": ["bowtie", "square"]}, geometry=[bowtie, _square(113.2, 36.2)], crs=4326
    )
    path = tmp_path / "bowtie.geojson"
    frame.to_file(path, driver="GeoJSON")
    result = read_features(path)
    assert len(result.repaired) == 1
    row, reason = result.repaired[0]
    assert row == 1 and reason.startswith("Self-intersection")
    report = _import(db_url, result, "t_io_bowtie")
    assert report.repaired == ((1, reason),)
    rows = conn.execute(
        "SELECT name, ST_IsValid(geom), GeometryType(geom), ST_NumGeometries(geom)"
        " FROM userdata.t_io_bowtie ORDER BY id"
    ).fetchall()
    assert rows == [("bowtie", True, "MULTIPOLYGON", 2), ("square", True, "MULTIPOLYGON", 1)]
    assert _audits(conn, "t_io_bowtie")[-1]["repaired"] == 1


BAD_ROWS = {
    "nan": ("113.12,nan", r"row 3 \(id=3\): lat 'nan' is not a finite number"),
    "out_of_range": ("213.12,36.2", r"row 3 \(id=3\): coordinate \(213\.12, 36\.2\) is outside"),
    "swapped": ("36.2,113.12", r"row 3 \(id=3\):.*lon and lat look swapped"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_one_bad_row_rejects_the_file(tmp_path: Path, db_url: str, conn: Any, case: str) -> None:
    bad, message = BAD_ROWS[case]
    path = _csv(
        tmp_path / f"{case}.csv",
        f"id,lon,lat\n1,113.1,36.2\n2,113.11,36.21\n3,{bad}\n4,113.13,36.23\n",
    )
    layer_id = f"t_io_bad_{case}"
    audits_before = _scalar(conn, "SELECT count(*) FROM auth.audit_log")
    with pytest.raises(ImportRejected, match=message) as caught:
        _import(db_url, read_features(path), layer_id)
    assert "1 of 4 features rejected, nothing was imported" in str(caught.value)
    assert [p.row for p in caught.value.problems] == [3]
    assert not _registered(conn, layer_id)
    assert _scalar(conn, "SELECT to_regclass(%s)", (f"userdata.{layer_id}",)) is None
    assert _scalar(conn, "SELECT count(*) FROM auth.audit_log") == audits_before


def test_all_problems_are_collected_and_listed(tmp_path: Path) -> None:
    lines = ["name,lon,lat"] + [f"p{i},{'x' if i % 2 else 113.1},36.2" for i in range(30)]
    lines.append("empty,,")
    path = _csv(tmp_path / "many.csv", "\n".join(lines) + "\n")
    with pytest.raises(ImportRejected) as caught:
        read_features(path)
    message = str(caught.value)
    assert caught.value.total == 31 and len(caught.value.problems) == 16
    assert message.startswith("many.csv: 16 of 31 features rejected")
    assert "row 2: lon 'x' is not a number" in message
    assert "row 31: lon is empty; lat is empty" in message
    assert "... and" not in message  # 16 <= 20 listed
    more = [f"{'x' if i < 25 else 113.1},36.2" for i in range(30)]
    path = _csv(tmp_path / "more.csv", "lon,lat\n" + "\n".join(more) + "\n")
    with pytest.raises(ImportRejected, match=r"\.\.\. and 5 more"):
        read_features(path)


def test_empty_geometry_and_mixed_dimensions_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mixed.geojson"
    features = [
        {"type": "Feature", "properties": {"n": 1}, "geometry": None},
        {
            "type": "Feature",
            "properties": {"n": 2},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[113.1, 36.2], [113.2, 36.2], [113.2, 36.3], [113.1, 36.2]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"n": 3},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[113.3, 36.2], [113.4, 36.2], [113.4, 36.3], [113.3, 36.2]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"n": 4},
            "geometry": {
                "type": "Point",
                "coordinates": [113.1, 36.2],
            },
        },
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(ImportRejected) as caught:
        read_features(path)
    reasons = {p.row: p.reason for p in caught.value.problems}
    assert reasons[1] == "empty or missing geometry"
    assert reasons[4].startswith("Point in a file of polygon features")
    assert set(reasons) == {1, 4}


def test_unreadable_files_give_one_clear_error(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.geojson"
    truncated.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
        '{"type": "Point", "coordinates": [113.1, 36.2]}, "properties": {"a": 1}}, {"ty'
    )
    with pytest.raises(ImportFileError, match=r"^cut\.geojson: cannot be read: ") as caught:
        read_features(truncated)
    assert "\n" not in str(caught.value)
    no_coords = _csv(tmp_path / "plain.csv", "name,value\na,1\n")
    with pytest.raises(ImportFileError, match=r"plain\.csv: no coordinate columns.*经度"):
        read_features(no_coords)
    with pytest.raises(ImportFileError, match=r"nothing\.gpkg: no such file"):
        read_features(tmp_path / "nothing.gpkg")
    odd = tmp_path / "drawing.dxf"
    odd.write_text("0\nEOF\n")
    with pytest.raises(ImportFileError, match=r"cannot import '\.dxf' files"):
        read_features(odd)
    with pytest.raises(ImportFileError, match="no column 'east'"):
        read_features(no_coords, lon="east", lat="north")


def test_unknown_crs_is_named(tmp_path: Path) -> None:
    path = _csv(tmp_path / "p.csv", "lon,lat\n113.1,36.2\n")
    with pytest.raises(UnknownCRSError, match="'Beijing-ish'"):
        read_features(path, crs_override="Beijing-ish")
    with pytest.raises(UnknownCRSError, match="EPSG:999999 is not in the PROJ database"):
        read_features(path, crs_override="EPSG:999999")


def test_projected_coordinates_without_crs_get_a_hint(tmp_path: Path) -> None:
    path = _csv(tmp_path / "gk.csv", "x,y\n420527.4,4007586.3\n")
    with pytest.raises(ImportRejected, match="look like metres"):
        read_features(path)
    result = read_features(path, crs_override=4547)
    x, y = result.frame.geometry.iloc[0].coords[0]
    assert abs(x - 113.1164) < 1e-4 and abs(y - 36.1954) < 1e-4


# --------------------------------------------------------------------------- built-in layers


def test_import_into_shelters_appends_with_category(tmp_path: Path, db_url: str, conn: Any) -> None:
    before = _scalar(conn, "SELECT count(*) FROM ref.poi WHERE category = 'shelter'")
    others = _scalar(conn, "SELECT count(*) FROM ref.poi WHERE category <> 'shelter'")
    path = _csv(
        tmp_path / "shelters.csv",
        "名称,Capacity,address,category,remark,lon,lat\n"
        "人民公园避难场所,5000,英雄中路,park,ok,113.1164,36.1954\n"
        "体育中心避难场所,12000,太行东街,stadium,,113.1301,36.2012\n",
    )
    report = _import(db_url, read_features(path), "shelters")
    assert report.builtin and report.table == "ref.poi" and report.rows == 2
    assert report.columns == {"名称": "name_zh", "Capacity": "capacity", "address": "address"}
    assert set(report.ignored_columns) == {"category", "remark"}
    assert _scalar(conn, "SELECT count(*) FROM ref.poi WHERE category = 'shelter'") == before + 2
    assert _scalar(conn, "SELECT count(*) FROM ref.poi WHERE category <> 'shelter'") == others
    rows = conn.execute(
        "SELECT name_zh, capacity, address, GeometryType(geom) FROM ref.poi"
        " WHERE category = 'shelter' ORDER BY id DESC LIMIT 2"
    ).fetchall()
    assert sorted(rows) == [
        ("人民公园避难场所", 5000, "英雄中路", "POINT"),
        ("体育中心避难场所", 12000, "太行东街", "POINT"),
    ]
    assert _audits(conn, "shelters")[-1]["table"] == "ref.poi"


def test_builtin_import_problems_write_nothing(tmp_path: Path, db_url: str, conn: Any) -> None:
    count = "SELECT count(*) FROM ref.poi"
    before = _scalar(conn, count)
    missing = _csv(tmp_path / "nameless.csv", "capacity,lon,lat\n10,113.1,36.2\n")
    with pytest.raises(InvalidInput, match=r"needs column\(s\) name_zh; the file has: capacity"):
        _import(db_url, read_features(missing), "hospitals")
    empty_name = _csv(
        tmp_path / "gap.csv", "name,capacity,lon,lat\nA,10,113.1,36.2\n,20,113.2,36.2\n"
    )
    with pytest.raises(ImportRejected, match="row 2: name_zh is empty"):
        _import(db_url, read_features(empty_name), "hospitals")
    # Passes every check here, fails in the database (no such department): rolled back whole.
    bad_fk = _csv(
        tmp_path / "fk.csv",
        "name,department_code,lon,lat\nA,,113.1,36.2\nB,no-such-dept,113.2,36.2\n",
    )
    with pytest.raises(Conflict, match="department"):
        _import(db_url, read_features(bad_fk), "schools")
    polygons = tmp_path / "area.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[_square(113.1, 36.2)], crs=4326).to_file(polygons)
    with pytest.raises(InvalidInput, match="holds points; the file has polygons"):
        _import(db_url, read_features(polygons), "shelters")
    with pytest.raises(Conflict, match="takes no imports"):
        _import(db_url, read_features(missing), "districts")
    assert _scalar(conn, count) == before


def test_import_parcels_computes_area_and_refuses_existing_codes(
    tmp_path: Path, db_url: str, conn: Any
) -> None:
    xs, ys = TO_GK.transform([113.11, 113.12], [36.19, 36.19])
    squares = [shapely.box(x, y, x + 50, y + 40) for x, y in zip(xs, ys, strict=True)]
    frame = gpd.GeoDataFrame(
        {
            "宗地代码": ["140402001001GB00001", "140402001001GB00002"],
            "地类编码": ["0701", "0503"],
            "地类名称": ["城镇住宅用地", "商务金融用地"],
            "权利人": ["张三", None],
        },
        geometry=squares,
        crs=4547,
    )
    path = tmp_path / "parcels.gpkg"
    frame.to_file(path, driver="GPKG")
    report = _import(db_url, read_features(path), "parcels")
    assert report.rows == 2 and report.geometry_type == "MultiPolygon"
    rows = conn.execute(
        "SELECT parcel_code, version, land_use, land_use_zh, owner, area_m2, valid_to,"
        " registered_by FROM registry.parcel WHERE parcel_code LIKE '140402001001GB0000_'"
        " ORDER BY parcel_code"
    ).fetchall()
    assert [r[:5] for r in rows] == [
        ("140402001001GB00001", 1, "0701", "城镇住宅用地", "张三"),
        ("140402001001GB00002", 1, "0503", "商务金融用地", None),
    ]
    for r in rows:
        assert abs(r[5] - 2000.0) < 0.5 and r[6] is None and r[7] == "system"
    with pytest.raises(Conflict, match=r"parcel_code already in layer 'parcels'.*GB00001"):
        _import(db_url, read_features(path), "parcels")


# --------------------------------------------------------------------------- user layers


def test_append_to_user_layer_and_incompatible_files(
    tmp_path: Path, db_url: str, conn: Any
) -> None:
    first = _csv(tmp_path / "a.csv", "name,level,lon,lat\nA,1,113.1,36.2\nB,2,113.2,36.2\n")
    report = _import(db_url, read_features(first), "t_io_append", roles=("planner",))
    assert report.created
    second = _csv(tmp_path / "b.csv", "Name,level,lon,lat\nC,3.5,113.3,36.2\n")
    with pytest.raises(Conflict, match=r"level \(double precision into bigint\)"):
        _import(db_url, read_features(second), "t_io_append")
    third = _csv(tmp_path / "c.csv", "NAME,lon,lat\nC,113.3,36.2\nD,113.4,36.2\n")
    report = _import(db_url, read_features(third), "t_io_append")
    assert not report.created and report.rows == 2
    assert conn.execute("SELECT name, level FROM userdata.t_io_append ORDER BY id").fetchall() == [
        ("A", 1),
        ("B", 2),
        ("C", None),
        ("D", None),
    ]
    layer = next(x for x in user_layers(conn) if x.id == "t_io_append")
    assert layer.roles == ("planner",) and not layer.readable_by(None)
    extra = _csv(tmp_path / "d.csv", "name,colour,lon,lat\nE,red,113.3,36.2\n")
    with pytest.raises(Conflict, match=r"has no column\(s\) colour"):
        _import(db_url, read_features(extra), "t_io_append")
    with pytest.raises(InvalidInput, match="layer id 'Bad-Id'"):
        _import(db_url, read_features(first), "Bad-Id")
    with pytest.raises(InvalidInput, match="unknown role"):
        _import(db_url, read_features(first), "t_io_roles", roles=("wizard",))
    assert len(_audits(conn, "t_io_append")) == 2


def test_failed_import_leaves_callers_transaction_usable(tmp_path: Path, db_url: str) -> None:
    path = _csv(tmp_path / "s.csv", "name,department_code,lon,lat\nA,nope,113.1,36.2\n")
    result = read_features(path)
    with connect(db_url) as c:
        c.execute("CREATE TEMP TABLE caller_work (n int)")
        c.execute("INSERT INTO caller_work VALUES (1)")
        with pytest.raises(Conflict):
            import_layer(c, result, "schools", catalog=installed_catalog())
        assert _scalar(c, "SELECT count(*) FROM caller_work") == 1
        c.rollback()


# --------------------------------------------------------------------------- export


def _compare(path: Path, expected: gpd.GeoDataFrame, tolerance: float) -> gpd.GeoDataFrame:
    back = gpd.read_file(path)
    assert len(back) == len(expected)
    assert back.crs is not None and back.crs.to_epsg() == 4326
    for a, b in zip(back.geometry, expected.geometry, strict=True):
        # Hausdorff distance: indifferent to Polygon vs MultiPolygon and ring start.
        assert a.hausdorff_distance(b) <= tolerance
    return back


def test_export_round_trip(tmp_path: Path, db_url: str, conn: Any) -> None:
    frame = gpd.GeoDataFrame(
        {"name": ["东", "西", "南"], "rank": [1, 2, 3]},
        geometry=[_square(113.11, 36.19), _square(113.12, 36.20), _square(113.13, 36.21)],
        crs=4326,
    )
    source = tmp_path / "zones.gpkg"
    frame.to_file(source, driver="GPKG")
    _import(db_url, read_features(source), "t_io_export")
    layer = next(x for x in user_layers(conn) if x.id == "t_io_export")

    assert export_layer(conn, layer, tmp_path / "out.gpkg") == 3
    back = _compare(tmp_path / "out.gpkg", frame, 1e-9)
    assert list(back["name"]) == ["东", "西", "南"] and list(back["rank"]) == [1, 2, 3]
    assert export_layer(conn, layer, tmp_path / "out.geojson") == 3
    _compare(tmp_path / "out.geojson", frame, 1e-6)
    assert (
        json.loads((tmp_path / "out.geojson").read_text())["features"][0]["properties"]["name"]
        == "东"
    )
    assert export_layer(conn, layer, tmp_path / "out.csv") == 3
    again = read_features(tmp_path / "out.csv")
    assert again.rows == 3 and list(again.frame["name"]) == ["东", "西", "南"]
    assert export_layer(conn, layer, tmp_path / "out.zip") == 3
    _compare(tmp_path / "out.zip", frame, 1e-9)
    assert export_layer(conn, layer, tmp_path / "one.gpkg", bbox=(113.115, 36.195, 114, 37)) == 2
    with pytest.raises(UnsupportedFormat, match=r"cannot export to '\.kml'"):
        export_layer(conn, layer, tmp_path / "out.kml")


def test_export_builtin_layer_honours_its_filter(tmp_path: Path, db_url: str, conn: Any) -> None:
    shelter = _csv(tmp_path / "s.csv", "name_zh,lon,lat\n滨河公园,113.101,36.201\n")
    _import(db_url, read_features(shelter), "shelters")
    hospital = _csv(tmp_path / "h.csv", "name_zh,lon,lat\n和平医院,113.1,36.2\n")
    _import(db_url, read_features(hospital), "hospitals")
    layer = installed_catalog().get("shelters")
    count = export_layer(conn, layer, tmp_path / "shelters.geojson")
    shelters = _scalar(conn, "SELECT count(*) FROM ref.poi WHERE category = 'shelter'")
    assert count == shelters >= 1
    back = gpd.read_file(tmp_path / "shelters.geojson")
    assert len(back) == shelters and set(back["category"]) == {"shelter"}
    assert "滨河公园" in set(back["name_zh"]) and "和平医院" not in set(back["name_zh"])
    assert export_layer(conn, layer, tmp_path / "none.gpkg", bbox=(0, 0, 1, 1)) == 0


def test_write_features_accepts_a_read_result(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", "name,lon,lat\na,113.1,36.2\nb,113.2,36.3\n")
    result = read_features(path)
    out = write_features(result, tmp_path / "r.gpkg")
    back = gpd.read_file(out)
    assert list(back["name"]) == ["a", "b"]
    assert np.allclose(back.geometry.x, [113.1, 113.2])


# --------------------------------------------------------------------------- CLI


def _cli_registered() -> bool:
    from apps.platform.cli import app

    return any(c.name == "import" for c in app.registered_commands)


def test_cli_commands(
    tmp_path: Path, db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from apps.platform.cli_io import register
    from gis_core.settings import get_settings

    app = typer.Typer()
    register(app)
    monkeypatch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHANGZHI_VAR_DIR", str(settings.platform.var_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        good = _csv(tmp_path / "cli.csv", "name,lng,lat\n高德点,113.1,36.2\n")
        ok = runner.invoke(
            app, ["import", str(good), "--layer", "t_io_cli", "--crs", "GCJ02", "--title", "CLI"]
        )
        assert ok.exit_code == 0, ok.output
        assert "imported 1 Point rows" in ok.stdout and "GCJ-02" in ok.stdout
        assert "EPSG:4326" in ok.stdout

        bowtie = tmp_path / "bow.geojson"
        gpd.GeoDataFrame(
            {"n": [1]},
            geometry=[Polygon([(113.1, 36.2), (113.11, 36.21), (113.11, 36.2), (113.1, 36.21)])],
            crs=4326,
        ).to_file(bowtie)
        ok = runner.invoke(app, ["import", str(bowtie), "--layer", "t_io_cli_bow"])
        assert ok.exit_code == 0, ok.output
        assert "repaired 1 invalid geometry" in ok.stdout and "Self-intersection[" in ok.stdout

        bad = _csv(tmp_path / "bad.csv", "name,lon,lat\na,113.1,36.2\nb,36.2,113.1\n")
        failed = runner.invoke(app, ["import", str(bad), "--layer", "t_io_cli_bad"])
        assert failed.exit_code == 1
        assert failed.stderr.startswith("changzhi: bad.csv: 1 of 2 features rejected")
        assert "row 2" in failed.stderr and "Traceback" not in failed.output

        failed = runner.invoke(app, ["import", str(good), "--layer", "t_io_x", "--crs", "EPSG:1"])
        assert failed.exit_code == 1 and "EPSG:1" in failed.stderr

        out = tmp_path / "cli.gpkg"
        exported = runner.invoke(app, ["export", "t_io_cli", str(out)])
        assert exported.exit_code == 0, exported.output
        assert len(gpd.read_file(out)) == 1
        failed = runner.invoke(app, ["export", "no_such_layer", str(out)])
        assert failed.exit_code == 1 and "no layer 'no_such_layer'" in failed.stderr
    finally:
        get_settings.cache_clear()

    if _cli_registered():
        # The lead has wired the commands into `changzhi`: check the real entry point too.
        env = {
            **os.environ,
            "CHANGZHI_DATABASE_URL": settings.database_url,
            "CHANGZHI_VAR_DIR": str(settings.platform.var_dir),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "apps.platform.cli",
                "import",
                str(good),
                "--layer",
                "t_io_cli_sub",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert "imported 1" in run.stdout


def test_read_result_frame_shape(tmp_path: Path) -> None:
    path = _csv(tmp_path / "shape.csv", "id,lon,lat\n7,113.1,36.2\n8,113.2,36.3\n")
    result = read_features(path)
    assert result.frame.index.name == "row" and list(result.frame.index) == [1, 2]
    assert result.frame.geometry.name == "geom" and result.frame.crs.to_epsg() == 4326
    assert result.id_column == "id"
    assert isinstance(result.frame["id"].dtype, pd.Int64Dtype)
    assert not math.isnan(result.frame.geometry.iloc[0].x)
