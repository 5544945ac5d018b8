"""Corner-coordinate lists (拐点坐标 / 界址点坐标) of mining rights and parcels.

Chinese registers publish a boundary as numbered corners in CGCS2000 3-degree Gauss–Krüger:
X is the northing, Y the easting, Y often prefixed with the zone number (zone 38, central
meridian 114°E: ``Y = 38 512 345.67``). This module reads the common text layouts into shapely
geometry (in the zone's metric CRS and in WGS84) with the depth range, and writes them back.

Layouts read (one parser, the layout is recognised line by line; see the README):

* 矿业权 exchange lines: ``点号,X,Y`` per corner, each ring ended by ``*,上限,下限,,,区块``
  (the depth range as elevations, top first); the 登记申请 variant ``XY001=1,X,Y`` /
  ``XY005=标高,上限,下限,,1`` and a ``矿区范围拐点坐标与标高的总行数=N`` header are accepted.
* 国土资源部 land-survey exchange file: ``[属性描述]`` (``带号=38``, ``几度分带=3``, ...) and
  ``[地块坐标]`` with one ``点数,面积,地块编号,地块名称,面,图幅号,用途,地类编码,@`` header per
  parcel and ``点号,圈号,X,Y`` lines, each ring closed by repeating its first corner.
* plain lists: ``点号 X Y`` (comma, tab or blanks), rings separated by a blank line, a ``*``
  line or any header line; or ``点号,圈号,X,Y`` with a ring-number column; or bare ``X,Y``.

A ring's role is decided by containment, as the files do not say it reliably: a ring inside an
earlier outer ring is a hole of it, any other ring starts a new part.

Examples
--------
>>> text = '''1,4007000.00,38420000.00
... 2,4007000.00,38421000.00
... 3,4006000.00,38421000.00
... 4,4006000.00,38420000.00
... *,1200,800,,,1'''
>>> (b,) = parse_corners(text)
>>> b.zone, b.epsg, round(b.geometry_gk.area), b.depth
(38, 4547, 1000000, DepthRange(top=1200.0, bottom=800.0))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import shapely
from shapely.geometry import LinearRing, MultiPolygon, Polygon
from shapely.validation import explain_validity

from gis_core.crs import WGS84, get_transformer, out_of_china, transform_geometry

__all__ = [
    "ZONE_MAX",
    "ZONE_MIN",
    "Corner",
    "CornerBoundary",
    "CornerError",
    "DepthRange",
    "Ring",
    "boundary_area_mu",
    "parse_corners",
    "read_boundary",
    "write_boundary",
    "write_corners",
    "zone_epsg",
    "zone_of_longitude",
]

#: 3-degree zones covering China: zone 25 (CM 75°E) to zone 45 (CM 135°E).
ZONE_MIN: Final = 25
ZONE_MAX: Final = 45
# EPSG numbering of the CGCS2000 3-degree GK CRSs: zone-prefixed eastings from 4513 (zone 25),
# plain 500 km false easting from 4534 (CM 75°E); both run zone by zone to zone 45.
_EPSG_PREFIXED_ZONE25: Final = 4513
_EPSG_PLAIN_ZONE25: Final = 4534
# Corners closer than this are the same point (published values have 2–3 decimals).
_SAME_POINT_M: Final = 0.005
# A northing below 1,000 km is south of ~9°N; an easting without prefix is always below 1,000 km.
_NORTHING_MIN: Final = 1_000_000.0
_FALSE_EASTING_SPAN: Final = 1_000_000.0

Layout = Literal["mining", "land"]


class CornerError(ValueError):
    """A corner list that cannot be read as a boundary; the message says what and where."""


@dataclass(frozen=True)
class DepthRange:
    """Vertical extent as elevations in metres (开采深度上限/下限, 标高): ``top >= bottom``."""

    top: float
    bottom: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.top) and np.isfinite(self.bottom)):
            raise CornerError(f"depth range must be finite numbers, got {self.top}/{self.bottom}")
        if self.top < self.bottom:
            raise CornerError(
                f"depth range upper limit {self.top} m is below the lower limit {self.bottom} m"
            )


@dataclass(frozen=True)
class Corner:
    """One numbered corner: ``x`` northing, ``y`` easting without zone prefix (metres)."""

    name: str
    x: float
    y: float


@dataclass(frozen=True)
class Ring:
    """One closed ring of corners (not repeating the first) with its depth range if given."""

    corners: tuple[Corner, ...]
    depth: DepthRange | None = None
    flag: str | None = None


@dataclass(frozen=True)
class CornerBoundary:
    """A boundary read from a corner list.

    ``geometry_gk`` is in the zone's CGCS2000 GK CRS with the 500 km false easting only
    (:attr:`epsg`, e.g. 4547 for zone 38), x = easting, y = northing; ``geometry_wgs84`` is
    lon/lat. ``prefixed`` records whether the source wrote the zone number before Y, so the
    writer can give the file back as it came.
    """

    rings: tuple[Ring, ...]
    zone: int
    prefixed: bool
    geometry_gk: Polygon | MultiPolygon
    geometry_wgs84: Polygon | MultiPolygon
    depth: DepthRange | None
    warnings: tuple[str, ...] = ()
    name: str | None = None
    code: str | None = None

    @property
    def epsg(self) -> int:
        """EPSG code of :attr:`geometry_gk` (no zone prefix)."""
        return zone_epsg(self.zone, prefixed=False)

    @property
    def epsg_prefixed(self) -> int:
        """EPSG code of the same zone with zone-prefixed eastings (as many files write Y)."""
        return zone_epsg(self.zone, prefixed=True)


def zone_epsg(zone: int, *, prefixed: bool) -> int:
    """EPSG code of CGCS2000 3-degree GK ``zone``, with or without the zone-number prefix.

    Examples
    --------
    >>> zone_epsg(38, prefixed=True), zone_epsg(38, prefixed=False)
    (4526, 4547)
    """
    _check_zone(zone)
    base = _EPSG_PREFIXED_ZONE25 if prefixed else _EPSG_PLAIN_ZONE25
    return base + zone - ZONE_MIN


def zone_of_longitude(lon: float) -> int:
    """The 3-degree zone whose central meridian (3° × zone) is nearest ``lon``.

    Examples
    --------
    >>> zone_of_longitude(113.12), zone_of_longitude(112.4)
    (38, 37)
    """
    zone = int(np.floor(lon / 3.0 + 0.5))
    _check_zone(zone)
    return zone


def _check_zone(zone: int) -> None:
    if not ZONE_MIN <= zone <= ZONE_MAX:
        raise CornerError(
            f"3-degree zone {zone} is outside China's zones {ZONE_MIN}–{ZONE_MAX} "
            f"(central meridians 75°E–135°E)"
        )


# --------------------------------------------------------------------------- reading

_KEY_VALUE: Final = re.compile(r"^\s*([^=,，]+?)\s*=\s*(.*)$")
_RECORD_KEY: Final = re.compile(r"^XY\d+$", re.IGNORECASE)
_SPLIT_COMMA: Final = re.compile(r"\s*[,，]\s*")
_SPLIT_BLANK: Final = re.compile(r"\s+")
_ZONE_KEYS: Final = ("带号",)
_DATUM_KEYS: Final = ("坐标系", "坐标系统")
_BAND_KEYS: Final = ("几度分带", "分带")


@dataclass
class _RawRing:
    points: list[tuple[str, float, float]] = field(default_factory=list)
    depth: DepthRange | None = None
    flag: str | None = None
    line: int = 0
    ended: bool = False


@dataclass
class _RawBoundary:
    rings: list[_RawRing] = field(default_factory=list)
    name: str | None = None
    code: str | None = None
    line: int = 0

    def add(self, point: tuple[str, float, float], line: int) -> None:
        if not self.rings or self.rings[-1].ended:
            self.rings.append(_RawRing(line=line))
        self.rings[-1].points.append(point)

    def end_ring(self) -> None:
        if self.rings:
            self.rings[-1].ended = True

    def terminate(self, depth: DepthRange | None, flag: str | None, line: int) -> None:
        """A ``*`` / ``标高`` line ends the last ring (a blank line may stand before it)."""
        last = self.rings[-1] if self.rings else None
        if last is None or last.depth is not None or last.flag is not None:
            raise CornerError(f"line {line}: ring terminator with no corners above it")
        last.depth, last.flag, last.ended = depth, flag, True


def _fields(line: str) -> list[str]:
    if "," in line or "，" in line:
        return _SPLIT_COMMA.split(line.strip())
    return _SPLIT_BLANK.split(line.strip())


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _depth_and_flag(tokens: list[str], lineno: int) -> tuple[DepthRange | None, str | None]:
    """The fields after ``*`` / ``标高``: upper, lower elevation, then blanks, then a flag."""
    rest = tokens[1:]
    values = [t for t in rest if t != ""]
    if not values:
        return None, None
    top, bottom = _number(rest[0]) if rest else None, _number(rest[1]) if len(rest) > 1 else None
    if top is None or bottom is None:
        raise CornerError(
            f"line {lineno}: ring terminator needs the upper and lower depth limits "
            f"(elevations, m) after {tokens[0]!r}, got {','.join(tokens)!r}"
        )
    flags = [t for t in rest[2:] if t != ""]
    try:
        depth = DepthRange(top, bottom)
    except CornerError as exc:
        raise CornerError(f"line {lineno}: {exc}") from None
    return depth, flags[-1] if flags else None


def _point(tokens: list[str], lineno: int, auto: int) -> tuple[str, int | None, float, float]:
    """(name, ring number or None, X, Y) of a corner line; raises if it is not one."""
    nums = [_number(t) for t in tokens]
    if len(tokens) == 2 and None not in nums:
        return str(auto), None, float(nums[0] or 0), float(nums[1] or 0)
    if len(tokens) == 3 and nums[1] is not None and nums[2] is not None:
        return tokens[0], None, nums[1], nums[2]
    if len(tokens) >= 4 and nums[2] is not None and nums[3] is not None:
        ring = nums[1]
        if ring is not None and float(ring).is_integer() and 0 < ring < 10_000:
            return tokens[0], int(ring), nums[2], nums[3]
    raise CornerError(f"line {lineno}: not a corner line (点号,X,Y): {','.join(tokens)!r}")


def _is_point_line(tokens: list[str]) -> bool:
    nums = [_number(t) for t in tokens]
    if len(tokens) == 2:
        return None not in nums
    if len(tokens) == 3:
        return nums[1] is not None and nums[2] is not None
    if len(tokens) == 4:
        return None not in nums[1:]
    return False


def _scan(text: str) -> tuple[list[_RawBoundary], dict[str, str]]:
    """Split the text into boundaries of raw rings, and collect ``key=value`` headers."""
    headers: dict[str, str] = {}
    boundaries: list[_RawBoundary] = [_RawBoundary(line=1)]
    ring_no: int | None = None
    auto = 0
    for lineno, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        current = boundaries[-1]
        if not line:
            current.end_ring()
            continue
        if line.startswith("[") and line.endswith("]"):
            current.end_ring()
            continue
        kv = _KEY_VALUE.match(line)
        if kv and not _RECORD_KEY.match(kv.group(1)):
            headers[kv.group(1).strip()] = kv.group(2).strip()
            current.end_ring()
            continue
        if kv:
            line = kv.group(2).strip()
        tokens = _fields(line)
        head = tokens[0]
        if head in ("*", "标高"):
            current.terminate(*_depth_and_flag(tokens, lineno), lineno)
            ring_no = None
            continue
        if tokens[-1] == "@":
            # 地块坐标 header: 点数,面积,地块编号,地块名称,图形属性,图幅号,用途,地类编码,@
            nxt = _RawBoundary(line=lineno)
            nxt.code = tokens[2] or None if len(tokens) > 2 else None
            nxt.name = tokens[3] or None if len(tokens) > 3 else None
            if current.rings and any(r.points for r in current.rings):
                boundaries.append(nxt)
            else:
                boundaries[-1] = nxt
            ring_no = None
            continue
        if not _is_point_line(tokens):
            # A header line (点号,X坐标,Y坐标 / 第2区块 / ...) separates rings.
            current.end_ring()
            ring_no = None
            continue
        auto += 1
        name, number, x, y = _point(tokens, lineno, auto)
        if number is not None and ring_no is not None and number != ring_no:
            current.end_ring()
        ring_no = number
        current.add((name, x, y), lineno)
    return [b for b in boundaries if b.rings], headers


def _header(headers: dict[str, str], keys: Sequence[str]) -> str | None:
    for k in keys:
        if headers.get(k):
            return headers[k]
    return None


def _check_headers(headers: dict[str, str]) -> int | None:
    """The zone the header declares (or None); refuses datums and bands this reader lacks."""
    datum = _header(headers, _DATUM_KEYS)
    if datum and "2000" not in datum and datum.strip() not in ("2", "CGCS2000"):
        raise CornerError(
            f"coordinate system {datum!r} is not CGCS2000: only CGCS2000 Gauss–Krüger corner "
            "lists are read (a Xi'an 1980 or Beijing 1954 list needs a datum transformation first)"
        )
    band = _header(headers, _BAND_KEYS)
    if band:
        digits = re.sub(r"\D", "", band)
        if digits and digits != "3":
            raise CornerError(f"zone width {band!r}: only 3-degree Gauss–Krüger zones are read")
    zone_txt = _header(headers, _ZONE_KEYS)
    if zone_txt:
        try:
            zone = int(float(zone_txt))
        except ValueError:
            raise CornerError(f"带号 (zone number) {zone_txt!r} is not a number") from None
        _check_zone(zone)
        return zone
    return None


def _axes(
    xs: np.ndarray, ys: np.ndarray, on_swapped: Literal["fix", "refuse"], where: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Detect X and Y written the wrong way round (easting in the X column)."""
    prefixed_lo, prefixed_hi = ZONE_MIN * 1e6, (ZONE_MAX + 1) * 1e6
    x_pref = (xs >= prefixed_lo) & (xs < prefixed_hi)
    y_north = (ys >= _NORTHING_MIN) & (ys < 1e7)
    x_plain = (xs > 0) & (xs < _FALSE_EASTING_SPAN)
    swapped = bool((x_pref.all() & y_north.all()) or (x_plain.all() & y_north.all()))
    if not swapped:
        return xs, ys, []
    msg = (
        f"{where}: X and Y look exchanged (the X column holds eastings such as "
        f"{xs[0]:.2f}, the Y column northings such as {ys[0]:.2f})"
    )
    if on_swapped == "refuse":
        raise CornerError(msg + "; X must be the northing and Y the easting")
    return ys, xs, [msg + "; read them as Y,X"]


def _zone_of(
    ys: np.ndarray,
    header_zone: int | None,
    default_zone: int | None,
    near: tuple[float, float] | None,
    where: str,
) -> tuple[int, bool, np.ndarray, list[str]]:
    """Zone, whether Y was prefixed, and Y without prefix."""
    warnings: list[str] = []
    has_prefix = ys >= _FALSE_EASTING_SPAN
    if has_prefix.any() and not has_prefix.all():
        k = int(np.argmin(has_prefix))
        raise CornerError(
            f"{where}: some Y values carry a zone prefix and some do not (e.g. {ys[k]:.2f})"
        )
    if has_prefix.all():
        zones = np.floor(ys / 1e6).astype(int)
        if (zones != zones[0]).any():
            raise CornerError(f"{where}: Y values name different zones {sorted(set(zones))}")
        zone = int(zones[0])
        _check_zone(zone)
        if header_zone is not None and header_zone != zone:
            raise CornerError(f"{where}: Y is prefixed with zone {zone} but 带号={header_zone}")
        return zone, True, ys - zone * 1e6, warnings
    if header_zone is not None:
        return header_zone, False, ys, warnings
    if default_zone is not None:
        _check_zone(default_zone)
        warnings.append(f"{where}: Y has no zone prefix; zone {default_zone} taken as configured")
        return default_zone, False, ys, warnings
    if near is not None:
        zone = zone_of_longitude(near[0])
        warnings.append(
            f"{where}: Y has no zone prefix; zone {zone} inferred from the approximate "
            f"location {near[0]:.3f}°E"
        )
        return zone, False, ys, warnings
    raise CornerError(
        f"{where}: Y has no zone prefix and no zone is known: give 带号 in the file, "
        "a default zone, or an approximate location"
    )


def _check_range(
    xs: np.ndarray, ys: np.ndarray, names: list[str], zone: int, margin_deg: float, where: str
) -> None:
    """Refuse corners that fall outside the zone (beyond ``margin_deg``) or outside China."""
    lon, lat = get_transformer(zone_epsg(zone, prefixed=False), WGS84).transform(ys, xs)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    cm = 3.0 * zone
    bad = ~np.isfinite(lon) | (np.abs(lon - cm) > 1.5 + margin_deg) | out_of_china(lon, lat)
    bad |= (ys <= 0) | (xs <= 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise CornerError(
            f"{where}: corner {names[k]} (X={xs[k]:.2f}, Y={ys[k]:.2f}) is outside zone {zone}'s "
            f"valid range (central meridian {cm:g}°E ± {1.5 + margin_deg:g}°, inside China): "
            f"it maps to {lon[k]:.4f}°E {lat[k]:.4f}°N"
        )


def _close(points: list[tuple[str, float, float]], where: str) -> list[tuple[str, float, float]]:
    """Drop an explicit closing corner; refuse one that repeats the first number elsewhere."""
    if len(points) < 2:
        return points
    (n0, x0, y0), (n1, x1, y1) = points[0], points[-1]
    same_place = abs(x0 - x1) <= _SAME_POINT_M and abs(y0 - y1) <= _SAME_POINT_M
    if n0 == n1 and not same_place:
        raise CornerError(
            f"{where}: the ring is closed by corner {n1} but its coordinates "
            f"({x1:.2f}, {y1:.2f}) differ from corner {n0}'s ({x0:.2f}, {y0:.2f}): "
            "the ring cannot be closed"
        )
    return points[:-1] if same_place else points


def _ring(points: list[tuple[str, float, float]], where: str) -> LinearRing:
    names = [p[0] for p in points]
    seen: dict[str, int] = {}
    for k, n in enumerate(names):
        if n in seen:
            raise CornerError(
                f"{where}: corner number {n} appears twice (positions {seen[n] + 1} and {k + 1})"
            )
        seen[n] = k
    xy = np.array([(p[2], p[1]) for p in points], float)  # (easting, northing)
    distinct = np.unique(np.round(xy / _SAME_POINT_M).astype(np.int64), axis=0)
    if len(distinct) < 3:
        raise CornerError(f"{where}: a ring needs at least 3 distinct corners, got {len(distinct)}")
    ring = LinearRing(xy)
    if not ring.is_simple or not Polygon(ring).is_valid:
        reason = explain_validity(Polygon(ring))
        raise CornerError(f"{where}: the ring crosses itself ({reason})")
    if Polygon(ring).area <= 0:
        raise CornerError(f"{where}: the ring has no area (all corners on one line)")
    return ring


def _assemble(rings: list[LinearRing], where: str) -> Polygon | MultiPolygon:
    """Rings inside an earlier outer ring are its holes; the others start new parts."""
    outers: list[Polygon] = []
    holes: list[list[LinearRing]] = []
    for k, ring in enumerate(rings):
        poly = Polygon(ring)
        host = next((j for j, o in enumerate(outers) if o.contains(poly)), None)
        if host is not None:
            holes[host].append(ring)
            continue
        clash = next((j for j, o in enumerate(outers) if o.intersects(poly)), None)
        if clash is not None and outers[clash].intersection(poly).area > 0:
            raise CornerError(
                f"{where}: ring {k + 1} overlaps ring {clash + 1} without lying inside it"
            )
        outers.append(poly)
        holes.append([])
    # Corner order is kept as published (no re-orientation), so a round trip gives it back.
    parts = [Polygon(o.exterior, hs) for o, hs in zip(outers, holes, strict=True)]
    geom: Polygon | MultiPolygon = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    if not geom.is_valid:
        raise CornerError(
            f"{where}: the rings do not form a valid polygon ({explain_validity(geom)})"
        )
    return geom


def _boundary(
    raw: _RawBoundary,
    header_zone: int | None,
    default_zone: int | None,
    near: tuple[float, float] | None,
    on_swapped: Literal["fix", "refuse"],
    margin_deg: float,
) -> CornerBoundary:
    label = raw.code or raw.name
    where = f"boundary {label} (line {raw.line})" if label else f"boundary at line {raw.line}"
    warnings: list[str] = []
    all_pts = [p for r in raw.rings for p in r.points]
    xs = np.array([p[1] for p in all_pts], float)
    ys = np.array([p[2] for p in all_pts], float)
    xs, ys, w = _axes(xs, ys, on_swapped, where)
    warnings += w
    zone, prefixed, ys, w = _zone_of(ys, header_zone, default_zone, near, where)
    warnings += w
    _check_range(xs, ys, [p[0] for p in all_pts], zone, margin_deg, where)
    rings: list[Ring] = []
    shapes: list[LinearRing] = []
    k = 0
    for i, r in enumerate(raw.rings):
        pts = [(p[0], float(xs[k + j]), float(ys[k + j])) for j, p in enumerate(r.points)]
        k += len(r.points)
        ring_where = f"{where}, ring {i + 1} (line {r.line})"
        pts = _close(pts, ring_where)
        shapes.append(_ring(pts, ring_where))
        rings.append(Ring(tuple(Corner(n, x, y) for n, x, y in pts), r.depth, r.flag))
    geom = _assemble(shapes, where)
    depths = {r.depth for r in rings if r.depth is not None}
    depth: DepthRange | None = None
    if len(depths) == 1:
        depth = depths.pop()
    elif depths:
        depth = DepthRange(max(d.top for d in depths), min(d.bottom for d in depths))
        warnings.append(
            f"{where}: rings give different depth ranges; the boundary's range is their "
            f"envelope {depth.top:g}–{depth.bottom:g} m"
        )
    wgs = transform_geometry(geom, zone_epsg(zone, prefixed=False), WGS84)
    return CornerBoundary(
        rings=tuple(rings),
        zone=zone,
        prefixed=prefixed,
        geometry_gk=geom,
        geometry_wgs84=wgs,
        depth=depth,
        warnings=tuple(warnings),
        name=raw.name,
        code=raw.code,
    )


def parse_corners(
    text: str,
    *,
    default_zone: int | None = None,
    near: tuple[float, float] | None = None,
    on_swapped: Literal["fix", "refuse"] = "fix",
    zone_margin_deg: float = 0.5,
) -> list[CornerBoundary]:
    """Read every boundary of a corner-coordinate text.

    Parameters
    ----------
    text
        The file's text (decoded; GBK files must be decoded by the caller).
    default_zone
        3-degree zone to use when Y carries no zone prefix and the file gives no ``带号``.
    near
        Approximate (lon, lat) of the object, used to infer the zone when neither the file nor
        ``default_zone`` gives it.
    on_swapped
        ``"fix"`` reads X/Y written the wrong way round as Y/X with a warning; ``"refuse"``
        raises.
    zone_margin_deg
        How far beyond the zone's 1.5° half-width a corner may lie (maps near a zone edge are
        often kept in the neighbouring zone).

    Returns
    -------
    list of CornerBoundary
        One per parcel header (land layout), else one for the whole text.

    Raises
    ------
    CornerError
        Self-intersecting ring, ring that cannot be closed, duplicate corner numbers, fewer
        than 3 distinct corners, corners outside the zone, unknown zone, wrong datum.
    """
    if on_swapped not in ("fix", "refuse"):
        raise CornerError(f"on_swapped must be 'fix' or 'refuse', got {on_swapped!r}")
    raws, headers = _scan(text)
    if not raws:
        raise CornerError("no corner lines found (expected lines such as 1,4007000.00,38420000.00)")
    header_zone = _check_headers(headers)
    return [
        _boundary(r, header_zone, default_zone, near, on_swapped, zone_margin_deg) for r in raws
    ]


def read_boundary(text: str, **options: object) -> CornerBoundary:
    """Read a text that must hold exactly one boundary (see :func:`parse_corners`)."""
    found = parse_corners(text, **options)  # type: ignore[arg-type]
    if len(found) != 1:
        raise CornerError(f"expected one boundary, the text holds {len(found)}")
    return found[0]


# --------------------------------------------------------------------------- writing


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def write_corners(
    geometry_gk: Polygon | MultiPolygon,
    *,
    zone: int,
    depth: DepthRange | None = None,
    layout: Layout = "mining",
    prefixed: bool = True,
    names: Sequence[Sequence[str]] | None = None,
    decimals: int = 2,
    code: str = "",
    name: str = "",
) -> str:
    """Write a boundary as a corner-coordinate text that :func:`parse_corners` reads back.

    Parameters
    ----------
    geometry_gk
        (Multi)Polygon in the zone's GK CRS without prefix (x easting, y northing).
    zone
        Its 3-degree zone.
    depth
        Depth range written on each ring's terminator (mining layout); required there.
    layout
        ``"mining"`` (``点号,X,Y`` + ``*,上限,下限,,,区块``) or ``"land"`` (``[属性描述]`` /
        ``[地块坐标]`` with ``点号,圈号,X,Y``, each ring closed by its first corner).
    prefixed
        Write Y with the zone number in front.
    names
        Corner numbers per ring (outer ring then holes, part by part); default 1, 2, 3, ...
        continuing across rings (mining) or ``J1``, ``J2``, ... (land).
    decimals
        Decimals of the coordinates.
    code, name
        地块编号 and 地块名称 of the land layout's header line.
    """
    _check_zone(zone)
    if layout not in ("mining", "land"):
        raise CornerError(f"layout must be 'mining' or 'land', got {layout!r}")
    if layout == "mining" and depth is None:
        raise CornerError("the mining layout needs a depth range (开采深度上限/下限)")
    parts = list(geometry_gk.geoms) if isinstance(geometry_gk, MultiPolygon) else [geometry_gk]
    if not parts or any(not isinstance(p, Polygon) or p.is_empty for p in parts):
        raise CornerError("write_corners needs a non-empty Polygon or MultiPolygon")
    rings: list[tuple[int, np.ndarray]] = []
    for part_no, part in enumerate(parts, start=1):
        for ring in (part.exterior, *part.interiors):
            rings.append((part_no, np.asarray(ring.coords)[:-1, :2]))
    if names is not None and [len(n) for n in names] != [len(r) for _, r in rings]:
        raise CornerError("names must give one corner number per vertex of every ring")
    offset = zone * 1e6 if prefixed else 0.0
    lines: list[str] = []
    if layout == "land":
        total = sum(len(r) + 1 for _, r in rings)
        lines += [
            "[属性描述]",
            "坐标系=2000国家大地坐标系",
            "几度分带=3",
            "投影类型=高斯克吕格",
            "计量单位=米",
            f"带号={zone}",
            f"精度={10.0**-decimals:g}",
            "[地块坐标]",
            f"{total},{geometry_gk.area / 1e4:.4f},{code},{name},面,,,,@",
        ]
    elif not prefixed:
        # Without the prefix nothing else in the mining lines says the zone.
        lines.append(f"带号={zone}")
    counter = 0
    for k, (part_no, xy) in enumerate(rings):
        ring_names: list[str] = []
        for j in range(len(xy)):
            counter += 1
            if names is not None:
                ring_names.append(str(names[k][j]))
            else:
                ring_names.append(f"J{counter}" if layout == "land" else str(counter))
        for n, (e, north) in zip(ring_names, xy, strict=True):
            x, y = _fmt(north, decimals), _fmt(e + offset, decimals)
            lines.append(f"{n},{k + 1},{x},{y}" if layout == "land" else f"{n},{x},{y}")
        if layout == "land":
            e, north = xy[0]
            lines.append(
                f"{ring_names[0]},{k + 1},{_fmt(north, decimals)},{_fmt(e + offset, decimals)}"
            )
        else:
            assert depth is not None
            lines.append(f"*,{depth.top:g},{depth.bottom:g},,,{part_no}")
    return "\n".join(lines) + "\n"


def write_boundary(
    boundary: CornerBoundary, *, layout: Layout = "mining", decimals: int = 2
) -> str:
    """Write a parsed boundary back in ``layout``, keeping its corner numbers and prefix style.

    Corner numbers are kept when the rings are still in the geometry's order (always true
    for what :func:`parse_corners` returned, as long as the outer ring comes first in the
    source); otherwise the corners are renumbered.
    """
    order = _rings_in_geometry_order(boundary)
    geom = boundary.geometry_gk
    names = None if order is None else _names_along_geometry(boundary, geom, order)
    return write_corners(
        geom,
        zone=boundary.zone,
        depth=boundary.depth,
        layout=layout,
        prefixed=boundary.prefixed,
        names=names,
        decimals=decimals,
        code=boundary.code or "",
        name=boundary.name or "",
    )


def _geometry_rings(geom: Polygon | MultiPolygon) -> list[np.ndarray]:
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    return [np.asarray(r.coords)[:-1, :2] for p in parts for r in (p.exterior, *p.interiors)]


def _rings_in_geometry_order(boundary: CornerBoundary) -> list[int] | None:
    """Index of the source ring behind each ring of the geometry, or None if unmatched."""
    source = [
        {(round(c.y / _SAME_POINT_M), round(c.x / _SAME_POINT_M)) for c in r.corners}
        for r in boundary.rings
    ]
    order: list[int] = []
    for xy in _geometry_rings(boundary.geometry_gk):
        key = {(round(e / _SAME_POINT_M), round(n / _SAME_POINT_M)) for e, n in xy}
        match = next((k for k, s in enumerate(source) if s == key), None)
        if match is None:
            return None
        order.append(match)
    return order


def _names_along_geometry(
    boundary: CornerBoundary, geom: Polygon | MultiPolygon, order: list[int]
) -> list[list[str]]:
    out: list[list[str]] = []
    for xy, k in zip(_geometry_rings(geom), order, strict=True):
        lookup = {
            (round(c.y / _SAME_POINT_M), round(c.x / _SAME_POINT_M)): c.name
            for c in boundary.rings[k].corners
        }
        out.append([lookup[(round(e / _SAME_POINT_M), round(n / _SAME_POINT_M))] for e, n in xy])
    return out


def boundary_area_mu(boundary: CornerBoundary) -> float:
    """Plane area in 亩 (1 mu = 10000/15 m²) of the boundary in its GK CRS."""
    return float(shapely.area(boundary.geometry_gk)) * 15.0 / 10000.0
