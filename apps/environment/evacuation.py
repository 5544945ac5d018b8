"""A release's evacuation area made a hazmat incident in dispatch (一键转危化品事件).

The plume is modelled as for ``POST /environment/plume``; the ground at or above the chosen
threshold is the evacuation area. Dispatch's own service creates the incident at the release
point (so its response plan, recommendations, CAP alert and timeline work as for any other);
the area is kept here (``env.evacuation_area``, with the release and weather it came from) and
written on the incident's timeline, where dispatchers see it.

Dispatch is an optional partner: the environment application installs without it, and then
this answers 409 saying so.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import orjson
import psycopg
import shapely
from shapely.geometry import MultiPolygon, mapping

from apps.environment.release import Release, simulate_areas
from gis_core.errors import Conflict, InvalidInput, NotFound
from gis_core.identity import Principal, audit

DEFAULT_EVACUATE_UGM3 = 150.0  # the middle default contour of POST /plume


def dispatch_installed() -> bool:
    """Whether the dispatch application is installed (``CHANGZHI_APPS``)."""
    from gis_core.application import installed

    return "dispatch" in installed()


def _as_multipolygon(area: Any) -> MultiPolygon:
    if isinstance(area, MultiPolygon):
        return area
    parts = [g for g in getattr(area, "geoms", [area]) if g.geom_type == "Polygon"]
    return MultiPolygon(parts)


def open_hazmat_incident(
    conn: psycopg.Connection,
    principal: Principal | None,
    release: Release,
    *,
    evacuate_ugm3: float = DEFAULT_EVACUATE_UGM3,
    priority: int | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Model the release, then open a ``hazmat`` incident in dispatch with its evacuation area.

    Parameters
    ----------
    conn
        In the caller's transaction (the caller commits).
    principal
        Who asks; None: the platform itself (the command line).
    release
        The release, as for :func:`apps.environment.release.simulate`.
    evacuate_ugm3
        Evacuate the ground at or above this concentration (added to the contours if missing).

    Returns
    -------
    dict
        ``incident`` (dispatch's), ``evacuation`` (the area as GeoJSON with residents, schools
        and hospitals) and ``plume`` (every contour, as ``POST /plume`` answers).
    """
    if not dispatch_installed():
        raise Conflict(
            "the dispatch application is not installed (CHANGZHI_APPS): no incident can be "
            "opened; POST /environment/plume models the release alone"
        )
    if not evacuate_ugm3 > 0:
        raise InvalidInput(f"evacuate_ugm3 must be > 0 µg/m³, got {evacuate_ugm3}")
    if evacuate_ugm3 not in release.thresholds:
        release = replace(release, thresholds=tuple(sorted({*release.thresholds, evacuate_ugm3})))
    answer, result = simulate_areas(conn, release)
    area = _as_multipolygon(result.areas[evacuate_ugm3])
    if area.is_empty:
        raise InvalidInput(
            f"no ground reaches {evacuate_ugm3:g} µg/m³ (the peak is "
            f"{answer['peak']['ugm3']:.3g} µg/m³): nothing to evacuate, no incident opened"
        )
    counts = next(
        f["properties"]
        for f in answer["features"]
        if f["properties"]["threshold_ugm3"] == evacuate_ugm3
    )

    from apps.dispatch import incidents  # only when dispatch is installed

    actor = incidents.Actor(principal, "operator" if principal else "system")
    text = description or (
        f"危化品泄漏 {release.emission_gs:g} g/s：{evacuate_ugm3:g} µg/m³ 以上区域疏散，"
        f"约 {counts['population']:,} 人，学校 {counts['schools']} 所，"
        f"医院 {counts['hospitals']} 所"
        f"（稳定度 {result.stability}）"
    )
    incident = incidents.create_incident(
        conn,
        actor,
        incident_type="hazmat",
        priority=priority,
        description=text,
        lon=release.lon,
        lat=release.lat,
    )
    incident_id = int(incident["id"])
    used = asdict(result.release)
    row = conn.execute(
        """
        INSERT INTO env.evacuation_area (incident_id, threshold_ugm3, population, schools,
                                         hospitals, stability, release, created_by, geom)
        VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, ST_GeomFromWKB(%s, 4326))
        RETURNING id, ST_Area(geom::geography)
        """,
        (
            incident_id,
            evacuate_ugm3,
            counts["population"],
            counts["schools"],
            counts["hospitals"],
            result.stability,
            orjson.dumps(used, default=str).decode(),
            actor.name,
            shapely.to_wkb(area),
        ),
    ).fetchone()
    assert row is not None
    area_id, area_m2 = int(row[0]), float(row[1])
    evacuation = {
        "id": area_id,
        "incident_id": incident_id,
        "threshold_ugm3": evacuate_ugm3,
        "area_km2": round(area_m2 / 1e6, 4),
        "population": counts["population"],
        "schools": counts["schools"],
        "hospitals": counts["hospitals"],
        "places": counts["places"],
        "stability": result.stability,
        "geometry": mapping(area),
    }
    summary = {k: v for k, v in evacuation.items() if k not in ("places", "geometry")}
    incidents.event(conn, incident_id, "evacuation_area", actor, evacuation)
    audit(conn, principal, "create", "evacuation_area", str(area_id), summary)
    return {"incident": incident, "evacuation": evacuation, "plume": answer}


def evacuation_of(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    """The latest evacuation area of an incident, as GeoJSON with its counts."""
    row = conn.execute(
        """
        SELECT id, threshold_ugm3, population, schools, hospitals, stability, release::text,
               created_by, created_at, ST_Area(geom::geography), ST_AsGeoJSON(geom)
        FROM env.evacuation_area WHERE incident_id = %s ORDER BY id DESC LIMIT 1
        """,
        (incident_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"incident {incident_id} has no evacuation area")
    return {
        "id": row[0],
        "incident_id": incident_id,
        "threshold_ugm3": row[1],
        "population": row[2],
        "schools": row[3],
        "hospitals": row[4],
        "stability": row[5],
        "release": orjson.loads(row[6]),
        "created_by": row[7],
        "created_at": row[8],
        "area_km2": round(float(row[9]) / 1e6, 4),
        "geometry": orjson.loads(row[10]),
    }
