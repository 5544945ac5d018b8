"""The same measures computed by the ``atspm`` package (DuckDB SQL), and a timing of both.

``atspm`` (PyPI, by ShawnStrasser; ODOT's open ATSPM aggregations) is the peer this
application's measures are checked and timed against: same log, same detector wiring, same
bin. It loads the events from a pandas DataFrame into an in-memory DuckDB and runs one SQL
aggregation per measure.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from apps.traffic.events import EventLog, normalize, to_dataframe
from apps.traffic.measures import compute_measures

__all__ = ["atspm_measures", "bench_figures", "compare_speed"]

#: The aggregations of ``atspm`` that match :func:`apps.traffic.measures.compute_measures`.
ATSPM_AGGREGATIONS = ("actuations", "arrival_on_green", "split_failures", "terminations")


def atspm_measures(
    log: EventLog,
    detectors: npt.NDArray[Any],
    *,
    bin_minutes: int = 15,
    occupancy_threshold: float = 0.79,
    with_ped_delay: bool = True,
) -> dict[str, Any]:
    """Run ``atspm`` on the log; a DataFrame per aggregation, keyed by its name."""
    import pandas as pd
    from atspm import SignalDataProcessor

    config = pd.DataFrame(
        {
            "DeviceId": detectors["junction"].astype(np.int32),
            "Phase": detectors["phase"].astype(np.int16),
            "Parameter": detectors["channel"].astype(np.int16),
            "Function": np.char.capitalize(detectors["function"].astype(str)),
        }
    )
    aggregations: list[dict[str, Any]] = [
        {"name": "actuations", "params": {}},
        {"name": "arrival_on_green", "params": {"latency_offset_seconds": 0}},
        {"name": "platoon_ratio", "params": {}},
        {
            "name": "split_failures",
            "params": {
                "red_time": 5,
                "red_occupancy_threshold": occupancy_threshold,
                "green_occupancy_threshold": occupancy_threshold,
                "by_approach": True,
                "by_cycle": False,
            },
        },
        {"name": "terminations", "params": {}},
    ]
    if with_ped_delay:
        aggregations += [
            {"name": "has_data", "params": {"no_data_min": 5, "min_data_points": 3}},
            {
                "name": "timeline",
                "params": {"max_event_gap_seconds": None, "min_duration": 0, "cushion_time": 0},
            },
            {"name": "ped_delay", "params": {}},
        ]
    with SignalDataProcessor(
        raw_data=to_dataframe(log),
        detector_config=config,
        bin_size=bin_minutes,
        verbose=0,
        aggregations=aggregations,
    ) as processor:
        processor.conn.execute("SET enable_progress_bar = false")
        processor.load()
        processor.aggregate()
        return {
            a["name"]: processor.conn.query(f"SELECT * FROM {a['name']}").df()
            for a in aggregations
            if a["name"] not in ("has_data", "timeline")
        }


def compare_speed(
    events: npt.NDArray[Any], detectors: npt.NDArray[Any], *, bin_minutes: int = 15
) -> dict[str, float | int]:
    """Events per second of this module (normalize + every measure) and of ``atspm``.

    ``atspm`` runs the aggregations it shares with :func:`compute_measures` (volumes, arrivals
    on green and platoon ratio, split failures, terminations, pedestrian delay); its DataFrame
    is built before its clock starts, ours from the raw array inside our clock.
    """
    t = time.perf_counter()
    log = normalize(events)
    compute_measures(log, detectors, bin_minutes=bin_minutes)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    atspm_measures(log, detectors, bin_minutes=bin_minutes)
    theirs = time.perf_counter() - t
    return {
        "events": len(events),
        "events_per_s": len(events) / ours,
        "peer_events_per_s": len(events) / theirs,
        "seconds": ours,
        "peer_seconds": theirs,
    }


def bench_figures(
    n_junctions: int = 300, *, seed: int = 0, mapmatch_fixes: int = 20_000
) -> dict[str, Any]:
    """The ``traffic`` bench figures of the contract, measured on seeded synthetic data.

    Signal measures: a simulated day of ``n_junctions`` controllers, ours against ``atspm``.
    Map matching: a simulated drive over a 40 x 40 street lattice (150 m blocks), because
    the city's road table lives in the database; the lead's bench can pass that instead.
    """
    from apps.traffic.mapmatch import MatchNetwork, measure_throughput
    from apps.traffic.simlog import simulate_log

    sim = simulate_log(n_junctions, seed=seed)
    speed = compare_speed(sim.events, sim.detectors)
    n = 40
    ij = np.arange(n * n).reshape(n, n)
    src = np.concatenate([ij[:, :-1].ravel(), ij[:-1, :].ravel()])
    tgt = np.concatenate([ij[:, 1:].ravel(), ij[1:, :].ravel()])
    xy = np.stack(np.meshgrid(np.arange(n) * 150.0, np.arange(n) * 150.0), -1).reshape(-1, 2)
    import shapely

    net = MatchNetwork(
        np.arange(len(src), dtype=np.int64),
        shapely.linestrings(np.stack([xy[src], xy[tgt]], 1)),
        src.astype(np.int64),
        tgt.astype(np.int64),
        np.zeros(len(src), bool),
    )
    match = measure_throughput(net, mapmatch_fixes, seed=seed)
    return {
        "bench": "traffic",
        "events": speed["events"],
        "events_per_s": speed["events_per_s"],
        "peer": "atspm",
        "peer_events_per_s": speed["peer_events_per_s"],
        "mapmatch_points_per_s": match["points_per_s"],
        "mapmatch_true_share": match["true_share"],
    }
