"""Rainfall–runoff per gauge catchment, channel routing, rating curves and stage forecasts.

Forecast model (what the platform predicts with): SCS curve number excess (USDA NRCS,
National Engineering Handbook Part 630, ch. 10, Ia = 0.2 S, millimetres), the SCS
dimensionless unit hydrograph (NEH 630 ch. 16, table 16-1) with lag = 0.6 Tc and Tc by
Kirpich (1940), Muskingum routing between gauges (McCarthy 1938) and a power-law rating.

Truth model (what the simulator makes river levels with): a nonlinear reservoir
(S = K Q^m) fed by a saturation-excess soil bucket, a different structure and
parameterization, so a forecast is scored against something it does not contain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Catchment",
    "Rating",
    "RunoffError",
    "StageForecast",
    "convolve",
    "forecast_stage",
    "kirpich_tc_h",
    "muskingum",
    "nash_sutcliffe",
    "nonlinear_reservoir",
    "peak_time_error",
    "scs_excess",
    "scs_unit_hydrograph",
]

FloatArray = npt.NDArray[np.float64]

# NEH 630 ch. 16 table 16-1: t/Tp and q/qp of the SCS dimensionless unit hydrograph
_SCS_T = np.array([0, .1, .2, .3, .4, .5, .6, .7, .8, .9, 1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7,
                   1.8, 1.9, 2, 2.2, 2.4, 2.6, 2.8, 3, 3.2, 3.4, 3.6, 3.8, 4, 4.5, 5])  # fmt: skip
_SCS_Q = np.array([0, .03, .1, .19, .31, .47, .66, .82, .93, .99, 1, .99, .93, .86, .78, .68,
                   .56, .46, .39, .33, .28, .207, .147, .107, .077, .055, .04, .029, .021,
                   .015, .011, .005, 0])  # fmt: skip


class RunoffError(ValueError):
    """A parameter outside its physical range (CN, areas, Muskingum stability...)."""


def _series(name: str, values: npt.ArrayLike) -> FloatArray:
    a = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(a).all() or (a < 0).any():
        raise RunoffError(f"{name} must be finite and non-negative")
    return a


def amc_curve_number(cn: float, amc: int) -> float:
    """CN for antecedent moisture class I (dry), II (normal) or III (wet) (Chow et al. 1988)."""
    if not 0 < cn <= 100:
        raise RunoffError(f"curve number must be in (0, 100], got {cn}")
    if amc == 1:
        return 4.2 * cn / (10 - 0.058 * cn)
    if amc == 2:
        return cn
    if amc == 3:
        return 23 * cn / (10 + 0.13 * cn)
    raise RunoffError(f"antecedent moisture class must be 1, 2 or 3, got {amc}")


def scs_excess(rain_mm: npt.ArrayLike, cn: float, amc: int = 2) -> FloatArray:
    """Excess rain per step (mm) from rain per step: Q = (P - Ia)² / (P - Ia + S), cumulative.

    S = 25400 / CN - 254 (mm), Ia = 0.2 S.
    """
    p = np.cumsum(_series("rain", rain_mm))
    s = 25400.0 / amc_curve_number(cn, amc) - 254.0
    ia = 0.2 * s
    q = np.where(p > ia, (p - ia) ** 2 / np.maximum(p - ia + s, 1e-12), 0.0)
    return np.diff(q, prepend=0.0)


def kirpich_tc_h(length_m: float, slope: float) -> float:
    """Time of concentration (h), Kirpich: tc[min] = 0.0195 L^0.77 S^-0.385 (L m, S m/m)."""
    if length_m <= 0 or slope <= 0:
        raise RunoffError(f"flow length and slope must be positive, got {length_m}, {slope}")
    return 0.0195 * length_m**0.77 * slope**-0.385 / 60.0


def scs_unit_hydrograph(area_km2: float, tc_h: float, dt_h: float) -> FloatArray:
    """Discharge (m³/s) per mm of excess in one step of ``dt_h`` hours.

    Tp = dt/2 + 0.6 Tc, qp = 0.208 A / Tp (m³/s per mm, A km², Tp h); the curvilinear
    table is sampled at step ends and scaled so the volume is exactly 1 mm over the area.
    """
    if area_km2 <= 0 or tc_h <= 0 or dt_h <= 0:
        raise RunoffError("area, time of concentration and step must be positive")
    tp = dt_h / 2 + 0.6 * tc_h
    t = np.arange(1, math.ceil(5 * tp / dt_h) + 1) * dt_h
    q = np.interp(t / tp, _SCS_T, _SCS_Q) * 0.208 * area_km2 / tp
    volume = q.sum() * dt_h * 3600.0  # m³
    return q * (area_km2 * 1e3 / volume)  # 1 mm over A km² = A·1e3 m³


def convolve(excess_mm: npt.ArrayLike, unit: npt.ArrayLike) -> FloatArray:
    """Direct runoff (m³/s): the excess series convolved with the unit hydrograph."""
    e = np.asarray(excess_mm, dtype=np.float64)
    return np.convolve(e, np.asarray(unit, dtype=np.float64))[: e.size]


def muskingum(inflow: npt.ArrayLike, k_h: float, x: float, dt_h: float) -> FloatArray:
    """Outflow of a reach by Muskingum: O2 = C0 I2 + C1 I1 + C2 O1, O(0) = I(0).

    Requires 0 <= x <= 0.5 and 2 K x <= dt <= 2 K (1 - x), so no coefficient is negative.
    """
    inn = _series("inflow", inflow)
    if not 0 <= x <= 0.5 or k_h <= 0:
        raise RunoffError(f"Muskingum needs K > 0 and 0 <= X <= 0.5, got K={k_h}, X={x}")
    if not 2 * k_h * x <= dt_h <= 2 * k_h * (1 - x):
        raise RunoffError(
            f"step {dt_h} h outside [2KX, 2K(1-X)] = [{2 * k_h * x}, {2 * k_h * (1 - x)}]"
        )
    d = k_h - k_h * x + 0.5 * dt_h
    c0, c1, c2 = (
        (0.5 * dt_h - k_h * x) / d,
        (0.5 * dt_h + k_h * x) / d,
        (k_h - k_h * x - 0.5 * dt_h) / d,
    )
    out = np.empty_like(inn)
    out[0] = inn[0]
    for t in range(1, inn.size):  # a recursion: each step needs the previous outflow
        out[t] = c0 * inn[t] + c1 * inn[t - 1] + c2 * out[t - 1]
    return out


@dataclass(frozen=True)
class Rating:
    """Stage–discharge rating Q = a (h - h0)^b (h in m above the gauge datum)."""

    a: float
    h0: float
    b: float

    def __post_init__(self) -> None:
        if self.a <= 0 or self.b <= 0:
            raise RunoffError(f"rating needs a > 0 and b > 0, got a={self.a}, b={self.b}")

    def discharge(self, stage_m: npt.ArrayLike) -> FloatArray:
        h = np.asarray(stage_m, dtype=np.float64)
        return self.a * np.maximum(h - self.h0, 0.0) ** self.b

    def stage(self, discharge_m3s: npt.ArrayLike) -> FloatArray:
        q = _series("discharge", discharge_m3s)
        return self.h0 + (q / self.a) ** (1.0 / self.b)


@dataclass(frozen=True)
class Catchment:
    """A gauge's own catchment (the part not upstream of another gauge)."""

    area_km2: float
    length_m: float
    slope: float
    cn: float
    baseflow_m3s: float = 0.0


@dataclass(frozen=True)
class StageForecast:
    """Forecast stage per step, and the first step crossing the warning level."""

    stage_m: FloatArray
    discharge_m3s: FloatArray
    warning_step: int | None
    warning_in_h: float | None


def forecast_stage(
    rain_mm: npt.ArrayLike,
    catchment: Catchment,
    rating: Rating,
    *,
    dt_h: float,
    warning_stage_m: float,
    now_step: int,
    amc: int = 2,
    upstream_m3s: npt.ArrayLike | None = None,
    upstream_k_h: float = 1.0,
    upstream_x: float = 0.2,
) -> StageForecast:
    """Stage at a gauge from observed rain (``[:now_step]``) plus forecast rain after it.

    ``rain_mm`` covers the whole horizon (observed then forecast, zeros if none). The
    upstream gauge's hydrograph, if given, is routed by Muskingum and added.
    ``warning_in_h`` is counted from ``now_step``; a crossing already in the past gives 0.
    """
    rain = _series("rain", rain_mm)
    if not 0 <= now_step <= rain.size:
        raise RunoffError(f"now_step {now_step} outside the {rain.size}-step rain series")
    unit = scs_unit_hydrograph(
        catchment.area_km2, kirpich_tc_h(catchment.length_m, catchment.slope), dt_h
    )
    q = convolve(scs_excess(rain, catchment.cn, amc), unit) + catchment.baseflow_m3s
    if upstream_m3s is not None:
        up = _series("upstream discharge", upstream_m3s)
        if up.size != rain.size:
            raise RunoffError("upstream hydrograph and rain series differ in length")
        q = q + muskingum(up, upstream_k_h, upstream_x, dt_h)
    stage = rating.stage(q)
    over = np.flatnonzero(stage >= warning_stage_m)
    step = int(over[0]) if over.size else None
    when = None if step is None else max(step - now_step, 0) * dt_h
    return StageForecast(stage, q, step, when)


def nonlinear_reservoir(
    rain_mm: npt.ArrayLike,
    area_km2: float,
    *,
    dt_h: float,
    soil_capacity_mm: float = 60.0,
    soil_initial_mm: float = 20.0,
    k: float = 8.0,
    m: float = 0.6,
    baseflow_m3s: float = 0.0,
    substeps: int = 12,
) -> FloatArray:
    """The simulator's "truth": a soil bucket spills saturation excess into a nonlinear
    reservoir S = k Q^m (S mm, Q mm/h), integrated explicitly in ``substeps`` per step.

    Returns discharge (m³/s). Storage infiltrates the bucket first (fraction filled grows
    the runoff share, Xinanjiang-like: runoff = P (W / Wm)²), the reservoir drains by
    Q = (S / k)^(1/m).
    """
    rain = _series("rain", rain_mm)
    if area_km2 <= 0 or k <= 0 or m <= 0 or soil_capacity_mm <= 0:
        raise RunoffError("area, k, m and soil capacity must be positive")
    w = min(max(soil_initial_mm, 0.0), soil_capacity_mm)
    s = 0.0
    h = dt_h / substeps
    out = np.empty(rain.size)
    for t, p_step in enumerate(rain):  # explicit time stepping of two coupled stores
        p = p_step / substeps
        q_sum = 0.0
        for _ in range(substeps):
            runoff = p * (w / soil_capacity_mm) ** 2
            w = min(w + p - runoff, soil_capacity_mm)
            s += runoff
            q = min((s / k) ** (1.0 / m), s / h)  # mm/h, never more than the store
            s -= q * h
            q_sum += q
        out[t] = q_sum / substeps * area_km2 / 3.6 + baseflow_m3s  # mm/h over km² -> m³/s
    return out


def nash_sutcliffe(observed: npt.ArrayLike, simulated: npt.ArrayLike) -> float:
    """NSE = 1 - Σ(o - s)² / Σ(o - ō)² (Nash & Sutcliffe 1970); 1 is perfect."""
    o = np.asarray(observed, dtype=np.float64)
    s = np.asarray(simulated, dtype=np.float64)
    if o.shape != s.shape or o.size < 2:
        raise RunoffError("observed and simulated must be equal-length series of >= 2 values")
    spread = ((o - o.mean()) ** 2).sum()
    if spread == 0:
        raise RunoffError("observed series is constant: NSE is undefined")
    return float(1.0 - ((o - s) ** 2).sum() / spread)


def peak_time_error(observed: npt.ArrayLike, simulated: npt.ArrayLike, dt_h: float) -> float:
    """Simulated minus observed peak time (h): positive means the forecast peak is late."""
    o = np.asarray(observed, dtype=np.float64)
    s = np.asarray(simulated, dtype=np.float64)
    if o.size == 0 or o.shape != s.shape:
        raise RunoffError("observed and simulated must be equal-length, non-empty series")
    return float((int(np.argmax(s)) - int(np.argmax(o))) * dt_h)
