"""Administrative divisions by GB/T 2260 code, the keys most departmental tables share.

Districts and counties (6 digits) are the real ones of the reference dataset (``ref.admin_area``).
No offline registry here has township boundaries or the township and village codes, so they
are synthesized, reproducibly, and marked ``synthesized``: each district's villages
(``ref.village``) are grouped into towns by k-means on their positions (fixed seed); a town is
the Voronoi cell of its villages' centre clipped to the district; town codes are the district
code plus ``101, 102, ...`` (GB/T 2260's town range), village codes the town code plus
``001, 002, ...`` in the order of the villages' ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import shapely
from scipy.cluster.vq import kmeans2

VILLAGES_PER_TOWN = 12
SEED = 2260


def level_of(code: str) -> str | None:
    """The level a GB/T 2260 code names: 6 digits a district, 9 a town, 12 a village; a
    12-digit code padded with zeros names the level above it.

    >>> level_of("140403"), level_of("140403101"), level_of("140403101000")
    ('district', 'town', 'town')
    """
    c = normalize_code(code)
    return {6: "district", 9: "town", 12: "village"}.get(len(c)) if c else None


def normalize_code(code: str) -> str | None:
    """The shortest form of a division code (trailing zero groups dropped), or None if it is
    not 6, 9 or 12 digits.

    >>> normalize_code("140403000000"), normalize_code("14040310100 "), normalize_code("1404")
    ('140403', None, None)
    """
    c = str(code).strip()
    if not c.isdigit() or len(c) not in (6, 9, 12):
        return None
    if len(c) == 12 and c.endswith("000"):
        c = c[:9]
    if len(c) == 9 and c.endswith("000"):
        c = c[:6]
    return c


def synthesize_divisions(conn: psycopg.Connection) -> int:
    """Rebuild ``exchange.division`` from the reference dataset (in the caller's transaction);
    return the rows written."""
    conn.execute("DELETE FROM exchange.division")
    districts = conn.execute(
        "SELECT code, name_zh, ST_AsBinary(geom) FROM ref.admin_area WHERE level = 'district'"
        " ORDER BY code"
    ).fetchall()
    rows: list[tuple[Any, ...]] = []
    for code, name_zh, wkb in districts:
        area = shapely.from_wkb(bytes(wkb))
        rows.append((code, "district", None, code, name_zh, False, area, area.point_on_surface()))
        villages = conn.execute(
            "SELECT id, name_zh, ST_X(geom), ST_Y(geom) FROM ref.village"
            " WHERE district_code = %s ORDER BY id",
            (code,),
        ).fetchall()
        if not villages:
            continue
        xy = np.array([(v[2], v[3]) for v in villages], dtype=float)
        k = max(1, min(99, round(len(villages) / VILLAGES_PER_TOWN)))
        if k > 1:
            centres, label = kmeans2(xy, k, seed=SEED + int(code), minit="++")
        else:
            centres, label = xy.mean(axis=0, keepdims=True), np.zeros(len(xy), dtype=int)
        # Towns in a stable order (west to east, then south to north) so codes are too.
        used = np.unique(label)
        order = sorted(used, key=lambda t: (round(centres[t, 0], 4), centres[t, 1]))
        cells = _cells(centres[order], area)
        for seq, t in enumerate(order):
            members = np.flatnonzero(label == t)
            town_code = f"{code}{101 + seq:03d}"
            # The town is named after its village nearest the centre (镇 for 村).
            seat = members[np.argmin(np.hypot(*(xy[members] - centres[t]).T))]
            town_name = villages[seat][1].removesuffix("村") + "镇"
            cell = cells[seq]
            rows.append(
                (
                    town_code,
                    "town",
                    code,
                    code,
                    town_name,
                    True,
                    cell,
                    shapely.Point(centres[t]) if cell is None else cell.point_on_surface(),
                )
            )
            for n, m in enumerate(members, start=1):
                v = villages[m]
                rows.append(
                    (
                        f"{town_code}{n:03d}",
                        "village",
                        town_code,
                        code,
                        v[1],
                        True,
                        None,
                        shapely.Point(v[2], v[3]),
                    )
                )
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO exchange.division
                (code, level, parent_code, district_code, name_zh, synthesized, area, point)
            VALUES (%s, %s, %s, %s, %s, %s, ST_Multi(ST_GeomFromWKB(%s, 4326)),
                    ST_GeomFromWKB(%s, 4326))
            """,
            [
                (*r[:6], None if r[6] is None else shapely.to_wkb(r[6]), shapely.to_wkb(r[7]))
                for r in rows
            ],
        )
    return len(rows)


def _cells(centres: np.ndarray, district: Any) -> list[Any]:
    """The Voronoi cell of each centre inside the district (None for a sliver left empty)."""
    if len(centres) == 1:
        return [district]
    points = shapely.points(centres)
    regions = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=district)
    out: list[Any] = [None] * len(centres)
    for region in shapely.get_parts(regions):
        hit = np.flatnonzero(shapely.contains(region, points))
        if len(hit):
            cell = shapely.intersection(region, district)
            if not cell.is_empty:
                polys = [g for g in shapely.get_parts(cell) if g.geom_type == "Polygon"]
                out[int(hit[0])] = shapely.multipolygons(polys) if polys else None
    return out
