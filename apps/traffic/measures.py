"""Signal performance measures from hi-res event logs, per junction and phase, in time bins.

Definitions follow the Purdue/INDOT ATSPM literature (Day et al., *Performance Measures for
Traffic Signal Systems: An Outcome-Oriented Approach*, Purdue 2014, doi:10.5703/1288284315333)
and, detail for detail, the open-source ``atspm`` package (PyPI), whose SQL these were checked
against (``tests/traffic/test_measures_atspm.py``):

* **Arrivals on green** — detector-on events (82) of *advance* detectors, each given the state
  of its phase at that instant (the last of 1 begin green / 8 begin yellow / 10 begin red
  clearance at or before it); percent AOG = arrivals on green / arrivals. **Platoon ratio** =
  percent AOG / (green seconds in the bin / bin seconds) (HCM 7th ed., exhibit 19-14).
* **Split failures** — per phase cycle (1 → 8 → 10), the union of the phase's *presence*
  detectors' occupancy: green occupancy ratio over the green (1 to 8) and red occupancy ratio
  over the first 5 s of red (from 10); a split failure when both are ≥ 79 %. A cycle is
  binned by the end of its 5-s red window.
* **Phase terminations** — counts of gap-out (4), max-out (5), force-off (6).
* **Pedestrian delay** — from the first pedestrian call registered (45) after the last walk
  service to the next begin walk (21), binned by the walk.
* **Volumes** — detector-on counts per detector; per approach, the sum over its advance and
  count detectors (a stop-bar presence detector sees a queue as one long call).
* **Purdue coordination diagram** — per advance-detector arrival: the cycle (red to red, from
  10), its green start (1) and end (8), and the arrival's time in cycle.

Everything is vectorized over the whole log: groups (junction × phase, junction × detector)
are packed with time into one sorted int64 key and located by ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from apps.traffic.events import DETECTOR_DTYPE, US_PER_S, EventCode, EventLog, EventLogError

__all__ = ["FLAG_DTYPE", "Measures", "compute_measures"]

I64 = npt.NDArray[np.int64]
_TIME_BITS: Final = 42  # µs span of one log: 2**42 µs ≈ 50 days
_RED_WINDOW_US: Final = 5 * US_PER_S
_C = EventCode

#: A condition found in the log: kind, junction, phase or detector channel, instant (µs).
FLAG_DTYPE: Final = np.dtype(
    [("kind", "U20"), ("junction", "<i4"), ("param", "<i2"), ("ts", "<i8")]
)

ARRIVALS_DTYPE: Final = np.dtype(
    [
        ("bin", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("arrivals", "<i4"),
        ("on_green", "<i4"),
        ("pct_aog", "<f8"),
        ("green_s", "<f8"),
        ("platoon_ratio", "<f8"),
    ]
)
SPLIT_CYCLE_DTYPE: Final = np.dtype(
    [
        ("bin", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("green_start", "<i8"),
        ("green_s", "<f8"),
        ("gor", "<f8"),
        ("ror5", "<f8"),
        ("failure", "?"),
    ]
)
SPLIT_DTYPE: Final = np.dtype(
    [
        ("bin", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("cycles", "<i4"),
        ("failures", "<i4"),
        ("green_s", "<f8"),
        ("gor", "<f8"),
        ("ror5", "<f8"),
    ]
)
TERMINATION_DTYPE: Final = np.dtype(
    [
        ("bin", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("gap_out", "<i4"),
        ("max_out", "<i4"),
        ("force_off", "<i4"),
    ]
)
PED_DTYPE: Final = np.dtype(
    [
        ("bin", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("samples", "<i4"),
        ("mean_delay_s", "<f8"),
        ("max_delay_s", "<f8"),
    ]
)
VOLUME_DTYPE: Final = np.dtype(
    [("bin", "<i8"), ("junction", "<i4"), ("channel", "<i2"), ("volume", "<i4")]
)
APPROACH_DTYPE: Final = np.dtype(
    [("bin", "<i8"), ("junction", "<i4"), ("phase", "<i2"), ("volume", "<i4")]
)
PCD_DTYPE: Final = np.dtype(
    [
        ("ts", "<i8"),
        ("junction", "<i4"),
        ("phase", "<i2"),
        ("cycle_start", "<i8"),
        ("green_start", "<i8"),
        ("green_end", "<i8"),
        ("cycle_end", "<i8"),
        ("t_in_cycle_s", "<f8"),
    ]
)


@dataclass(frozen=True)
class Measures:
    """All measures of one log; ``bin`` columns are bin starts in µs since the epoch."""

    bin_us: int
    arrivals: npt.NDArray[Any]
    split_cycles: npt.NDArray[Any]
    split_failures: npt.NDArray[Any]
    terminations: npt.NDArray[Any]
    ped_delay: npt.NDArray[Any]
    detector_volumes: npt.NDArray[Any]
    approach_volumes: npt.NDArray[Any]
    coordination: npt.NDArray[Any]
    flags: npt.NDArray[Any]
    out_of_order: int
    duplicates_removed: int


class _Groups:
    """Dense numbering of (junction, param) pairs and the packed (group, time) key."""

    def __init__(self, junction: npt.NDArray[Any], param: npt.NDArray[Any], t0: int) -> None:
        raw = junction.astype(np.int64) << 16 | param.astype(np.int64)
        self.raw, self.inverse = np.unique(raw, return_inverse=True)
        self.t0 = t0

    def of(self, junction: npt.NDArray[Any], param: npt.NDArray[Any]) -> I64:
        """Group index of each pair; -1 where the pair is not a group."""
        raw = junction.astype(np.int64) << 16 | param.astype(np.int64)
        pos = np.minimum(np.searchsorted(self.raw, raw), max(len(self.raw) - 1, 0))
        if len(self.raw) == 0:
            return np.full(len(raw), -1, np.int64)
        return np.where(self.raw[pos] == raw, pos, -1).astype(np.int64)

    def key(self, group: I64, ts: npt.NDArray[Any]) -> I64:
        return (group << _TIME_BITS) | (ts.astype(np.int64) - self.t0)

    def junction(self, group: I64) -> npt.NDArray[np.int32]:
        return (self.raw[group] >> 16).astype(np.int32)

    def param(self, group: I64) -> npt.NDArray[np.int16]:
        return (self.raw[group] & 0xFFFF).astype(np.int16)


def _merge(key: I64, start: I64, end: I64) -> tuple[I64, I64, I64]:
    """Union of intervals per packed key group: ``key`` holds (group, start) packed."""
    order = np.argsort(key, kind="stable")
    key, start, end = key[order], start[order], end[order]
    if len(key) == 0:
        return key, start, end
    offset = key - start  # the group's base, constant within a group and increasing
    reach = np.maximum.accumulate(offset + end) - offset
    new = np.ones(len(key), bool)
    new[1:] = (offset[1:] != offset[:-1]) | (start[1:] > reach[:-1])
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(key)] - 1
    return key[first], start[first], reach[last]


class _Cover:
    """Time covered by disjoint sorted intervals, as a cumulative function of packed time."""

    def __init__(self, key_start: I64, length: I64) -> None:
        self.key_start = key_start
        self.length = length
        self.before = np.cumsum(length) - length

    def upto(self, key: I64) -> I64:
        k = np.searchsorted(self.key_start, key, "right") - 1
        safe = np.maximum(k, 0)
        inside = np.clip(key - self.key_start[safe], 0, self.length[safe]) if len(k) else key
        got = self.before[safe] + inside if len(self.length) else np.zeros(len(key), np.int64)
        return np.where(k >= 0, got, 0)

    def between(self, key_a: I64, key_b: I64) -> I64:
        return self.upto(key_b) - self.upto(key_a)


def _detector_table(detectors: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if detectors.dtype != DETECTOR_DTYPE:
        raise EventLogError(f"detectors must have dtype {DETECTOR_DTYPE}, not {detectors.dtype}")
    bad = ~np.isin(detectors["function"], ("advance", "presence", "count"))
    if bad.any():
        raise EventLogError(
            f"unknown detector function(s) {sorted(set(detectors['function'][bad].tolist()))}: "
            "use advance, presence or count"
        )
    raw = detectors["junction"].astype(np.int64) << 16 | detectors["channel"].astype(np.int64)
    order = np.argsort(raw)
    if (np.diff(raw[order]) == 0).any():
        dup = raw[order][1:][np.diff(raw[order]) == 0][0]
        raise EventLogError(f"detector channel {dup & 0xFFFF} of junction {dup >> 16} twice")
    return detectors[order]


def _wiring(
    table: npt.NDArray[Any], events: npt.NDArray[Any], functions: tuple[str, ...]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int16]]:
    """For detector events: is the channel wired with one of ``functions``, and its phase."""
    raw = table["junction"].astype(np.int64) << 16 | table["channel"].astype(np.int64)
    ev = events["junction"].astype(np.int64) << 16 | events["param"].astype(np.int64)
    if len(raw) == 0:
        return np.zeros(len(ev), bool), np.zeros(len(ev), np.int16)
    pos = np.minimum(np.searchsorted(raw, ev), len(raw) - 1)
    hit = (raw[pos] == ev) & np.isin(table["function"][pos], functions)
    return hit, table["phase"][pos]


def compute_measures(
    log: EventLog,
    detectors: npt.NDArray[Any],
    *,
    bin_minutes: int = 15,
    occupancy_threshold: float = 0.79,
    max_on_s: float = 900.0,
) -> Measures:
    """Compute every measure of :mod:`apps.traffic.measures` for a normalized log.

    Parameters
    ----------
    log
        A normalized :class:`~apps.traffic.events.EventLog`.
    detectors
        Detector wiring, :data:`~apps.traffic.events.DETECTOR_DTYPE`.
    bin_minutes
        Bin length; bins are aligned to the epoch (so to UTC quarter hours).
    occupancy_threshold
        Green and red occupancy at or above which a cycle is a split failure (Purdue: 0.79).
    max_on_s
        A presence detector on for longer (or still on this long before the log ends) is
        flagged ``detector_stuck_on`` and left out of split failures for the whole log.
    """
    if not 1 <= bin_minutes <= 1440:
        raise EventLogError(f"bin_minutes must be between 1 and 1440, got {bin_minutes}")
    if not 0 < occupancy_threshold <= 1:
        raise EventLogError(f"occupancy_threshold must be in (0, 1], got {occupancy_threshold}")
    table = _detector_table(detectors)
    e = log.events
    bin_us = bin_minutes * 60 * US_PER_S
    # Packed times count from the start of the first bin, so bin edges are never negative.
    t0 = int(e["ts"].min()) // bin_us * bin_us if len(e) else 0
    t_end = int(e["ts"].max()) if len(e) else 0
    if t_end + bin_us - t0 >= 1 << _TIME_BITS:
        raise EventLogError("a log longer than 50 days: compute measures in pieces")
    flags: list[npt.NDArray[Any]] = []
    code = e["code"]

    # Phase events (1, 8, 10) per (junction, phase): the cycle skeleton.
    ph = e[
        (code == _C.PHASE_BEGIN_GREEN)
        | (code == _C.PHASE_BEGIN_YELLOW_CLEARANCE)
        | (code == _C.PHASE_BEGIN_RED_CLEARANCE)
    ]
    groups = _Groups(
        np.concatenate([ph["junction"], table["junction"]]),
        np.concatenate([ph["param"], table["phase"]]),
        t0,
    )
    ph_g = groups.of(ph["junction"], ph["param"])
    order = np.argsort(ph_g, kind="stable")  # the log is time-ordered within a junction
    ph, ph_g = ph[order], ph_g[order]
    ph_key = groups.key(ph_g, ph["ts"])
    ph_code = ph["code"]
    same_next = np.r_[ph_g[1:] == ph_g[:-1], False]
    same_prev = np.r_[False, ph_g[1:] == ph_g[:-1]]
    prev_code = np.r_[0, ph_code[:-1]]
    next_code = np.r_[ph_code[1:], 0]
    # A yellow or red clearance right after red: the phase had no green in that cycle.
    no_green = (
        same_prev & (ph_code != _C.PHASE_BEGIN_GREEN) & (prev_code == _C.PHASE_BEGIN_RED_CLEARANCE)
    )
    flags.append(_flags("no_green", ph[no_green]))
    flags.append(
        _flags(
            "green_without_yellow",
            ph[(ph_code == _C.PHASE_BEGIN_GREEN) & same_next & (next_code == _C.PHASE_BEGIN_GREEN)],
        )
    )

    # Green intervals: a begin green to the phase's next event.
    g_idx = np.flatnonzero(ph_code == _C.PHASE_BEGIN_GREEN)
    g_end = np.where(same_next[g_idx], ph["ts"][np.minimum(g_idx + 1, len(ph) - 1)], t_end)
    green = _Cover(ph_key[g_idx], g_end - ph["ts"][g_idx])

    # ---- arrivals on green, platoon ratio, coordination diagram (advance detectors)
    det = e[(code == _C.DETECTOR_ON) | (code == _C.DETECTOR_OFF)]
    on = det[det["code"] == _C.DETECTOR_ON]
    adv, adv_phase = _wiring(table, on, ("advance",))
    arr = on[adv]
    arr_g = groups.of(arr["junction"], adv_phase[adv])
    arr_key = groups.key(arr_g, arr["ts"])
    k = np.searchsorted(ph_key, arr_key, "right") - 1
    known = (k >= 0) & (ph_g[np.maximum(k, 0)] == arr_g)
    on_green = known & (ph_code[np.maximum(k, 0)] == _C.PHASE_BEGIN_GREEN)
    c = _cells(arr["ts"], arr["junction"], adv_phase[adv], bin_us)
    count, green_count = c.count(), c.count(on_green.astype(np.float64))
    cell_g = groups.of(c.junction, c.param)
    green_us = green.between(groups.key(cell_g, c.bin), groups.key(cell_g, c.bin + bin_us))
    arrivals = np.empty(len(c), ARRIVALS_DTYPE)
    arrivals["bin"], arrivals["junction"], arrivals["phase"] = c.bin, c.junction, c.param
    arrivals["arrivals"], arrivals["on_green"] = count, green_count
    arrivals["pct_aog"] = green_count / count
    arrivals["green_s"] = green_us / US_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        arrivals["platoon_ratio"] = np.where(
            green_us > 0, arrivals["pct_aog"] / (green_us / bin_us), np.nan
        )
    coordination = _coordination(arr, arr_g, arr_key, ph_key, ph_g, ph_code, groups)

    # ---- split failures (presence detectors)
    pres, pres_phase = _wiring(table, det, ("presence",))
    split_cycles, stuck = _split_cycles(
        det[pres], pres_phase[pres], groups, ph, ph_g, ph_key, ph_code,
        t_end, bin_us, occupancy_threshold, int(max_on_s * US_PER_S),
    )  # fmt: skip
    flags.append(stuck)
    split_failures = _split_bins(split_cycles, bin_us)

    return Measures(
        bin_us=bin_us,
        arrivals=arrivals,
        split_cycles=split_cycles,
        split_failures=split_failures,
        terminations=_terminations(e, bin_us),
        ped_delay=_ped_delay(e, bin_us, t0),
        detector_volumes=_volumes(on, bin_us),
        approach_volumes=_approach_volumes(on, table, bin_us),
        coordination=coordination,
        flags=np.concatenate(flags) if flags else np.zeros(0, FLAG_DTYPE),
        out_of_order=log.out_of_order,
        duplicates_removed=log.duplicates_removed,
    )


def _flags(kind: str, rows: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.empty(len(rows), FLAG_DTYPE)
    out["kind"], out["junction"], out["param"], out["ts"] = (
        kind,
        rows["junction"],
        rows["param"],
        rows["ts"],
    )
    return out


def _coordination(
    arr: npt.NDArray[Any],
    arr_g: I64,
    arr_key: I64,
    ph_key: I64,
    ph_g: I64,
    ph_code: npt.NDArray[Any],
    groups: _Groups,
) -> npt.NDArray[Any]:
    """Purdue coordination diagram points; arrivals outside a complete cycle are left out."""

    def of_code(c: int) -> tuple[I64, I64]:
        sel = ph_code == c
        return ph_key[sel], ph_g[sel]

    red_key, red_g = of_code(_C.PHASE_BEGIN_RED_CLEARANCE)
    grn_key, grn_g = of_code(_C.PHASE_BEGIN_GREEN)
    yel_key, yel_g = of_code(_C.PHASE_BEGIN_YELLOW_CLEARANCE)
    out = np.empty(0, PCD_DTYPE)
    if len(red_key) < 2 or len(arr) == 0:
        return out
    r = np.searchsorted(red_key, arr_key, "right") - 1
    r1 = r + 1
    ok = (r >= 0) & (r1 < len(red_key))
    r, r1 = np.clip(r, 0, len(red_key) - 1), np.clip(r1, 0, len(red_key) - 1)
    ok &= (red_g[r] == arr_g) & (red_g[r1] == arr_g)
    gi = np.minimum(np.searchsorted(grn_key, red_key[r], "right"), max(len(grn_key) - 1, 0))
    ok &= (len(grn_key) > 0) & (grn_g[gi] == arr_g) & (grn_key[gi] < red_key[r1])
    yi = np.minimum(np.searchsorted(yel_key, grn_key[gi], "right"), max(len(yel_key) - 1, 0))
    ok &= (len(yel_key) > 0) & (yel_g[yi] == arr_g) & (yel_key[yi] <= red_key[r1])
    mask = (1 << _TIME_BITS) - 1
    t0 = groups.t0
    out = np.empty(int(ok.sum()), PCD_DTYPE)
    out["ts"] = arr["ts"][ok]
    out["junction"], out["phase"] = groups.junction(arr_g[ok]), groups.param(arr_g[ok])
    out["cycle_start"] = (red_key[r[ok]] & mask) + t0
    out["green_start"] = (grn_key[gi[ok]] & mask) + t0
    out["green_end"] = (yel_key[yi[ok]] & mask) + t0
    out["cycle_end"] = (red_key[r1[ok]] & mask) + t0
    out["t_in_cycle_s"] = (out["ts"] - out["cycle_start"]) / US_PER_S
    return out


def _split_cycles(
    det: npt.NDArray[Any],
    det_phase: npt.NDArray[np.int16],
    groups: _Groups,
    ph: npt.NDArray[Any],
    ph_g: I64,
    ph_key: I64,
    ph_code: npt.NDArray[Any],
    t_end: int,
    bin_us: int,
    threshold: float,
    max_on_us: int,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    # Per detector, time-ordered: each "on" lasts to the next event of that detector. Two
    # "on"s in a row (a lost "off") end at the second if within 2 s, else half-way; two
    # "off"s in a row get an "on" half-way (atspm's imputation, which these follow).
    d_raw = det["junction"].astype(np.int64) << 16 | det["param"].astype(np.int64)
    order = np.argsort(d_raw, kind="stable")
    det, d_raw, det_phase = det[order], d_raw[order], det_phase[order]
    ts, is_on = det["ts"], det["code"] == _C.DETECTOR_ON
    same_next = np.r_[d_raw[1:] == d_raw[:-1], False]
    nxt = np.r_[ts[1:], 0]
    nxt_on = np.r_[is_on[1:], False]
    gap = nxt - ts
    end = np.where(nxt_on & (gap > 2 * US_PER_S), ts + gap // 2, nxt)
    end = np.where(same_next, end, t_end)
    start = ts.copy()
    prev_off = np.r_[False, ~is_on[:-1]] & np.r_[False, d_raw[1:] == d_raw[:-1]]
    imputed = ~is_on & prev_off
    start[imputed] = (np.r_[0, ts[:-1]][imputed] + ts[imputed]) // 2
    use = is_on | imputed
    end = np.where(imputed, ts, end)
    start, end, d_raw_u, phase_u, rows = start[use], end[use], d_raw[use], det_phase[use], det[use]
    long_on = (end - start) >= max_on_us
    stuck_raw, first_long = np.unique(d_raw_u[long_on], return_index=True)
    stuck = _flags("detector_stuck_on", rows[long_on][first_long])
    keep = ~np.isin(d_raw_u, stuck_raw)
    g = groups.of(rows["junction"][keep], phase_u[keep])
    key_s, s, en = _merge(groups.key(g, start[keep]), start[keep], end[keep])
    occ = _Cover(key_s, en - s)

    # Complete cycles: green, yellow, red clearance in a row of one phase.
    i = np.flatnonzero(ph_code == _C.PHASE_BEGIN_GREEN)
    i = i[i + 2 < len(ph_code)]
    ok = (
        (ph_code[i + 1] == _C.PHASE_BEGIN_YELLOW_CLEARANCE)
        & (ph_code[i + 2] == _C.PHASE_BEGIN_RED_CLEARANCE)
        & (ph_g[i + 1] == ph_g[i])
        & (ph_g[i + 2] == ph_g[i])
        & (ph["ts"][i + 2] + _RED_WINDOW_US <= t_end)
    )
    # Only phases some working presence detector serves.
    served = np.unique(g)
    i = i[ok & np.isin(ph_g[i], served)]
    cg = ph_g[i]
    green_us = ph["ts"][i + 1] - ph["ts"][i]
    gor = occ.between(ph_key[i], ph_key[i + 1]) / np.maximum(green_us, 1)
    ror = occ.between(ph_key[i + 2], ph_key[i + 2] + _RED_WINDOW_US) / _RED_WINDOW_US
    out = np.empty(len(i), SPLIT_CYCLE_DTYPE)
    out["bin"] = (ph["ts"][i + 2] + _RED_WINDOW_US) // bin_us * bin_us
    out["junction"], out["phase"] = groups.junction(cg), groups.param(cg)
    out["green_start"], out["green_s"] = ph["ts"][i], green_us / US_PER_S
    out["gor"], out["ror5"] = gor, ror
    out["failure"] = (gor >= threshold) & (ror >= threshold)
    return out, stuck


@dataclass(frozen=True)
class _Cells:
    """Rows grouped by (time bin, junction, param): the cells of an aggregate table."""

    bin: I64
    junction: npt.NDArray[np.int32]
    param: npt.NDArray[np.int16]
    inverse: I64

    def __len__(self) -> int:
        return len(self.bin)

    def count(self, weights: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        return np.bincount(self.inverse, weights, len(self.bin))


def _cells(
    ts: npt.NDArray[Any], junction: npt.NDArray[Any], param: npt.NDArray[Any], bin_us: int
) -> _Cells:
    raw = junction.astype(np.int64) << 16 | param.astype(np.int64)
    graw, g = np.unique(raw, return_inverse=True)
    b = ts // bin_us
    base = int(b.min()) if len(b) else 0
    key = (b - base) * max(len(graw), 1) + g
    cell, inv = np.unique(key, return_inverse=True)
    n_g = max(len(graw), 1)
    craw = graw[cell % n_g] if len(graw) else np.zeros(0, np.int64)
    return _Cells(
        (cell // n_g + base) * bin_us,
        (craw >> 16).astype(np.int32),
        (craw & 0xFFFF).astype(np.int16),
        inv.astype(np.int64),
    )


def _split_bins(cycles: npt.NDArray[Any], bin_us: int) -> npt.NDArray[Any]:
    c = _cells(cycles["bin"], cycles["junction"], cycles["phase"], bin_us)
    n = c.count()
    out = np.empty(len(c), SPLIT_DTYPE)
    out["bin"], out["junction"], out["phase"] = c.bin, c.junction, c.param
    out["cycles"], out["failures"] = n, c.count(cycles["failure"].astype(np.float64))
    for col in ("green_s", "gor", "ror5"):
        out[col] = c.count(cycles[col]) / n
    return out


def _terminations(e: npt.NDArray[Any], bin_us: int) -> npt.NDArray[Any]:
    term = e[(e["code"] >= _C.PHASE_GAP_OUT) & (e["code"] <= _C.PHASE_FORCE_OFF)]
    c = _cells(term["ts"], term["junction"], term["param"], bin_us)
    out = np.empty(len(c), TERMINATION_DTYPE)
    out["bin"], out["junction"], out["phase"] = c.bin, c.junction, c.param
    for code, col in ((4, "gap_out"), (5, "max_out"), (6, "force_off")):
        out[col] = c.count((term["code"] == code).astype(np.float64))
    return out


def _ped_delay(e: npt.NDArray[Any], bin_us: int, t0: int) -> npt.NDArray[Any]:
    ped = e[np.isin(e["code"], (_C.PED_BEGIN_WALK, _C.PED_BEGIN_CLEARANCE, _C.PED_CALL_REGISTERED))]
    groups = _Groups(ped["junction"], ped["param"], t0)
    g = groups.inverse.astype(np.int64)
    order = np.argsort(g, kind="stable")
    ped, g = ped[order], g[order]
    key = groups.key(g, ped["ts"])
    code = ped["code"]
    prev_same = np.r_[False, g[1:] == g[:-1]]
    prev_code = np.r_[0, code[:-1]]
    # The first call since the last service: the previous pedestrian event of the phase is
    # a clearance (22), or there is none.
    start = (code == _C.PED_CALL_REGISTERED) & (~prev_same | (prev_code == _C.PED_BEGIN_CLEARANCE))
    walk_key = key[code == _C.PED_BEGIN_WALK]
    walk_g = g[code == _C.PED_BEGIN_WALK]
    if len(walk_key) == 0:
        return np.zeros(0, PED_DTYPE)
    w = np.searchsorted(walk_key, key[start], "right")
    ok = w < len(walk_key)
    w = np.minimum(w, len(walk_key) - 1)
    ok &= walk_g[w] == g[start]
    mask = (1 << _TIME_BITS) - 1
    walk_ts = (walk_key[w[ok]] & mask) + t0
    delay = (walk_ts - ped["ts"][start][ok]) / US_PER_S
    sg = g[start][ok]
    c = _cells(walk_ts, groups.junction(sg), groups.param(sg), bin_us)
    n = c.count()
    out = np.empty(len(c), PED_DTYPE)
    out["bin"], out["junction"], out["phase"] = c.bin, c.junction, c.param
    out["samples"] = n
    out["mean_delay_s"] = c.count(delay) / n
    longest = np.zeros(len(c))
    np.maximum.at(longest, c.inverse, delay)
    out["max_delay_s"] = longest
    return out


def _volumes(on: npt.NDArray[Any], bin_us: int) -> npt.NDArray[Any]:
    c = _cells(on["ts"], on["junction"], on["param"], bin_us)
    out = np.empty(len(c), VOLUME_DTYPE)
    out["bin"], out["junction"], out["channel"], out["volume"] = (
        c.bin,
        c.junction,
        c.param,
        c.count(),
    )
    return out


def _approach_volumes(
    on: npt.NDArray[Any], table: npt.NDArray[Any], bin_us: int
) -> npt.NDArray[Any]:
    hit, phase = _wiring(table, on, ("advance", "count"))
    c = _cells(on["ts"][hit], on["junction"][hit], phase[hit], bin_us)
    out = np.empty(len(c), APPROACH_DTYPE)
    out["bin"], out["junction"], out["phase"], out["volume"] = (
        c.bin,
        c.junction,
        c.param,
        c.count(),
    )
    return out
