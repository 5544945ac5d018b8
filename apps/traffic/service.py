"""Traffic's work on the database: every function takes an explicit psycopg connection and
leaves committing to its caller (the API's request, the CLI command, the bench).

The domain modules (:mod:`~apps.traffic.events`, :mod:`~apps.traffic.measures`,
:mod:`~apps.traffic.mapmatch`, :mod:`~apps.traffic.speeds`, :mod:`~apps.traffic.violations`,
:mod:`~apps.traffic.signs`) compute; this module reads their inputs and stores their answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from apps.traffic.events import DETECTOR_DTYPE, EventLog, EventLogError, event_log
from apps.traffic.mapmatch import MapMatchError, MatchNetwork, MatchSettings, match_track
from apps.traffic.measures import compute_measures
from apps.traffic.signs import Sign, SignMessageError
from apps.traffic.speeds import SpeedError, live_speeds, time_bin
from apps.traffic.violations import ViolationReport, check_violation
from gis_core.errors import InvalidInput, NotFound
from gis_core.network import RoadGraph, close_roads, graph_for, reopen_roads, to_metric

MAX_BATCH: Final = 200_000  # events in one POST: about 20 minutes of a busy junction
MAX_WINDOW: Final = timedelta(days=7)  # measures computed on one request
WORK_ORDER_DUE: Final = timedelta(hours=4)  # a fault is to be repaired within
ESCALATE_EVERY: Final = timedelta(hours=2)  # one more escalation level per overdue period
SPEED_SOURCE: Final = "traffic"
# Epoch + µs: exact, where to_timestamp(double) may round the last microsecond.
_TS_OF_US: Final = "('epoch'::timestamptz + %s * interval '1 microsecond')"
_US_OF_TS: Final = "(extract(epoch FROM {}) * 1000000)::bigint"


class TrafficError(InvalidInput):
    """A traffic request that cannot be served as asked; the message names what is wrong."""


def _us(when: datetime) -> int:
    if when.tzinfo is None:
        raise TrafficError(f"time {when.isoformat()} has no time zone: give an offset or Z")
    return int(when.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


# --------------------------------------------------------------------------- junctions


def junction(conn: psycopg.Connection, junction_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, device_id, name_zh, ST_X(geom), ST_Y(geom) FROM traffic.junction WHERE id = %s",
        (junction_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no junction {junction_id}")
    return {"id": row[0], "device_id": row[1], "name_zh": row[2], "lon": row[3], "lat": row[4]}


def junctions(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every junction with its controller's live state, open work orders and latest bin's
    measures (summed over phases)."""
    rows = conn.execute(
        """
        SELECT j.id, j.device_id, j.name_zh, ST_X(j.geom), ST_Y(j.geom),
               s.reading ->> 'mode', s.reading ->> 'fault', s.online,
               (SELECT count(*) FROM traffic.work_order w
                 WHERE w.junction_id = j.id AND w.state <> 'done'),
               m.bin_start, m.aog, m.split_failures, m.volume
        FROM traffic.junction j
        LEFT JOIN iot.device_state s ON s.device_id = j.device_id
        LEFT JOIN LATERAL (
            SELECT bin_start, sum(arrivals_on_green)::float / nullif(sum(arrivals), 0) AS aog,
                   sum(split_failures) AS split_failures, sum(volume) AS volume
            FROM traffic.measure WHERE junction_id = j.id
            GROUP BY bin_start ORDER BY bin_start DESC LIMIT 1
        ) m ON true
        ORDER BY j.id
        """
    ).fetchall()
    out = []
    for r in rows:
        fault = r[6] if r[6] not in (None, "", "false", "False") else None
        state = "offline" if r[7] is False else ("fault" if fault else (r[5] or "unknown"))
        out.append(
            {
                "id": r[0],
                "device_id": r[1],
                "name_zh": r[2],
                "lon": r[3],
                "lat": r[4],
                "mode": r[5],
                "fault": fault,
                "state": state,
                "open_work_orders": int(r[8]),
                "bin_start": r[9],
                "share_on_green": None if r[10] is None else float(r[10]),
                "split_failures": None if r[11] is None else int(r[11]),
                "volume": None if r[12] is None else int(r[12]),
            }
        )
    return out


def detectors(conn: psycopg.Connection, junction_ids: Sequence[int]) -> npt.NDArray[Any]:
    rows = conn.execute(
        "SELECT junction_id, channel, phase, function FROM traffic.detector"
        " WHERE junction_id = ANY(%s) ORDER BY junction_id, channel",
        (list(junction_ids),),
    ).fetchall()
    return np.array([tuple(r) for r in rows], DETECTOR_DTYPE)


# --------------------------------------------------------------------------- event log


@dataclass(frozen=True)
class IngestReport:
    received: int
    stored: int
    duplicates_in_batch: int
    already_stored: int
    out_of_order: int


def store_events(conn: psycopg.Connection, log: EventLog) -> int:
    """Append a normalized log; events already stored are skipped. Returns how many were new."""
    if len(log) == 0:
        return 0
    e = log.events
    cur = conn.execute(
        "INSERT INTO traffic.controller_event (junction_id, ts, code, param)"
        f" SELECT j, {_TS_OF_US % 't'}, c, p"
        " FROM unnest(%s::int[], %s::bigint[], %s::smallint[], %s::smallint[]) AS u(j, t, c, p)"
        " ON CONFLICT DO NOTHING",
        (
            e["junction"].tolist(),
            e["ts"].tolist(),
            e["code"].tolist(),
            e["param"].tolist(),
        ),
    )
    return cur.rowcount


def ingest_events(
    conn: psycopg.Connection,
    junction_id: int,
    ts: Sequence[datetime],
    code: Sequence[int],
    param: Sequence[int],
) -> IngestReport:
    """Validate and store one controller's batch; nothing valid is lost, repeats are counted."""
    junction(conn, junction_id)  # raises NotFound
    if not len(ts) == len(code) == len(param):
        raise TrafficError(
            f"ts, code and param must have equal lengths (got {len(ts)}, {len(code)}, {len(param)})"
        )
    if len(ts) > MAX_BATCH:
        raise TrafficError(f"a batch holds at most {MAX_BATCH:,} events, got {len(ts):,}")
    try:
        log = event_log([_us(t) for t in ts], np.full(len(ts), junction_id), code, param)
    except EventLogError as exc:
        raise TrafficError(str(exc)) from None
    stored = store_events(conn, log)
    return IngestReport(
        received=len(ts),
        stored=stored,
        duplicates_in_batch=log.duplicates_removed,
        already_stored=len(log) - stored,
        out_of_order=log.out_of_order,
    )


def load_log(
    conn: psycopg.Connection, junction_ids: Sequence[int], start: datetime, end: datetime
) -> EventLog:
    """The stored events of these junctions in ``[start, end)``, as a normalized log."""
    rows = conn.execute(
        f"SELECT junction_id, {_US_OF_TS.format('ts')}, code, param"
        " FROM traffic.controller_event"
        " WHERE junction_id = ANY(%s) AND ts >= %s AND ts < %s",
        (list(junction_ids), start, end),
    ).fetchall()
    if not rows:
        return event_log([], [], [], [])
    a = np.array(rows, np.int64)
    return event_log(a[:, 1], a[:, 0], a[:, 2], a[:, 3])


def _window(start: datetime, end: datetime) -> None:
    for name, when in (("from", start), ("to", end)):
        if when.tzinfo is None:
            raise TrafficError(f"{name} has no time zone: give an offset or Z")
    if end <= start:
        raise TrafficError(f"to ({end.isoformat()}) must come after from ({start.isoformat()})")
    if end - start > MAX_WINDOW:
        raise TrafficError(f"the window may span at most {MAX_WINDOW.days} days")


# --------------------------------------------------------------------------- measures


def compute_and_store(
    conn: psycopg.Connection,
    junction_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    bin_minutes: int = 15,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Compute the measures of these junctions in the window and store them (replacing the
    bins they cover). Returns the rows and the log's flags (stuck detectors, missing greens).
    """
    _window(start, end)
    log = load_log(conn, junction_ids, start, end)
    wiring = detectors(conn, junction_ids)
    if len(log) == 0:
        return _measure_frame(None), []
    try:
        m = compute_measures(log, wiring, bin_minutes=bin_minutes)
    except EventLogError as exc:
        raise TrafficError(str(exc)) from None
    frame = _measure_frame(m)
    conn.execute(
        "DELETE FROM traffic.measure WHERE junction_id = ANY(%s)"
        " AND bin_start >= %s AND bin_start < %s",
        (list(junction_ids), start, end),
    )
    if len(frame):
        cols = list(frame.columns)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO traffic.measure ({', '.join(cols)})"
                f" VALUES ({', '.join(['%s'] * len(cols))})",
                [
                    tuple(None if pd.isna(v) else v for v in row)
                    for row in frame.itertuples(index=False)
                ],
            )
    flags = [
        {
            "kind": str(f["kind"]),
            "junction": int(f["junction"]),
            "param": int(f["param"]),
            "ts": _dt(int(f["ts"])),
        }
        for f in m.flags
    ]
    return frame, flags


_KEY = ["junction_id", "bin_start", "phase"]
_MEASURE_COLUMNS: Final = [
    "arrivals",
    "arrivals_on_green",
    "pct_aog",
    "platoon_ratio",
    "green_s",
    "cycles",
    "split_failures",
    "gap_out",
    "max_out",
    "force_off",
    "ped_samples",
    "ped_delay_s",
    "volume",
]
_COUNTS: Final = [
    "arrivals",
    "arrivals_on_green",
    "cycles",
    "split_failures",
    "gap_out",
    "max_out",
    "force_off",
    "ped_samples",
    "volume",
]


def _measure_frame(m: Any) -> pd.DataFrame:
    """One row per junction × bin × phase, every measure a column (0 for counts not seen)."""
    empty = pd.DataFrame(columns=_KEY + _MEASURE_COLUMNS)
    if m is None:
        return empty

    def part(rows: npt.NDArray[Any], names: dict[str, str]) -> pd.DataFrame:
        f = pd.DataFrame(
            {
                "junction_id": rows["junction"].astype(int),
                "bin_start": rows["bin"].astype(np.int64),
                "phase": rows["phase"].astype(int),
            }
        )
        for src, dst in names.items():
            f[dst] = rows[src]
        return f

    parts = [
        part(
            m.arrivals,
            {
                "arrivals": "arrivals",
                "on_green": "arrivals_on_green",
                "pct_aog": "pct_aog",
                "platoon_ratio": "platoon_ratio",
                "green_s": "green_s",
            },
        ),
        part(m.split_failures, {"cycles": "cycles", "failures": "split_failures"}),
        part(
            m.terminations, {"gap_out": "gap_out", "max_out": "max_out", "force_off": "force_off"}
        ),
        part(m.ped_delay, {"samples": "ped_samples", "mean_delay_s": "ped_delay_s"}),
        part(m.approach_volumes, {"volume": "volume"}),
    ]
    frame = parts[0]
    for other in parts[1:]:
        frame = frame.merge(other, on=_KEY, how="outer")
    if frame.empty:
        return empty
    for col in _MEASURE_COLUMNS:
        if col not in frame:
            frame[col] = np.nan
    frame[_COUNTS] = frame[_COUNTS].fillna(0).astype(int)
    frame["bin_start"] = pd.to_datetime(frame["bin_start"], unit="us", utc=True)
    frame = frame[_KEY + _MEASURE_COLUMNS].sort_values(_KEY).reset_index(drop=True)
    return frame.astype(object).where(frame.notna(), None)


def coordination(
    conn: psycopg.Connection,
    junction_id: int,
    start: datetime,
    end: datetime,
    phase: int | None = None,
) -> list[dict[str, Any]]:
    """Purdue coordination diagram points of a junction: per arrival, its time in cycle and
    the cycle's green start and end, in seconds from the cycle's start."""
    _window(start, end)
    junction(conn, junction_id)
    log = load_log(conn, [junction_id], start, end)
    if len(log) == 0:
        return []
    pcd = compute_measures(log, detectors(conn, [junction_id])).coordination
    if phase is not None:
        pcd = pcd[pcd["phase"] == phase]
    start_s = pcd["cycle_start"]
    return [
        {
            "ts": _dt(int(p["ts"])),
            "phase": int(p["phase"]),
            "cycle_start": _dt(int(c)),
            "t_in_cycle_s": float(p["t_in_cycle_s"]),
            "green_start_s": (int(p["green_start"]) - int(c)) / 1e6,
            "green_end_s": (int(p["green_end"]) - int(c)) / 1e6,
            "cycle_s": (int(p["cycle_end"]) - int(c)) / 1e6,
        }
        for p, c in zip(pcd, start_s, strict=True)
    ]


# --------------------------------------------------------------------------- violations


def check_and_store_violation(
    conn: psycopg.Connection,
    *,
    junction_id: int,
    phase: int,
    ts: datetime,
    plate: str,
    approach: str | None = None,
    camera_id: str | None = None,
    photo_ref: str | None = None,
    red_grace_s: float = 0.0,
) -> dict[str, Any]:
    """A camera's red-light event, checked against the junction's log around the instant."""
    junction(conn, junction_id)
    at = _us(ts)
    # The phase's last state event may be a cycle back: read the ten minutes before.
    log = load_log(conn, [junction_id], ts - timedelta(minutes=10), ts + timedelta(minutes=3))
    try:
        verdict = check_violation(
            log, ViolationReport(junction_id, phase, at), red_grace_s=red_grace_s
        )
    except ValueError as exc:
        raise TrafficError(str(exc)) from None
    since = None if verdict.state_since_us is None else _dt(verdict.state_since_us)
    row = conn.execute(
        "INSERT INTO traffic.violation (junction_id, phase, ts, plate, approach, camera_id,"
        " photo_ref, verdict, signal_state, state_since, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            junction_id,
            phase,
            ts,
            plate,
            approach,
            camera_id,
            photo_ref,
            verdict.verdict,
            verdict.state,
            since,
            verdict.reason,
        ),
    ).fetchone()
    assert row is not None
    return {
        "id": row[0],
        "junction_id": junction_id,
        "phase": phase,
        "ts": ts,
        "plate": plate,
        "verdict": verdict.verdict,
        "signal_state": verdict.state,
        "state_since": since,
        "reason": verdict.reason,
    }


def violations(conn: psycopg.Connection, verdict: str | None, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, junction_id, phase, ts, plate, verdict, signal_state, state_since, reason"
        " FROM traffic.violation WHERE (%(v)s::text IS NULL OR verdict = %(v)s)"
        " ORDER BY ts DESC LIMIT %(n)s",
        {"v": verdict, "n": limit},
    ).fetchall()
    keys = [
        "id",
        "junction_id",
        "phase",
        "ts",
        "plate",
        "verdict",
        "signal_state",
        "state_since",
        "reason",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


# --------------------------------------------------------------------------- work orders


def sync_work_orders(conn: psycopg.Connection, now: datetime | None = None) -> dict[str, int]:
    """Open an order for every open signal fault alarm that has none, and escalate overdue
    orders one level per :data:`ESCALATE_EVERY` past due. Returns how many of each."""
    now = now or datetime.now(UTC)
    opened = conn.execute(
        """
        INSERT INTO traffic.work_order (alarm_id, device_id, junction_id, fault, opened_at,
                                        due_at)
        SELECT a.id, a.device_id, j.id, coalesce(s.reading ->> 'fault', a.message_en),
               a.raised_at, a.raised_at + %s
        FROM iot.alarm a
        LEFT JOIN traffic.junction j ON j.device_id = a.device_id
        LEFT JOIN iot.device_state s ON s.device_id = a.device_id
        WHERE a.rule = 'signal.fault' AND a.cleared_at IS NULL AND a.device_id IS NOT NULL
        ON CONFLICT (alarm_id) DO NOTHING
        """,
        (WORK_ORDER_DUE,),
    ).rowcount
    escalated = conn.execute(
        """
        UPDATE traffic.work_order
        SET escalation = floor(extract(epoch FROM %(now)s - due_at) / %(every)s)::int + 1,
            escalated_at = %(now)s
        WHERE state <> 'done' AND due_at < %(now)s
          AND escalation < floor(extract(epoch FROM %(now)s - due_at) / %(every)s)::int + 1
        """,
        {"now": now, "every": ESCALATE_EVERY.total_seconds()},
    ).rowcount
    return {"opened": opened, "escalated": escalated}


_ORDER_KEYS = [
    "id",
    "alarm_id",
    "device_id",
    "junction_id",
    "fault",
    "state",
    "opened_at",
    "due_at",
    "escalation",
    "escalated_at",
    "closed_at",
    "closed_by",
]


def work_orders(conn: psycopg.Connection, state: str | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"SELECT {', '.join(_ORDER_KEYS)} FROM traffic.work_order"
        " WHERE (%(s)s::text IS NULL OR state = %(s)s)"
        " ORDER BY state = 'done', escalation DESC, due_at",
        {"s": state},
    ).fetchall()
    return [dict(zip(_ORDER_KEYS, r, strict=True)) for r in rows]


def set_work_order_state(
    conn: psycopg.Connection, order_id: int, state: str, by: str
) -> dict[str, Any]:
    if state not in ("open", "in_progress", "done"):
        raise TrafficError(f"state must be open, in_progress or done, not {state!r}")
    row = conn.execute(
        "UPDATE traffic.work_order SET state = %s,"
        " closed_at = CASE WHEN %s = 'done' THEN now() END,"
        " closed_by = CASE WHEN %s = 'done' THEN %s END"
        f" WHERE id = %s RETURNING {', '.join(_ORDER_KEYS)}",
        (state, state, state, by, order_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no work order {order_id}")
    return dict(zip(_ORDER_KEYS, row, strict=True))


# --------------------------------------------------------------------------- speeds

_networks: dict[int, tuple[int, MatchNetwork]] = {}


def match_network(graph: RoadGraph) -> MatchNetwork:
    """The matcher's view of the shared road graph, built once per graph version."""
    key = id(graph)
    found = _networks.get(key)
    if found is None or found[0] != graph.version:
        _networks.clear()
        found = _networks[key] = (graph.version, MatchNetwork.from_road_graph(graph))
    return found[1]


def update_speeds(
    conn: psycopg.Connection, *, minutes: float = 15.0, kind: str = "vehicle"
) -> dict[str, int]:
    """Map-match the fleet's fixes of the last ``minutes`` and store live speeds per road
    segment (replacing the previous ones) and a step of the typical speeds."""
    if not 1 <= minutes <= 24 * 60:
        raise TrafficError(f"minutes must be between 1 and 1440, got {minutes:g}")
    rows = conn.execute(
        f"SELECT device_id, {_US_OF_TS.format('ts')}, ST_X(geom), ST_Y(geom)"
        " FROM iot.telemetry WHERE kind = %s AND geom IS NOT NULL"
        " AND ts >= now() - %s * interval '1 minute' ORDER BY device_id, ts",
        (kind, minutes),
    ).fetchall()
    graph = graph_for(conn)
    net = match_network(graph)
    seg_parts, dist_parts, dur_parts = [], [], []
    fixes = matched = 0
    devices = [r[0] for r in rows]
    bounds = np.flatnonzero(np.r_[True, np.array(devices[1:]) != np.array(devices[:-1])])
    ends = np.r_[bounds[1:], len(rows)]
    for a, b in zip(bounds.tolist(), ends.tolist(), strict=True):
        if b - a < 2:
            continue
        part = np.array([r[1:] for r in rows[a:b]], np.float64)
        x, y = to_metric(part[:, 1], part[:, 2])
        try:
            result = match_track(net, x, y, (part[:, 0] - part[0, 0]) / 1e6, MatchSettings())
        except MapMatchError:
            continue  # a track the matcher refuses (e.g. a clock gone back) is skipped
        fixes += b - a
        matched += int((result.segment_id >= 0).sum())
        seg, dist, dur = result.segment_traversals()
        seg_parts.append(seg)
        dist_parts.append(dist)
        dur_parts.append(dur)
    conn.execute("DELETE FROM traffic.segment_speed")
    if not seg_parts or not sum(len(s) for s in seg_parts):
        return {"fixes": fixes, "matched": matched, "segments": 0}
    seg = np.concatenate(seg_parts)
    dist, dur = np.concatenate(dist_parts), np.concatenate(dur_parts)
    keep = dur > 0
    try:
        live = live_speeds(seg[keep], dist[keep], dur[keep], graph.edge_id, graph.speed_kmh)
    except SpeedError as exc:
        raise TrafficError(str(exc)) from None
    free = graph.speed_kmh[[graph.edge_index[int(i)] for i in live.segment_id]]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO traffic.segment_speed (road_id, speed_kmh, free_speed_kmh,"
            " congestion_index, observations) VALUES (%s, %s, %s, %s, %s)",
            list(
                zip(
                    live.segment_id.tolist(),
                    live.speed_kmh.tolist(),
                    free.tolist(),
                    live.congestion_index.tolist(),
                    live.observations.tolist(),
                    strict=True,
                )
            ),
        )
        day_type, tbin = time_bin(
            np.full(len(live.segment_id), int(datetime.now(UTC).timestamp() * 1e6))
        )
        cur.executemany(
            "INSERT INTO traffic.typical_speed AS t (road_id, day_type, bin, speed_kmh, batches)"
            " VALUES (%s, %s, %s, %s, 1) ON CONFLICT (road_id, day_type, bin) DO UPDATE"
            " SET speed_kmh = t.speed_kmh + 0.1 * (excluded.speed_kmh - t.speed_kmh),"
            " batches = t.batches + 1",
            list(
                zip(
                    live.segment_id.tolist(),
                    day_type.tolist(),
                    tbin.tolist(),
                    live.speed_kmh.tolist(),
                    strict=True,
                )
            ),
        )
    return {"fixes": fixes, "matched": matched, "segments": len(live.segment_id)}


def speeds_geojson(conn: psycopg.Connection, *, limit: int = 50_000) -> dict[str, Any]:
    """Live speeds as a GeoJSON FeatureCollection over ``ref.road``."""
    row = conn.execute(
        """
        SELECT json_build_object('type', 'FeatureCollection', 'features',
               coalesce(json_agg(json_build_object(
                   'type', 'Feature', 'id', r.id,
                   'geometry', ST_AsGeoJSON(r.geom, 6)::json,
                   'properties', json_build_object(
                       'road_id', r.id, 'name', r.name_zh,
                       'speed_kmh', round(s.speed_kmh::numeric, 1),
                       'free_speed_kmh', s.free_speed_kmh,
                       'congestion_index', round(s.congestion_index::numeric, 3),
                       'observations', s.observations, 'updated_at', s.updated_at))), '[]'))
        FROM (SELECT * FROM traffic.segment_speed ORDER BY congestion_index LIMIT %s) s
        JOIN ref.road r ON r.id = s.road_id
        """,
        (limit,),
    ).fetchone()
    assert row is not None
    return dict(row[0])


def apply_speeds(conn: psycopg.Connection, *, below: float = 0.6) -> dict[str, int]:
    """Write congested segments (congestion index below ``below``) to the shared road graph
    as slowdowns (factor = live / free speed), lifting traffic's earlier ones, so every
    application's routing uses the live speed there."""
    if not 0 < below <= 1:
        raise TrafficError(f"below must be in (0, 1], got {below:g}")
    lifted = reopen_roads(conn, source=SPEED_SOURCE)
    rows = conn.execute(
        "SELECT road_id, congestion_index FROM traffic.segment_speed WHERE congestion_index < %s",
        (below,),
    ).fetchall()
    # close_roads takes one factor per call: group by the factor to two decimals, at
    # least 0.05 (a crawl, not a closure).
    groups: dict[float, list[int]] = {}
    for road_id, index in rows:
        groups.setdefault(max(0.05, round(float(index), 2)), []).append(int(road_id))
    slowed = sum(
        close_roads(conn, ids, source=SPEED_SOURCE, reason="congestion", speed_factor=f)
        for f, ids in groups.items()
    )
    return {"lifted": lifted, "slowed": slowed}


# --------------------------------------------------------------------------- signs


def signs(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        SELECT s.id, s.name_zh, s.road_id, s.rows, s.columns, ST_X(s.geom), ST_Y(s.geom),
               m.lines, m.sent_by, m.sent_at
        FROM traffic.sign s
        LEFT JOIN LATERAL (SELECT lines, sent_by, sent_at FROM traffic.sign_message
                           WHERE sign_id = s.id ORDER BY sent_at DESC, id DESC LIMIT 1) m ON true
        ORDER BY s.id
        """
    ).fetchall()
    keys = [
        "id",
        "name_zh",
        "road_id",
        "rows",
        "columns",
        "lon",
        "lat",
        "lines",
        "sent_by",
        "sent_at",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _sign(conn: psycopg.Connection, sign_id: str) -> tuple[Sign, int | None]:
    row = conn.execute(
        "SELECT rows, columns, road_id FROM traffic.sign WHERE id = %s", (sign_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no sign {sign_id!r}")
    return Sign(int(row[0]), int(row[1])), row[2]


def put_message(
    conn: psycopg.Connection,
    sign_id: str,
    *,
    text: str | None,
    lines: list[str] | None,
    by: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Validate a message for the sign (laid out from ``text`` or given as ``lines``) and
    record who put it there; the caller sends it to the sign."""
    sign, _ = _sign(conn, sign_id)
    if (text is None) == (lines is None):
        raise TrafficError("give either text (laid out to fit) or lines, not both")
    try:
        shown = sign.layout(text) if text is not None else sign.validate(lines or [])
    except SignMessageError as exc:
        raise TrafficError(f"sign {sign_id}: {exc}") from None
    row = conn.execute(
        "INSERT INTO traffic.sign_message (sign_id, lines, reason, sent_by) VALUES"
        " (%s, %s, %s, %s) RETURNING id, sent_at",
        (sign_id, list(shown), reason, by),
    ).fetchone()
    assert row is not None
    return {
        "id": row[0],
        "sign_id": sign_id,
        "lines": list(shown),
        "sent_by": by,
        "sent_at": row[1],
        "reason": reason,
    }


def suggest_message(conn: psycopg.Connection, sign_id: str, lang: str = "zh") -> dict[str, Any]:
    """A message for the sign from its road's state: closed, congested, or nothing."""
    from apps.traffic.signs import suggest_closure, suggest_congestion

    if lang not in ("zh", "en"):
        raise TrafficError(f"lang must be zh or en, not {lang!r}")
    sign, road_id = _sign(conn, sign_id)
    if road_id is None:
        return {"sign_id": sign_id, "lines": None, "why": "the sign watches no road"}
    row = conn.execute(
        """
        SELECT coalesce(r.name_zh, '前方道路'), r.length_m,
               (SELECT min(speed_factor) FROM ref.road_closure c WHERE c.road_id = r.id
                  AND c.valid_from <= now() AND (c.valid_to IS NULL OR c.valid_to > now())),
               s.speed_kmh, s.free_speed_kmh, s.congestion_index
        FROM ref.road r LEFT JOIN traffic.segment_speed s ON s.road_id = r.id
        WHERE r.id = %s
        """,
        (road_id,),
    ).fetchone()
    if row is None:
        return {"sign_id": sign_id, "lines": None, "why": "the sign's road is gone"}
    name, length_m, factor, speed, free, index = row
    road = name if lang == "zh" else "ROAD"
    try:
        if factor is not None and factor <= 0:
            lines = suggest_closure(sign, road, lang=lang)  # type: ignore[arg-type]
            why = "closed"
        elif index is not None and index < 0.6:
            delay = (length_m or 0) / 1000 * (60 / max(speed, 1) - 60 / max(free, 1))
            lines = suggest_congestion(
                sign,
                road,
                length_km=(length_m or 0) / 1000,
                delay_min=max(delay, 0.0),
                lang=lang,  # type: ignore[arg-type]
            )
            why = "congested"
        else:
            return {"sign_id": sign_id, "lines": None, "why": "the road is clear"}
    except SignMessageError as exc:
        raise TrafficError(f"sign {sign_id}: {exc}") from None
    return {"sign_id": sign_id, "lines": list(lines), "why": why}
