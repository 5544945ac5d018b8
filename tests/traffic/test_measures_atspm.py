"""Our measures against the ``atspm`` package on the same two-hour, two-junction log.

Where the figures are expected to be identical the test says so; every place where the two
differ by definition is named in a comment and kept out of the exact comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.traffic.events import normalize
from apps.traffic.measures import Measures, compute_measures
from apps.traffic.peer import atspm_measures
from apps.traffic.simlog import simulate_log

# 07:00-09:00 China time: the morning peak, with queues that overflow (split failures).
SIM = simulate_log(2, seed=3, start="2026-12-03T23:00", duration_s=7200)
LOG = normalize(SIM.events)
FIRST_BIN = pd.Timestamp("2026-12-03T23:00")
LAST_BIN = pd.Timestamp("2026-12-04T00:45")


@pytest.fixture(scope="module")
def ours() -> Measures:
    return compute_measures(LOG, SIM.detectors)


@pytest.fixture(scope="module")
def theirs() -> dict[str, pd.DataFrame]:
    return atspm_measures(LOG, SIM.detectors)


def frame(rows: np.ndarray, **rename: str) -> pd.DataFrame:
    df = pd.DataFrame({name: rows[name] for name in rows.dtype.names})
    df["TimeStamp"] = df.pop("bin").astype("datetime64[us]")
    return df.rename(columns=rename)


def joined(ours: pd.DataFrame, theirs: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    theirs = theirs.copy()
    theirs["TimeStamp"] = theirs["TimeStamp"].astype("datetime64[us]")
    for col in on[1:]:
        theirs[col] = theirs[col].astype(np.int64)
        ours[col] = ours[col].astype(np.int64)
    return ours.merge(theirs, on=on, how="outer", indicator=True)


def test_detector_volumes_identical(ours: Measures, theirs: dict) -> None:
    m = joined(
        frame(ours.detector_volumes, junction="DeviceId", channel="Detector"),
        theirs["actuations"],
        ["TimeStamp", "DeviceId", "Detector"],
    )
    assert (m["_merge"] == "both").all()
    assert len(m) > 150
    assert (m["volume"] == m["Total"]).all()


def test_terminations_identical(ours: Measures, theirs: dict) -> None:
    wide = theirs["terminations"].pivot_table(
        index=["TimeStamp", "DeviceId", "Phase"],
        columns="PerformanceMeasure",
        values="Total",
        fill_value=0,
    )
    wide = wide.reindex(columns=["GapOut", "MaxOut", "ForceOff"], fill_value=0).reset_index()
    m = joined(
        frame(ours.terminations, junction="DeviceId", phase="Phase"),
        wide,
        ["TimeStamp", "DeviceId", "Phase"],
    )
    assert (m["_merge"] == "both").all()
    assert (m["gap_out"] == m["GapOut"]).all() and (m["force_off"] == m["ForceOff"]).all()
    assert (m["max_out"] == m["MaxOut"]).all()
    assert m["force_off"].sum() > 0 and m["gap_out"].sum() > 0


def test_arrivals_on_green_identical(ours: Measures, theirs: dict) -> None:
    m = joined(
        frame(ours.arrivals, junction="DeviceId", phase="Phase"),
        theirs["arrival_on_green"],
        ["TimeStamp", "DeviceId", "Phase"],
    )
    # atspm inner-joins bins with at least one arrival on green, so a bin whose arrivals all
    # came on red is missing there; we report it with 0 %. No such bin in this log, but the
    # comparison allows it.
    only_ours = m[m["_merge"] == "left_only"]
    assert (only_ours["on_green"] == 0).all()
    both = m[m["_merge"] == "both"]
    assert (m["_merge"] != "right_only").all() and len(both) >= 60
    assert (both["arrivals"] == both["Total_Actuations"]).all()
    assert both["pct_aog"].to_numpy() == pytest.approx(both["Percent_AOG"].to_numpy(), abs=1e-6)


def test_platoon_ratio_matches_inside_the_log(ours: Measures, theirs: dict) -> None:
    m = joined(
        frame(ours.arrivals, junction="DeviceId", phase="Phase"),
        theirs["platoon_ratio"],
        ["TimeStamp", "DeviceId", "Phase"],
    )
    m = m[m["_merge"] == "both"]
    # At the edges the green time differs by definition: atspm assumes a phase already green
    # at the first event was green from the start of that bin, and a green still open at the
    # end runs to the end of its bin; we count green only between logged events (the log
    # does not say what came before or after it). Inside, the figures are the same.
    inner = m[(m["TimeStamp"] > FIRST_BIN) & (m["TimeStamp"] < LAST_BIN)]
    assert len(inner) >= 30
    assert inner["green_s"].to_numpy() == pytest.approx(inner["Green_Seconds"], abs=1e-3)
    assert inner["platoon_ratio"].to_numpy() == pytest.approx(inner["Platoon_Ratio"], rel=1e-5)


def test_split_failures_match_inside_the_log(ours: Measures, theirs: dict) -> None:
    m = joined(
        frame(ours.split_failures, junction="DeviceId", phase="Phase"),
        theirs["split_failures"],
        ["TimeStamp", "DeviceId", "Phase"],
    )
    # First bin: atspm drops a cycle in which a detector's state is still unknown (no event
    # of it yet since the log began); we take an unseen detector as off. Last bin: atspm adds
    # the 5-s red window up to the end of the last bin, we only up to the last event.
    inner = m[(m["TimeStamp"] > FIRST_BIN) & (m["TimeStamp"] < LAST_BIN)]
    assert (inner["_merge"] == "both").all() and len(inner) >= 50
    assert (inner["failures"] == inner["Split_Failure"]).all()
    assert inner["failures"].sum() > 10  # the peak overflows: the check is not vacuous
    # Occupancies agree exactly except where a detector logs its "off" and its next "on" in
    # the same tenth of a second (the logger's resolution). atspm orders a detector's events
    # by time alone, so it may read that pair as on-on, impute a second "off" and lose the
    # call until the next "on": its occupancy comes out a little lower there. We order the
    # pair off-then-on (by code), which is what happened.
    gor_gap = inner["gor"].to_numpy() - inner["Green_Occupancy"].to_numpy()
    ror_gap = inner["ror5"].to_numpy() - inner["Red_Occupancy"].to_numpy()
    exact = (np.abs(gor_gap) < 1e-6) & (np.abs(ror_gap) < 1e-6)
    assert exact.mean() >= 0.85
    assert (gor_gap[~exact] > -1e-6).all() and (ror_gap[~exact] > -1e-6).all()
    assert (gor_gap < 0.02).all() and (ror_gap < 0.02).all()
    # atspm averages in FLOAT (single precision).
    assert inner["green_s"].to_numpy() == pytest.approx(inner["Green_Time"], abs=1e-5)


def test_pedestrian_delay_identical(ours: Measures, theirs: dict) -> None:
    # atspm starts the wait at the first push of the button (90) after a clearance (22); we
    # at the controller's call (45), which the simulated controller registers at that same
    # first push, so the figures agree. Both end it at the walk (21) and bin by the walk.
    m = joined(
        frame(ours.ped_delay, junction="DeviceId", phase="Phase"),
        theirs["ped_delay"],
        ["TimeStamp", "DeviceId", "Phase"],
    )
    assert (m["_merge"] == "both").all() and len(m) >= 40
    assert (m["samples"] == m["Samples"]).all()
    # atspm's average is a FLOAT (single precision) of durations in seconds.
    assert m["mean_delay_s"].to_numpy() == pytest.approx(m["AvgPedDelay"], abs=1e-4)
