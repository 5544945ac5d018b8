"""The city as the synthesizer sees it: units, seats, rivers and relief read from a city directory.

Everything the synthesizer derives (where the streets go, where villages sit, how many people
live where) starts from these files, so the same code runs for any city extracted the same way:
``districts.geojson``, ``city.geojson``, ``towns.geojson``, ``rivers.geojson``, ``city.json``
and, optionally, ``etopo1_window.tif``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage
from shapely.geometry import LineString, Polygon, shape
from shapely.geometry.base import BaseGeometry

from gis_core.crs import WGS84, transform, transform_geometry

__all__ = ["City", "District", "Seat", "load_city", "rng_for"]

FloatArray = npt.NDArray[np.float64]
_SUFFIXES_EN = (" District", " County", " City", " Banner")


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per component, so changing one never reshuffles another."""
    return np.random.default_rng([seed, stream])


def _short_zh(name: str) -> str:
    # 潞州区 -> 潞州, but 沁县 stays 沁县 (a single character is not a name on its own).
    if len(name) > 2 and name[-1] in "区县市旗":
        return name[:-1]
    return name


def _short_en(name: str) -> str:
    for suf in _SUFFIXES_EN:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


@dataclass(frozen=True)
class District:
    """A county-level unit. ``geom`` is WGS84, ``geom_m`` metric."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    population: int
    geom: BaseGeometry
    geom_m: BaseGeometry

    @property
    def short_zh(self) -> str:
        return _short_zh(self.name_zh)

    @property
    def short_en(self) -> str:
        return _short_en(self.name_en)


@dataclass(frozen=True)
class Seat:
    """The seat of a unit (city seat first). ``x``, ``y`` metric."""

    name_zh: str
    name_en: str
    district_code: str
    kind: str
    x: float
    y: float


@dataclass
class City:
    """A city's reference geography in WGS84 and in its metric CRS."""

    directory: Path
    code: str
    name_zh: str
    name_en: str
    province_zh: str
    epsg: int
    districts: list[District]
    outline: BaseGeometry
    outline_m: BaseGeometry
    seats: list[Seat]
    rivers: list[tuple[str, LineString, LineString]]  # name_zh, WGS84, metric (inside city)
    _dem: tuple[np.ndarray, Any] | None = field(default=None, repr=False)
    _tree: shapely.STRtree | None = field(default=None, repr=False)
    _shrunk_cache: dict[float, BaseGeometry] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- naming
    @property
    def short_zh(self) -> str:
        """``长治市`` → ``长治``."""
        return _short_zh(self.name_zh)

    @property
    def province_short_zh(self) -> str:
        return self.province_zh[:-1] if self.province_zh.endswith("省") else self.province_zh

    def district(self, code: str) -> District:
        for d in self.districts:
            if d.code == code:
                return d
        raise KeyError(code)

    @property
    def city_seat(self) -> Seat:
        return self.seats[0]

    def seat_of(self, code: str) -> Seat | None:
        for s in self.seats:
            if s.district_code == code:
                return s
        return None

    # ---------------------------------------------------------------- CRS
    def to_m(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        x, y = transform(np.asarray(lon, float), np.asarray(lat, float), WGS84, self.epsg)
        return np.asarray(x, float), np.asarray(y, float)

    def to_wgs(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        lon, lat = transform(np.asarray(x, float), np.asarray(y, float), self.epsg, WGS84)
        return np.asarray(lon, float), np.asarray(lat, float)

    def geoms_to_wgs(self, geoms: Any) -> Any:
        return transform_geometry(geoms, self.epsg, WGS84)

    def geoms_to_m(self, geoms: Any) -> Any:
        return transform_geometry(geoms, WGS84, self.epsg)

    # ---------------------------------------------------------------- lookups
    def district_codes(self, x: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
        """District code of metric points; points outside every unit get the nearest one."""
        x = np.atleast_1d(np.asarray(x, float))
        y = np.atleast_1d(np.asarray(y, float))
        if self._tree is None:
            self._tree = shapely.STRtree([d.geom_m for d in self.districts])
        pts = shapely.points(x, y)
        out = np.full(len(pts), -1, dtype=np.int64)
        pi, di = self._tree.query(pts, predicate="intersects")
        out[pi] = di  # a point on a shared border takes the later unit; harmless
        miss = np.flatnonzero(out < 0)
        if len(miss):
            _, nd = self._tree.query_nearest(pts[miss], return_distance=False, all_matches=False)
            out[miss] = nd
        codes = np.array([d.code for d in self.districts], dtype=object)
        return codes[out]

    def inside(self, x: npt.ArrayLike, y: npt.ArrayLike, margin: float = 0.0) -> np.ndarray:
        """Metric points inside the outline shrunk by ``margin`` metres."""
        geom = self.outline_m if margin == 0 else self._shrunk(margin)
        x = np.atleast_1d(np.asarray(x, float))
        y = np.atleast_1d(np.asarray(y, float))
        return np.asarray(shapely.contains_xy(geom, x, y))

    def _shrunk(self, margin: float) -> BaseGeometry:
        if margin not in self._shrunk_cache:
            g = self.outline_m.buffer(-margin)
            shapely.prepare(g)
            self._shrunk_cache[margin] = g
        return self._shrunk_cache[margin]

    def elevation(self, x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
        """Elevation (m) at metric points, bilinear on the coarse real DEM (0 if absent)."""
        x = np.asarray(x, float)
        if self._dem is None:
            return np.zeros_like(x)
        z, inv = self._dem
        lon, lat = self.to_wgs(x, y)
        col = inv.a * lon + inv.b * lat + inv.c
        row = inv.d * lon + inv.e * lat + inv.f
        # Pixel centres sit at +0.5; map_coordinates indexes centres at integers.
        return np.asarray(
            ndimage.map_coordinates(z, [row - 0.5, col - 0.5], order=1, mode="nearest"), float
        )


def _read_features(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    feats: list[dict[str, Any]] = data["features"]
    return feats


def _read_dem(path: Path) -> tuple[np.ndarray, Any] | None:
    if not path.exists():
        return None
    import rasterio

    with rasterio.open(path) as ds:
        z = ds.read(1).astype(np.float64)
        nodata = ds.nodata
        inv = ~ds.transform
    if nodata is not None:
        z = np.where(z == nodata, np.nan, z)
    if np.isnan(z).any():
        z = np.where(np.isnan(z), np.nanmean(z), z)
    return z, inv


def _lines(geom: BaseGeometry) -> Sequence[LineString]:
    if geom.is_empty:
        return []
    if isinstance(geom, LineString):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString) and g.length > 0]


def load_city(city_dir: Path) -> City:
    """Read a city directory written by ``layers.reference.extract``.

    Parameters
    ----------
    city_dir
        Directory holding ``city.json``, ``districts.geojson``, ``city.geojson``,
        ``towns.geojson``, ``rivers.geojson`` and optionally ``etopo1_window.tif``.
    """
    city_dir = Path(city_dir)
    meta = json.loads((city_dir / "city.json").read_text(encoding="utf-8"))
    epsg = int(meta.get("metric_epsg", 3857))
    feats = sorted(
        _read_features(city_dir / "districts.geojson"), key=lambda f: f["properties"]["code"]
    )
    geoms = [shapely.make_valid(shape(f["geometry"])) for f in feats]
    geoms_m = list(transform_geometry(np.array(geoms, dtype=object), WGS84, epsg))
    districts = [
        District(
            code=str(f["properties"]["code"]),
            name_zh=f["properties"]["name_zh"],
            name_en=f["properties"]["name_en"],
            kind=f["properties"].get("kind", "district"),
            population=int(f["properties"]["population_2020"]),
            geom=g,
            geom_m=gm,
        )
        for f, g, gm in zip(feats, geoms, geoms_m, strict=True)
    ]
    outline_feats = _read_features(city_dir / "city.geojson")
    outline = shapely.union_all([shape(f["geometry"]) for f in outline_feats])
    outline_m = transform_geometry(outline, WGS84, epsg)
    shapely.prepare(outline_m)

    seats: list[Seat] = []
    for f in _read_features(city_dir / "towns.geojson"):
        p = f["properties"]
        if p.get("kind") not in ("city_seat", "county_seat"):
            continue
        lon, lat = f["geometry"]["coordinates"][:2]
        x, y = transform(lon, lat, WGS84, epsg)
        zh = p.get("name_zh") or p.get("name") or ""
        seats.append(
            Seat(
                zh,
                p.get("name") or zh,
                str(p["district_code"]),
                p["kind"],
                float(np.asarray(x)),
                float(np.asarray(y)),
            )
        )
    seats.sort(key=lambda s: (s.kind != "city_seat", s.district_code))
    codes = {d.code for d in districts}
    seats = [s for s in seats if s.district_code in codes]
    if not seats or seats[0].kind != "city_seat":
        raise ValueError("towns.geojson has no city seat inside the districts")

    rivers: list[tuple[str, LineString, LineString]] = []
    rpath = city_dir / "rivers.geojson"
    if rpath.exists():
        for f in _read_features(rpath):
            clipped = shape(f["geometry"]).intersection(outline)
            for line in _lines(shapely.line_merge(clipped) if not clipped.is_empty else clipped):
                lm = transform_geometry(line, WGS84, epsg)
                if lm.length > 2000:
                    rivers.append((f["properties"].get("name_zh") or "", line, lm))

    return City(
        directory=city_dir,
        code=str(meta["code"]),
        name_zh=meta["name_zh"],
        name_en=meta.get("name_en", ""),
        province_zh=meta.get("province_zh", ""),
        epsg=epsg,
        districts=districts,
        outline=outline,
        outline_m=outline_m,
        seats=seats,
        rivers=rivers,
        _dem=_read_dem(city_dir / "etopo1_window.tif"),
    )


def polygon_parts(geom: BaseGeometry) -> list[Polygon]:
    """The polygons of a (multi)polygon or collection, empties dropped."""
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in polygon_parts(g)]
