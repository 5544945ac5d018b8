"""A right's certificate (采矿许可证/勘查许可证) as PDF, and its corner-coordinate list.

The certificate is made from the register's version in force now: the licence's
attributes, a map of the boundary in its CGCS2000 3-degree Gauss–Krüger zone with every
corner numbered, a scale bar and a north arrow, and the corner table (点号, X northing,
Y easting with the zone number in front, as certificates print it) continued on as many
pages as it needs. The corner list export is the same boundary written by
:func:`apps.registry.corners.write_corners` in the mining layout, so what the register
holds goes back out in the format it came in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import psycopg
import shapely
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient

from apps.registry.corners import DepthRange, write_corners, zone_epsg, zone_of_longitude
from apps.registry.models import REGISTER_SRID
from gis_core.documents import a4_figure, cjk, pdf_bytes
from gis_core.errors import Conflict, NotFound

#: Corner rows on the first page and on each following page.
ROWS_FIRST: Final = 18
ROWS_PAGE: Final = 48
CST: Final = dt.timezone(dt.timedelta(hours=8))

_TITLES: Final = {
    "mining": ("采矿许可证", "Mining licence"),
    "exploration": ("勘查许可证", "Exploration licence"),
}


@dataclass(frozen=True)
class RightInForce:
    """The version of a right the register holds now, in its GK zone."""

    license_no: str
    attrs: dict[str, Any]
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    txn_id: int
    zone: int
    geometry_gk: Polygon | MultiPolygon  # x easting (no zone prefix), y northing

    @property
    def depth(self) -> DepthRange | None:
        top, bottom = self.attrs.get("depth_top_m"), self.attrs.get("depth_bottom_m")
        if top is None or bottom is None:
            return None
        return DepthRange(float(max(top, bottom)), float(min(top, bottom)))


def right_in_force(
    conn: psycopg.Connection, license_no: str, at: dt.datetime | None = None
) -> RightInForce:
    """The current version of a right at ``at`` (default now), as the register knows it now.

    Raises
    ------
    NotFound
        No such right in the register.
    Conflict
        The right exists but is not in force at that time (expired, cancelled, not yet valid).
    """
    rows = conn.execute(
        """
        SELECT attrs, valid_from, valid_to, txn_id,
               ST_X(ST_Transform(ST_PointOnSurface(geom), 4490)), ST_AsBinary(geom)
        FROM registry.registry_version
        WHERE object_id = %s AND object_kind = 'mining_right' AND recorded_to IS NULL
        ORDER BY valid_from DESC
        """,
        (license_no,),
    ).fetchall()
    if not rows:
        raise NotFound(f"no mining or exploration right {license_no!r} in the register")
    when = at or dt.datetime.now(CST)
    for attrs, start, end, txn, lon, wkb in rows:
        if start <= when and (end is None or when < end):
            zone = zone_of_longitude(float(lon))
            geom = _to_zone(shapely.from_wkb(bytes(wkb)), zone)
            return RightInForce(license_no, dict(attrs), start, end, int(txn), zone, geom)
    last_end = rows[0][2]
    until = f"; its last term ended {last_end:%Y-%m-%d}" if last_end is not None else ""
    raise Conflict(f"right {license_no} is not in force on {when:%Y-%m-%d}{until}")


def _to_zone(geom: Any, zone: int) -> Any:
    """A register geometry (EPSG:4547) in its own 3-degree zone, without the zone prefix."""
    to_gk = Transformer.from_crs(REGISTER_SRID, zone_epsg(zone, prefixed=False), always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(to_gk.transform(xy[:, 0], xy[:, 1])))


def corner_rows(geom: Polygon | MultiPolygon, zone: int) -> list[tuple[int, str, float, float]]:
    """(ring, point number, X northing, Y easting with the zone prefix) of every corner,
    numbered 1, 2, 3... across rings as :func:`write_corners` numbers the mining layout.

    Examples
    --------
    >>> from shapely import box
    >>> corner_rows(box(500000, 4000000, 500100, 4000050), 38)[0]
    (1, '1', 4000000.0, 38500100.0)
    """
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    out: list[tuple[int, str, float, float]] = []
    ring_no = 0
    for part in parts:
        for ring in (part.exterior, *part.interiors):
            ring_no += 1
            for e, n in np.asarray(ring.coords)[:-1, :2]:
                out.append((ring_no, str(len(out) + 1), float(n), float(e) + zone * 1e6))
    return out


def corner_list(right: RightInForce) -> str:
    """The boundary as a corner-coordinate text (mining layout, zone-prefixed Y)."""
    depth = right.depth
    if depth is None:
        raise Conflict(f"right {right.license_no} has no depth range to write on its corners")
    return write_corners(right.geometry_gk, zone=right.zone, depth=depth, prefixed=True)


def _fmt_date(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        return value.astimezone(CST).strftime("%Y-%m-%d")
    return str(value)[:10]


def _attribute_rows(right: RightInForce) -> list[tuple[str, str]]:
    a = right.attrs
    depth = right.depth
    area_m2 = right.geometry_gk.area
    return [
        ("许可证号 Licence no.", right.license_no),
        ("采矿权人 Holder", str(a.get("holder") or "—")),
        ("开采矿种 Mineral", str(a.get("mineral") or "—")),
        ("有效期限 Valid", f"{_fmt_date(a.get('permit_from'))} — {_fmt_date(a.get('permit_to'))}"),
        (
            "开采深度 Depth (elevation)",
            f"{depth.top:g} m — {depth.bottom:g} m" if depth else "—",
        ),
        ("矿区面积 Area", f"{area_m2 / 1e6:.4f} km²  ({area_m2 * 0.0015:.1f} 亩)"),
        ("坐标系统 Coordinates", f"CGCS2000, 3° Gauss–Krüger zone {right.zone}"),
    ]


def _draw_map(fig: Figure, right: RightInForce, rect: tuple[float, float, float, float]) -> None:
    ax = fig.add_axes(rect)
    geom = right.geometry_gk
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    for part in parts:
        part = orient(part, 1.0)  # holes wound against the shell, so the fill leaves them out
        rings = [np.asarray(r.coords)[:, :2] for r in (part.exterior, *part.interiors)]
        verts = np.concatenate(rings)
        codes = np.concatenate(
            [
                [MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY]
                for r in rings
            ]
        )
        ax.add_patch(PathPatch(MplPath(verts, codes), facecolor="#f4d6a0", edgecolor="#8a3b12"))
    for _, name, n, e in corner_rows(geom, right.zone):
        ax.plot(e - right.zone * 1e6, n, "o", color="#8a3b12", markersize=3)
        ax.annotate(
            name, (e - right.zone * 1e6, n), xytext=(3, 3), textcoords="offset points", fontsize=7
        )
    x0, y0, x1, y1 = geom.bounds
    pad = 0.12 * max(x1 - x0, y1 - y0, 1.0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad, y1 + pad)
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=6)
    ax.grid(True, linewidth=0.3, color="#bbbbbb")
    # Scale bar: a round length near a fifth of the width, lower left.
    width = (x1 - x0) + 2 * pad
    raw = width / 5
    step = 10 ** np.floor(np.log10(raw))
    length = float(max(s for s in (step, 2 * step, 5 * step) if s <= raw))
    sx, sy = x0 - pad * 0.6, y0 - pad * 0.6
    ax.plot([sx, sx + length], [sy, sy], color="black", linewidth=2)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(sx + length / 2, sy + pad * 0.12, label, ha="center", fontsize=7)
    # North arrow (grid north of the GK zone), upper right.
    ax.annotate(
        "N",
        xy=(0.94, 0.95),
        xytext=(0.94, 0.83),
        xycoords="axes fraction",
        ha="center",
        fontsize=10,
        arrowprops={"arrowstyle": "-|>", "color": "black"},
    )


def _table(fig: Figure, rows: list[list[str]], header: list[str], top: float) -> None:
    height = 0.018 * (len(rows) + 1)
    ax = fig.add_axes((0.1, top - height, 0.8, height))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    for cell in table.get_celld().values():
        cell.set_fontsize(8)
        cell.get_text().set_fontfamily(cjk()["family"])


def certificate_pdf(right: RightInForce, issued: dt.datetime | None = None) -> bytes:
    """The certificate as a PDF: attributes, map, and the corner table over as many pages."""
    issued = issued or dt.datetime.now(CST)
    kind = str(right.attrs.get("right_type") or "mining")
    zh, en = _TITLES.get(kind, _TITLES["mining"])
    corners = [
        [str(ring), name, f"{n:.2f}", f"{e:.2f}"]
        for ring, name, n, e in corner_rows(right.geometry_gk, right.zone)
    ]
    header = ["圈号 Ring", "点号 Point", "X (northing, m)", "Y (easting, m)"]
    first = a4_figure()
    first.text(0.5, 0.955, f"{zh}  {en}", ha="center", **cjk(size=18, weight="bold"))
    for k, (label, value) in enumerate(_attribute_rows(right)):
        y = 0.915 - k * 0.022
        first.text(0.1, y, label, **cjk(size=9, color="#555555"))
        first.text(0.42, y, value, **cjk(size=10))
    _draw_map(first, right, (0.12, 0.36, 0.76, 0.38))
    _table(first, corners[:ROWS_FIRST], header, 0.33)
    first.text(
        0.1,
        0.02,
        f"发证 Issued {issued:%Y-%m-%d %H:%M} · register transaction {right.txn_id} · "
        f"valid since {_fmt_date(right.valid_from)}",
        **cjk(size=7, color="#555555"),
    )
    pages = [first]
    rest = corners[ROWS_FIRST:]
    for k in range(0, len(rest), ROWS_PAGE):
        page = a4_figure()
        page.text(
            0.5,
            0.96,
            f"{zh} {right.license_no} — 拐点坐标 (续) corners, continued",
            ha="center",
            **cjk(size=11),
        )
        _table(page, rest[k : k + ROWS_PAGE], header, 0.93)
        pages.append(page)
    return pdf_bytes(pages)
