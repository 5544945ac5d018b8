"""GDAL as a real client: its OAPIF driver reads every collection a user may see, in WGS84 and
CGCS2000, with a `-where` it sends to the server as a CQL text filter, and its MVT driver reads
the vector tiles. The platform runs on a real port (uvicorn), the counts come from the tables.

`make test` installs GDAL (Debian `gdal-bin`) through the bootstrap's package list; this module
installs it itself when run alone as root, and is skipped only when neither can be done."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest

from gis_core.db import connect
from gis_core.tiles import tile_containing

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[1]
DOWNTOWN = (113.11, 36.19)


def _ensure_gdal() -> str | None:
    """The reason GDAL's tools cannot be had, or None when ogrinfo is on the PATH."""
    if shutil.which("ogrinfo") and shutil.which("ogr2ogr"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "ogrinfo is absent and only root may install it: sudo apt-get install gdal-bin"
    done = subprocess.run(
        ["bash", str(ROOT / "apps/platform/apt-install.sh"), "gdal-bin"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 or not shutil.which("ogrinfo"):
        return f"ogrinfo is absent and installing gdal-bin failed: {done.stderr[-300:]}"
    return None


@pytest.fixture(scope="module")
def server(reference: object, api: Any) -> Iterator[str]:
    """The platform's app (already started by the `api` fixture) on a real local port."""
    reason = _ensure_gdal()
    if reason:
        pytest.skip(reason)
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        api.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    api.app.state.catalog_at = 0.0
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def viewer_token(api: Any, db_url: str) -> str:
    from gis_core.identity import create_user

    name, password = f"gdal-viewer-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    with connect(db_url) as conn:
        create_user(conn, username=name, password=password, roles=["viewer"], department=None)
        conn.commit()
    response = api.post("/auth/token", data={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _gdal(
    args: list[str], token: str | None = None, debug: bool = False
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GDAL_HTTP_TIMEOUT": "120",
        "CPL_DEBUG": "ON" if debug else "OFF",
        # The tiles answer GET only: /vsicurl/ need not ask HEAD first.
        "CPL_VSIL_CURL_USE_HEAD": "NO",
    }
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, (args, done.stdout[-500:], done.stderr[-1500:])
    return done


def _layers(server: str, token: str | None) -> list[str]:
    listed = _gdal(["ogrinfo", "-ro", "-q", f"OAPIF:{server}"], token).stdout
    # Lines read "1: districts (Multi Polygon)".
    return [
        line.split(":", 1)[1].split("(")[0].strip() for line in listed.splitlines() if ":" in line
    ]


def _read(server: str, layer: str, out: Path, token: str | None, *extra: str) -> dict:
    target = out / f"{layer}-{secrets.token_hex(3)}.geojson"
    _gdal(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(target),
            f"OAPIF:{server}",
            layer,
            "-oo",
            "PAGE_SIZE=5000",
            *extra,
        ],
        token,
    )
    return json.loads(target.read_text())


def _table_count(db_url: str, api: Any, layer_id: str) -> int:
    layer = api.app.state.catalog.by_id[layer_id]
    where = f" WHERE {layer.where}" if layer.where else ""  # the catalog's own filter, our code
    schema, table = layer.table.split(".")
    with connect(db_url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"{where}').fetchone()
    return int(row[0])


def test_ogrinfo_lists_what_each_user_may_see(server, api, admin_headers, viewer_token):
    anonymous = {c["id"] for c in api.get("/collections").json()["collections"]}
    assert set(_layers(server, None)) == anonymous
    viewer = {
        c["id"]
        for c in api.get(
            "/collections", headers={"Authorization": f"Bearer {viewer_token}"}
        ).json()["collections"]
    }
    assert set(_layers(server, viewer_token)) == viewer
    admin_token = admin_headers["Authorization"].split(" ", 1)[1]
    everything = set(_layers(server, admin_token))
    assert anonymous < viewer <= everything
    assert {"parcels", "alarms"} <= everything and "alarms" not in anonymous


def test_ogr2ogr_reads_every_collection_whole(server, api, db_url, admin_headers, tmp_path):
    admin_token = admin_headers["Authorization"].split(" ", 1)[1]
    read = 0
    for layer_id in _layers(server, admin_token):
        got = _read(server, layer_id, tmp_path, admin_token)
        assert len(got["features"]) == _table_count(db_url, api, layer_id), layer_id
        read += len(got["features"])
    assert read > 1000


def _towns(db_url: str) -> dict[str, tuple[float, float]]:
    with connect(db_url) as conn:
        rows = conn.execute("SELECT name_zh, ST_X(geom), ST_Y(geom) FROM ref.town").fetchall()
    expected = {name: (x, y) for name, x, y in rows}
    assert len(expected) == len(rows) > 1  # the city seat and the county seats: unique names
    return expected


def test_towns_in_wgs84_match_the_database(server, db_url, tmp_path):
    expected = _towns(db_url)
    got = _read(server, "towns", tmp_path, None)
    by_name = {f["properties"]["name_zh"]: f for f in got["features"]}
    assert set(by_name) == set(expected)
    for name, (x, y) in expected.items():
        lon, lat = by_name[name]["geometry"]["coordinates"][:2]
        assert lon == pytest.approx(x, abs=1e-6) and lat == pytest.approx(y, abs=1e-6)


# pyogrio's own GDAL (3.7 and later ask the server for a CRS and send CQL2 text; the
# command-line tools of Debian 12 are GDAL 3.6, which do neither), run in a process of its own:
# pyogrio holds the GIL while it reads, and the server answers from a thread of this one.
NEWER_GDAL = """
import json, sys
import pyogrio
url, layer, crs, where = sys.argv[1:5]
options = {"CRS": crs} if crs else {}
frame = pyogrio.read_dataframe(url, layer=layer, where=where or None, **options)
points = [
    [name, g.x, g.y]
    for name, g in zip(frame.get("name_zh", [None] * len(frame)), frame.geometry)
    if g is not None and g.geom_type == "Point"
]
print(json.dumps({"epsg": frame.crs.to_epsg() if frame.crs else None, "count": len(frame),
                  "crs": frame.crs.to_string() if frame.crs else None,
                  "names": list(frame["name_zh"]) if "name_zh" in frame else [],
                  "points": points}))
"""


def _newer_gdal(
    server: str, layer: str, crs: str = "", where: str = "", token: str | None = None
) -> tuple[dict[str, Any], str]:
    import sys

    import pyogrio

    version = tuple(int(v) for v in pyogrio.__gdal_version_string__.split(".")[:2])
    if version < (3, 7) or "OAPIF" not in pyogrio.list_drivers():
        pytest.skip(f"pyogrio's GDAL {pyogrio.__gdal_version_string__} has no OAPIF with CRS")
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "120", "CPL_DEBUG": "ON"}
    if token:
        # GDAL 3.9 and later: the driver's own Accept header displaces GDAL_HTTP_HEADERS.
        env.update(GDAL_HTTP_AUTH="BEARER", GDAL_HTTP_BEARER=token)
    done = subprocess.run(
        [sys.executable, "-c", NEWER_GDAL, f"OAPIF:{server}", layer, crs, where],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:4490"])
def test_towns_in_wgs84_and_cgcs2000_through_gdal_crs_negotiation(server, db_url, crs):
    expected = _towns(db_url)
    got, log = _newer_gdal(server, "towns", crs=crs)
    # EPSG:4326 asked of GDAL comes back as its lon/lat twin, OGC:CRS84.
    assert got["epsg"] == int(crs.split(":")[1]) or (crs == "EPSG:4326" and "CRS84" in got["crs"])
    assert "crs=http" in log  # the CRS was asked of the server, not reprojected by GDAL
    assert got["count"] == len(expected)
    for name, x, y in got["points"]:
        # GDAL hands out lon/lat whatever the CRS's axis order on the wire (lat/lon here).
        assert x == pytest.approx(expected[name][0], abs=1e-6)
        assert y == pytest.approx(expected[name][1], abs=1e-6)


def test_newer_gdal_sends_cql2_text_and_reads_restricted_layers(server, api, db_url, admin_headers):
    got, log = _newer_gdal(server, "districts", where="population_2020 >= 319660")
    assert set(got["names"]) == {"潞州区", "上党区"}
    # The filter went to the server (GDAL 3.12 too picks the text encoding the OpenAPI
    # document lists first that it knows); the server answered only the two districts.
    assert "&filter=population_2020" in log and "filter-lang=cql" in log, log[-2000:]
    token = admin_headers["Authorization"].split(" ", 1)[1]
    alarms, _ = _newer_gdal(server, "alarms", token=token)
    assert alarms["count"] == _table_count(db_url, api, "alarms")


def test_where_is_sent_to_the_server_as_a_cql_filter(server, tmp_path):
    target = tmp_path / "big.geojson"
    done = _gdal(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(target),
            f"OAPIF:{server}",
            "districts",
            "-where",
            "population_2020 > 300000 AND name_zh LIKE '%区'",
        ],
        debug=True,
    )
    # GDAL 3.6 names the text encoding as the drafts did; later versions say cql2-text.
    assert "filter-lang=cql" in done.stderr, done.stderr[-2000:]
    names = {f["properties"]["name_zh"] for f in json.loads(target.read_text())["features"]}
    assert names == {"潞州区", "上党区"}


def test_mvt_driver_reads_a_tile(server, api, tmp_path):
    z = 13
    x, y = tile_containing(*DOWNTOWN, z)
    url = f"{server}/collections/roads/tiles/WebMercatorQuad/{z}/{y}/{x}"
    content = urllib.request.urlopen(url, timeout=60).read()  # over the real port
    expected = len(mapbox_vector_tile.decode(content)["roads"]["features"])
    assert expected > 5
    # A file named z/x/y.pbf tells the driver where the tile lies.
    local = tmp_path / str(z) / str(x) / f"{y}.pbf"
    local.parent.mkdir(parents=True)
    local.write_bytes(content)
    summary = _gdal(["ogrinfo", "-ro", "-al", "-so", str(local)]).stdout
    assert f"Feature Count: {expected}" in summary, summary
    # GDAL 3.6 recognises a tile by its .pbf name only, so it reads the downloaded copy; the
    # z/x/y path places it, in EPSG:3857.
    extent = next(line for line in summary.splitlines() if line.startswith("Extent:"))
    (minx, miny), (maxx, maxy) = (
        tuple(float(v) for v in part.strip(" ()").split(","))
        for part in extent.removeprefix("Extent:").split(" - ")
    )
    from pyproj import Transformer

    cx, cy = Transformer.from_crs(4326, 3857, always_xy=True).transform(*DOWNTOWN)
    assert minx - 5000 < cx < maxx + 5000 and miny - 5000 < cy < maxy + 5000
