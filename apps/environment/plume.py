"""Gaussian plume dispersion from a stack: stability, plume rise, σ, concentration grids, contours.

Methods (all as tabulated in D. B. Turner, *Workbook of Atmospheric Dispersion Estimates*,
2nd ed., 1994, and in the EPA ISC3 user's guide, vol. II, 1995):

* Pasquill–Gifford stability class from the 10 m wind speed and insolation (day) or cloud
  cover (night), Turner's (1964) table; insolation from solar elevation and cloud.
* Briggs (1969, 1971, 1975) plume rise: buoyancy and momentum fluxes, the crossover temperature
  difference between buoyancy- and momentum-dominated rise, the unstable/neutral and stable
  final-rise formulas, gradual (2/3-law) rise before the final distance, and Briggs (1974)
  stack-tip downwash.
* Briggs (1973) σy/σz for open country (rural) and urban areas; intermediate classes (A–B,
  B–C, C–D) take the mean of the two classes' σ (Turner's advice).
* Ground-level (or any receptor height) concentration with full ground reflection, on receptor
  grids in the grid's metric CRS, the wind given as the meteorological direction it blows *from*.
* A release of finite duration T: the continuous plume cut to the segment between its front
  (u·t) and its tail (u·(t − T)) and smeared along-wind with σx = σy (Palazzi et al., 1982).
  Integrated over all time it gives exactly the continuous concentration × T (the dose).

Calm winds: below `CALM_THRESHOLD_MS` (1 m/s, the ISC convention) the Gaussian plume does not
apply (concentration ∝ 1/u) and `CalmWindError` is raised; a calm needs a puff model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf
from shapely.geometry import MultiPolygon, Polygon

G: Final = 9.80616  # m/s², the value ISC uses
CALM_THRESHOLD_MS: Final = 1.0
CLASSES: Final = ("A", "B", "C", "D", "E", "F")

# Potential-temperature gradients for stable rise (ISC3: E 0.020 K/m, F 0.035 K/m).
_DTHETA_DZ: Final = {"E": 0.020, "F": 0.035}
# Wind-profile exponents (ISC3 defaults) by class A..F.
_WIND_EXPONENT: Final = {
    "rural": (0.07, 0.07, 0.10, 0.15, 0.35, 0.55),
    "urban": (0.15, 0.15, 0.20, 0.25, 0.30, 0.30),
}


class PlumeInputError(ValueError):
    """Inputs the plume model cannot use (names the one at fault)."""


class CalmWindError(PlumeInputError):
    """Wind below the calm threshold: the steady Gaussian plume does not apply."""


# -- stability ----------------------------------------------------------------------------

# Turner (1964) / Pasquill table: rows by 10 m wind speed upper bound; day columns strong,
# moderate, slight insolation; night columns ≥ 4/8 low cloud ("thin overcast"), ≤ 3/8 cloud.
# Pasquill leaves night, < 2 m/s blank; F is the usual convention (EPA, ISC preprocessors).
_SPEED_BOUNDS: Final = (2.0, 3.0, 5.0, 6.0)
_DAY: Final = (
    ("A", "A-B", "B"),
    ("A-B", "B", "C"),
    ("B", "B-C", "C"),
    ("C", "C-D", "D"),
    ("C", "D", "D"),
)
_NIGHT: Final = (("F", "F"), ("E", "F"), ("D", "E"), ("D", "D"), ("D", "D"))
INSOLATION: Final = ("strong", "moderate", "slight")


def insolation(solar_elevation_deg: float, cloud_oktas: float) -> str | None:
    """Turner's insolation class from solar elevation, lowered by cloud; None at night.

    Above 60° strong, 35–60° moderate, up to 35° slight (Turner 1964). Cloud of 5/8 or more
    lowers the class one step (strong → moderate → slight), a simplification of Turner's
    cloud-ceiling rules; full overcast (8/8) is handled by `stability_class` as neutral.
    """
    if not 0 <= cloud_oktas <= 8:
        raise PlumeInputError(f"cloud cover must be 0..8 oktas, got {cloud_oktas}")
    if solar_elevation_deg <= 0:
        return None
    step = 0 if solar_elevation_deg > 60 else 1 if solar_elevation_deg > 35 else 2
    if cloud_oktas >= 5:
        step = min(step + 1, 2)
    return INSOLATION[step]


def stability_class(
    wind_speed_ms: float, *, day: bool, insolation_class: str | None = None, cloud_oktas: float
) -> str:
    """Pasquill–Gifford class (``"A"``..``"F"`` or ``"A-B"``, ``"B-C"``, ``"C-D"``).

    Parameters
    ----------
    wind_speed_ms : float
        Wind speed at 10 m.
    day : bool
        Sun above the horizon (with `insolation_class`), else night (with `cloud_oktas`).
    insolation_class : str, optional
        ``strong``, ``moderate`` or ``slight`` (see `insolation`); required by day.
    cloud_oktas : float
        Total cloud cover, 0..8. Overcast (8/8) is neutral, D, day or night.

    >>> stability_class(2.5, day=True, insolation_class="strong", cloud_oktas=1)
    'A-B'
    >>> stability_class(2.5, day=False, cloud_oktas=2)
    'F'
    """
    if not np.isfinite(wind_speed_ms) or wind_speed_ms < 0:
        raise PlumeInputError(f"wind speed must be ≥ 0 m/s, got {wind_speed_ms}")
    if not 0 <= cloud_oktas <= 8:
        raise PlumeInputError(f"cloud cover must be 0..8 oktas, got {cloud_oktas}")
    if cloud_oktas >= 8:
        return "D"
    row = int(np.searchsorted(_SPEED_BOUNDS, wind_speed_ms, side="right"))
    if day:
        if insolation_class not in INSOLATION:
            raise PlumeInputError(
                f"by day the insolation class must be one of {INSOLATION}, got {insolation_class!r}"
            )
        return _DAY[row][INSOLATION.index(insolation_class)]
    return _NIGHT[row][0 if cloud_oktas >= 4 else 1]


def _classes_of(stability: str) -> tuple[str, ...]:
    parts = tuple(stability.split("-"))
    if not parts or any(p not in CLASSES for p in parts) or len(parts) > 2:
        raise PlumeInputError(f"unknown stability class {stability!r}")
    return parts


def wind_at_height(
    wind_10m_ms: float, height_m: float, stability: str, terrain: str = "rural"
) -> float:
    """Power-law wind at a height from the 10 m wind (ISC3 exponents)."""
    if terrain not in _WIND_EXPONENT:
        raise PlumeInputError(f"terrain must be rural or urban, got {terrain!r}")
    exponents = [_WIND_EXPONENT[terrain][CLASSES.index(c)] for c in _classes_of(stability)]
    return float(wind_10m_ms * (max(height_m, 10.0) / 10.0) ** float(np.mean(exponents)))


# -- dispersion coefficients ------------------------------------------------------------------


def _sigma_one(x: NDArray[np.float64], cls: str, terrain: str) -> tuple[NDArray[np.float64], ...]:
    if terrain == "rural":
        sy_coef = {"A": 0.22, "B": 0.16, "C": 0.11, "D": 0.08, "E": 0.06, "F": 0.04}[cls]
        sigma_y = sy_coef * x / np.sqrt(1 + 0.0001 * x)
        if cls == "A":
            sigma_z = 0.20 * x
        elif cls == "B":
            sigma_z = 0.12 * x
        elif cls == "C":
            sigma_z = 0.08 * x / np.sqrt(1 + 0.0002 * x)
        elif cls == "D":
            sigma_z = 0.06 * x / np.sqrt(1 + 0.0015 * x)
        elif cls == "E":
            sigma_z = 0.03 * x / (1 + 0.0003 * x)
        else:
            sigma_z = 0.016 * x / (1 + 0.0003 * x)
        return sigma_y, sigma_z
    if terrain != "urban":
        raise PlumeInputError(f"terrain must be rural or urban, got {terrain!r}")
    if cls in ("A", "B"):
        return 0.32 * x / np.sqrt(1 + 0.0004 * x), 0.24 * x * np.sqrt(1 + 0.001 * x)
    if cls == "C":
        return 0.22 * x / np.sqrt(1 + 0.0004 * x), 0.20 * x
    if cls == "D":
        return 0.16 * x / np.sqrt(1 + 0.0004 * x), 0.14 * x / np.sqrt(1 + 0.0003 * x)
    return 0.11 * x / np.sqrt(1 + 0.0004 * x), 0.08 * x / np.sqrt(1 + 0.0015 * x)


def sigmas(
    distance_m: ArrayLike, stability: str, terrain: str = "rural"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Briggs (1973) σy, σz (m) at downwind distances (m); meant for 100 m .. 10 km.

    >>> sy, sz = sigmas([1000.0], "D")
    >>> round(float(sy[0]), 2), round(float(sz[0]), 2)
    (76.28, 37.95)
    """
    x = np.asarray(distance_m, dtype=np.float64)
    pairs = [_sigma_one(x, cls, terrain) for cls in _classes_of(stability)]
    sigma_y = np.mean([p[0] for p in pairs], axis=0)
    sigma_z = np.mean([p[1] for p in pairs], axis=0)
    return sigma_y, sigma_z


# -- plume rise ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """A stack: physical height, inner diameter, exit velocity and temperature."""

    height_m: float
    diameter_m: float
    exit_velocity_ms: float
    exit_temp_k: float

    def __post_init__(self) -> None:
        for name in ("height_m", "diameter_m", "exit_temp_k"):
            if not getattr(self, name) > 0:
                raise PlumeInputError(f"stack {name} must be > 0, got {getattr(self, name)}")
        if self.exit_velocity_ms < 0:
            raise PlumeInputError(f"stack exit velocity must be ≥ 0, got {self.exit_velocity_ms}")


@dataclass(frozen=True)
class PlumeRise:
    """Briggs plume rise of one stack in one weather.

    Attributes
    ----------
    buoyancy_flux : float
        F_b = g v d² (Ts − Ta) / (4 Ts), m⁴/s³.
    momentum_flux : float
        F_m = v² d² Ta / (4 Ts), m⁴/s².
    dominated_by : str
        ``buoyancy`` or ``momentum`` (Ts − Ta against the crossover ΔTc).
    final_rise_m : float
        Final rise Δh.
    final_distance_m : float
        Distance to final rise (buoyant plumes; 0 for momentum rise, reached at once).
    release_height_m : float
        Stack height, lowered by stack-tip downwash when that applies.
    """

    buoyancy_flux: float
    momentum_flux: float
    dominated_by: str
    final_rise_m: float
    final_distance_m: float
    release_height_m: float

    def effective_height(self, distance_m: ArrayLike, wind_ms: float) -> NDArray[np.float64]:
        """Release height plus rise at each distance: 2/3-law gradual rise
        Δh(x) = 1.6 F_b^(1/3) x^(2/3) / u before the final distance (buoyant plumes),
        the final rise after."""
        x = np.maximum(np.asarray(distance_m, dtype=np.float64), 0.0)
        if self.dominated_by == "momentum" or self.final_distance_m <= 0:
            return np.full(x.shape, self.release_height_m + self.final_rise_m)
        gradual = 1.6 * self.buoyancy_flux ** (1 / 3) * x ** (2 / 3) / wind_ms
        rise = np.where(
            x < self.final_distance_m, np.minimum(gradual, self.final_rise_m), self.final_rise_m
        )
        return self.release_height_m + rise


def briggs_rise(
    stack: Stack,
    *,
    wind_ms: float,
    ambient_temp_k: float,
    stability: str,
    stack_tip_downwash: bool = True,
) -> PlumeRise:
    """Briggs plume rise as in ISC3 (vol. II §1.1.4), with optional stack-tip downwash.

    Parameters
    ----------
    stack : Stack
    wind_ms : float
        Wind at stack top (see `wind_at_height`); at least the calm threshold.
    ambient_temp_k : float
    stability : str
        A..F (intermediate classes use their more stable member for the stable/unstable choice).
    stack_tip_downwash : bool
        Briggs (1974): when v < 1.5 u the release height is lowered by 2 d (1.5 − v/u).
    """
    _check_wind(wind_ms)
    if not ambient_temp_k > 0:
        raise PlumeInputError(f"ambient temperature must be > 0 K, got {ambient_temp_k}")
    cls = _classes_of(stability)[-1]
    v, d, ts, ta = stack.exit_velocity_ms, stack.diameter_m, stack.exit_temp_k, ambient_temp_k
    height = stack.height_m
    if stack_tip_downwash and v < 1.5 * wind_ms:
        height = max(height + 2.0 * d * (v / wind_ms - 1.5), 0.0)
    dt = max(ts - ta, 0.0)
    fb = G * v * d * d * dt / (4.0 * ts)
    fm = v * v * d * d * ta / (4.0 * ts)
    momentum_rise = 3.0 * d * v / wind_ms
    if cls in ("E", "F"):
        s = G * _DTHETA_DZ[cls] / ta
        crossover = 0.019582 * ts * v * np.sqrt(s)
        if dt > 0 and dt >= crossover:
            rise = 2.6 * (fb / (wind_ms * s)) ** (1 / 3)
            return PlumeRise(fb, fm, "buoyancy", rise, 2.0715 * wind_ms / np.sqrt(s), height)
        rise = min(1.5 * (fm / (wind_ms * np.sqrt(s))) ** (1 / 3), momentum_rise)
        return PlumeRise(fb, fm, "momentum", rise, 0.0, height)
    if fb < 55.0:
        crossover = 0.0297 * ts * v ** (1 / 3) / d ** (2 / 3)
        x_star = 14.0 * fb ** (5 / 8)
        buoyant_rise = 21.425 * fb**0.75 / wind_ms
    else:
        crossover = 0.00575 * ts * v ** (2 / 3) / d ** (1 / 3)
        x_star = 34.0 * fb**0.4
        buoyant_rise = 38.71 * fb**0.6 / wind_ms
    if dt > 0 and dt >= crossover:
        return PlumeRise(fb, fm, "buoyancy", buoyant_rise, 3.5 * x_star, height)
    return PlumeRise(fb, fm, "momentum", momentum_rise, 0.0, height)


# -- concentration --------------------------------------------------------------------------


def _check_wind(wind_ms: float, calm_threshold: float = CALM_THRESHOLD_MS) -> None:
    if not np.isfinite(wind_ms):
        raise PlumeInputError(f"wind speed must be finite, got {wind_ms}")
    if wind_ms < calm_threshold:
        raise CalmWindError(
            f"wind {wind_ms} m/s is below the calm threshold {calm_threshold} m/s: "
            "the Gaussian plume does not apply"
        )


def plume_frame(
    east_m: ArrayLike,
    north_m: ArrayLike,
    source_east_m: float,
    source_north_m: float,
    wind_from_deg: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Downwind and crosswind distances of receptors from a source.

    The wind blows *from* `wind_from_deg` (meteorological, clockwise from north), so the plume
    travels toward ``wind_from_deg + 180``.
    """
    theta = np.deg2rad(wind_from_deg)
    dx = np.asarray(east_m, dtype=np.float64) - source_east_m
    dy = np.asarray(north_m, dtype=np.float64) - source_north_m
    downwind = -dx * np.sin(theta) - dy * np.cos(theta)
    crosswind = dx * np.cos(theta) - dy * np.sin(theta)
    return downwind, crosswind


def concentration(
    emission_gs: float,
    wind_ms: float,
    downwind_m: ArrayLike,
    crosswind_m: ArrayLike,
    effective_height_m: ArrayLike,
    stability: str,
    *,
    terrain: str = "rural",
    receptor_height_m: float = 0.0,
    calm_threshold: float = CALM_THRESHOLD_MS,
) -> NDArray[np.float64]:
    """Continuous-release concentration, µg/m³, with full ground reflection.

    C = Q / (2π u σy σz) · exp(−y²/2σy²) · [exp(−(z−H)²/2σz²) + exp(−(z+H)²/2σz²)];
    zero upwind (x ≤ 0). Distances below 1 m are taken as 1 m (σ → 0 at the source).
    """
    _check_wind(wind_ms, calm_threshold)
    if emission_gs < 0:
        raise PlumeInputError(f"emission rate must be ≥ 0 g/s, got {emission_gs}")
    x = np.asarray(downwind_m, dtype=np.float64)
    y = np.asarray(crosswind_m, dtype=np.float64)
    h = np.asarray(effective_height_m, dtype=np.float64)
    sigma_y, sigma_z = sigmas(np.maximum(x, 1.0), stability, terrain)
    z = receptor_height_m
    vertical = np.exp(-((z - h) ** 2) / (2 * sigma_z**2)) + np.exp(
        -((z + h) ** 2) / (2 * sigma_z**2)
    )
    c = (
        emission_gs
        / (2 * np.pi * wind_ms * sigma_y * sigma_z)
        * np.exp(-(y**2) / (2 * sigma_y**2))
        * vertical
    )
    return np.where(x > 0, c * 1e6, 0.0)


def finite_release_factor(
    downwind_m: ArrayLike,
    wind_ms: float,
    stability: str,
    *,
    elapsed_s: float,
    duration_s: float,
    terrain: str = "rural",
) -> NDArray[np.float64]:
    """Share (0..1) of the continuous-plume concentration present at time `elapsed_s` after the
    start of a release lasting `duration_s`: ½[erf((x − u(t − T))/√2σx) − erf((x − ut)/√2σx)],
    σx = σy (Palazzi et al. 1982). Multiply `concentration` by it."""
    _check_wind(wind_ms)
    if duration_s <= 0:
        raise PlumeInputError(f"release duration must be > 0 s, got {duration_s}")
    x = np.maximum(np.asarray(downwind_m, dtype=np.float64), 1.0)
    sigma_x, _ = sigmas(x, stability, terrain)
    root = np.sqrt(2.0) * sigma_x
    tail = np.maximum(elapsed_s - duration_s, 0.0)
    head = max(elapsed_s, 0.0)
    return 0.5 * (erf((x - wind_ms * tail) / root) - erf((x - wind_ms * head) / root))


@dataclass(frozen=True)
class ReceptorGrid:
    """A regular receptor grid in a metric CRS (e.g. EPSG:4547 for Changzhi)."""

    east_m: NDArray[np.float64]  # 1-D, ascending
    north_m: NDArray[np.float64]  # 1-D, ascending
    crs: str

    @classmethod
    def around(
        cls, east_m: float, north_m: float, half_width_m: float, cells: int, crs: str
    ) -> ReceptorGrid:
        """A square of `cells` × `cells` receptors centred on a point."""
        if cells < 2 or half_width_m <= 0:
            raise PlumeInputError("a grid needs ≥ 2 cells a side and a positive half width")
        offsets = np.linspace(-half_width_m, half_width_m, cells)
        return cls(east_m + offsets, north_m + offsets, crs)


def ground_concentration_grid(
    grid: ReceptorGrid,
    *,
    source_east_m: float,
    source_north_m: float,
    emission_gs: float,
    stack: Stack,
    wind_ms: float,
    wind_from_deg: float,
    ambient_temp_k: float,
    stability: str,
    terrain: str = "rural",
    stack_tip_downwash: bool = True,
    duration_s: float | None = None,
    elapsed_s: float | None = None,
) -> NDArray[np.float64]:
    """Ground-level µg/m³ on a grid, rows = north, columns = east (vectorized).

    With `duration_s` and `elapsed_s`, a finite release seen at that time
    (`finite_release_factor`); otherwise the continuous (steady) plume.
    """
    east, north = np.meshgrid(grid.east_m, grid.north_m)
    downwind, crosswind = plume_frame(east, north, source_east_m, source_north_m, wind_from_deg)
    rise = briggs_rise(
        stack,
        wind_ms=wind_ms,
        ambient_temp_k=ambient_temp_k,
        stability=stability,
        stack_tip_downwash=stack_tip_downwash,
    )
    heights = rise.effective_height(downwind, wind_ms)
    c = concentration(
        emission_gs, wind_ms, downwind, crosswind, heights, stability, terrain=terrain
    )
    if duration_s is not None:
        if elapsed_s is None:
            raise PlumeInputError("a finite release needs elapsed_s as well as duration_s")
        c = c * finite_release_factor(
            downwind,
            wind_ms,
            stability,
            elapsed_s=elapsed_s,
            duration_s=duration_s,
            terrain=terrain,
        )
    return c


def contours(
    grid: ReceptorGrid, values: NDArray[np.float64], thresholds: ArrayLike
) -> dict[float, MultiPolygon]:
    """Areas at or above each threshold, as shapely polygons in the grid's CRS (contourpy)."""
    from contourpy import FillType, contour_generator

    if values.shape != (grid.north_m.size, grid.east_m.size):
        raise PlumeInputError(
            f"values shape {values.shape} is not the grid's {(grid.north_m.size, grid.east_m.size)}"
        )
    generator = contour_generator(
        x=grid.east_m, y=grid.north_m, z=values, fill_type=FillType.OuterOffset
    )
    areas: dict[float, MultiPolygon] = {}
    for threshold in np.asarray(thresholds, dtype=np.float64).ravel():
        filled = generator.filled(float(threshold), np.inf)
        points_list, offsets_list = filled[0], filled[1]
        polygons = []
        for points, offsets in zip(points_list, offsets_list, strict=True):
            xy = np.asarray(points, dtype=np.float64)
            cuts = np.asarray(offsets, dtype=np.int64)
            rings = [xy[cuts[i] : cuts[i + 1]] for i in range(cuts.size - 1)]
            polygons.append(Polygon(rings[0], rings[1:]))
        areas[float(threshold)] = MultiPolygon(polygons)
    return areas
