"""Traffic's reference data: a junction per signal controller (with the usual detector
wiring), message signs on the main roads, and simulated event logs on demand.

The junctions follow the signal devices the core's dataset placed (ordered by device id, so
the numbers are the same for the same dataset); the signs are drawn from the seed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import psycopg

from apps.traffic.events import normalize
from apps.traffic.simlog import simulate_log
from gis_core.application import SynthContext

SIGN_SIZES: Final = ((2, 8), (3, 10), (2, 12))  # rows × full-width columns, common makes
MAIN_CLASSES: Final = ("expressway", "national", "provincial", "arterial")


def synthesize(conn: psycopg.Connection, context: SynthContext) -> dict[str, int]:
    """Replace traffic's junctions, detectors and signs for the loaded dataset."""
    conn.execute("DELETE FROM traffic.sign")
    conn.execute("DELETE FROM traffic.junction")
    conn.execute("DELETE FROM traffic.controller_event")
    conn.execute("DELETE FROM traffic.measure")
    junctions = conn.execute(
        """
        INSERT INTO traffic.junction (id, device_id, name_zh, geom)
        SELECT row_number() OVER (ORDER BY d.id), d.id,
               coalesce(s.name_zh, d.name_zh, d.id), s.geom
        FROM iot.device d LEFT JOIN iot.monitoring_site s ON s.id = d.site_id
        WHERE d.kind = 'signal'
        """
    ).rowcount
    wiring = simulate_log(1, duration_s=600.0).detectors  # 8 presence + 4 advance inputs
    detectors = conn.execute(
        "INSERT INTO traffic.detector (junction_id, channel, phase, function)"
        " SELECT j.id, w.channel, w.phase, w.function FROM traffic.junction j"
        " CROSS JOIN unnest(%s::smallint[], %s::smallint[], %s::text[])"
        " AS w(channel, phase, function)",
        (
            wiring["channel"].tolist(),
            wiring["phase"].tolist(),
            [str(f) for f in wiring["function"]],
        ),
    ).rowcount
    roads = conn.execute(
        "SELECT id FROM ref.road WHERE road_class = ANY(%s) AND length_m > 200 ORDER BY id",
        (list(MAIN_CLASSES),),
    ).fetchall()
    rng = np.random.default_rng(context.seed + 18)
    n_signs = min(len(roads), max(3, round(200 * context.scale)))
    chosen = sorted(rng.choice(len(roads), n_signs, replace=False).tolist()) if roads else []
    rows: list[tuple[Any, ...]] = []
    for k, i in enumerate(chosen, 1):
        size = SIGN_SIZES[int(rng.integers(len(SIGN_SIZES)))]
        rows.append((f"VMS-{k:03d}", f"诱导屏{k:03d}", roads[i][0], size[0], size[1]))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO traffic.sign (id, name_zh, road_id, rows, columns, geom)"
            " SELECT %s, %s, r.id, %s, %s, ST_LineInterpolatePoint(r.geom, 0.1)"
            " FROM ref.road r WHERE r.id = %s",
            [(sid, name, rows_, cols, road) for sid, name, road, rows_, cols in rows],
        )
    return {"traffic.junction": junctions, "traffic.detector": detectors, "traffic.sign": len(rows)}


def simulate_into(
    conn: psycopg.Connection,
    *,
    start: datetime,
    duration_s: float,
    junctions: int | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """Simulate event logs for the first ``junctions`` junctions (all by default) from
    ``start`` and store them, as controllers uploading their logs would."""
    from apps.traffic.service import TrafficError, store_events

    ids = [r[0] for r in conn.execute("SELECT id FROM traffic.junction ORDER BY id")]
    if not ids:
        raise TrafficError("there are no junctions: load the reference dataset first")
    if junctions is not None:
        if junctions < 1:
            raise TrafficError(f"junctions must be at least 1, got {junctions}")
        ids = ids[:junctions]
    if start.tzinfo is None:
        raise TrafficError("start has no time zone: give an offset or Z")
    try:
        sim = simulate_log(
            len(ids),
            seed=seed,
            start=start.astimezone(UTC).replace(tzinfo=None).isoformat(),
            duration_s=duration_s,
        )
    except ValueError as exc:
        raise TrafficError(str(exc)) from None
    events = sim.events.copy()
    # The simulator numbers junctions 1..n; ours may have gaps.
    events["junction"] = np.asarray(ids, np.int32)[events["junction"] - 1]
    stored = store_events(conn, normalize(events))
    return {"junctions": len(ids), "events": len(events), "stored": stored}
