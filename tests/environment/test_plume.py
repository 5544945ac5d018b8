"""Gaussian plume: stability, Briggs rise and σ against hand-computed values, symmetry, mass
conservation, finite releases, contours and speed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Point

from apps.environment import plume

STACK = plume.Stack(height_m=50.0, diameter_m=2.0, exit_velocity_ms=15.0, exit_temp_k=420.0)


def test_stability_table() -> None:
    day = {"strong": ["A", "A-B", "B", "C", "C"], "slight": ["B", "C", "C", "D", "D"]}
    speeds = [1.5, 2.5, 4.0, 5.5, 7.0]
    for insolation, expected in day.items():
        got = [
            plume.stability_class(u, day=True, insolation_class=insolation, cloud_oktas=2)
            for u in speeds
        ]
        assert got == expected
    night_cloudy = [plume.stability_class(u, day=False, cloud_oktas=5) for u in speeds]
    night_clear = [plume.stability_class(u, day=False, cloud_oktas=2) for u in speeds]
    assert night_cloudy == ["F", "E", "D", "D", "D"]
    assert night_clear == ["F", "F", "E", "D", "D"]
    # Boundaries: 2 m/s belongs to the 2-3 row, 6 m/s to > 6 is not (Turner: "> 6").
    assert plume.stability_class(2.0, day=True, insolation_class="strong", cloud_oktas=0) == "A-B"
    assert plume.stability_class(1.99, day=True, insolation_class="strong", cloud_oktas=0) == "A"
    assert plume.stability_class(3.0, day=False, cloud_oktas=8) == "D"  # overcast
    with pytest.raises(plume.PlumeInputError, match="insolation"):
        plume.stability_class(3.0, day=True, cloud_oktas=1)


def test_insolation_from_sun_and_cloud() -> None:
    assert plume.insolation(65.0, 0) == "strong"
    assert plume.insolation(60.0, 0) == "moderate"
    assert plume.insolation(35.0, 0) == "slight"
    assert plume.insolation(65.0, 6) == "moderate"
    assert plume.insolation(-5.0, 0) is None


def test_briggs_sigmas_by_hand() -> None:
    # Rural D at 1 km: σy = 0.08·1000/√1.1 = 76.277, σz = 0.06·1000/√2.5 = 37.947.
    sy, sz = plume.sigmas([1000.0], "D")
    assert sy[0] == pytest.approx(76.277, rel=1e-4)
    assert sz[0] == pytest.approx(37.947, rel=1e-4)
    # Rural F at 2 km: σz = 0.016·2000/1.6 = 20.0; urban C σz = 0.20 x.
    assert plume.sigmas([2000.0], "F")[1][0] == pytest.approx(20.0)
    assert plume.sigmas([500.0], "C", "urban")[1][0] == pytest.approx(100.0)
    # An intermediate class is the mean of its two classes.
    ab = plume.sigmas([1000.0], "A-B")[0][0]
    assert ab == pytest.approx((0.22 + 0.16) / 2 * 1000 / math.sqrt(1.1))


def test_briggs_rise_by_hand() -> None:
    rise = plume.briggs_rise(STACK, wind_ms=5.0, ambient_temp_k=293.0, stability="D")
    # F_b = g v d² ΔT / (4 Ts) = 9.80616·15·4·127 / (4·420) = 44.478 m⁴/s³ (< 55);
    # ΔTc = 0.0297·420·15^(1/3) / 2^(2/3) = 19.38 K < 127 K: buoyancy-dominated;
    # Δh = 21.425 F_b^(3/4) / u = 73.80 m; x_f = 3.5 · 14 F_b^(5/8) = 525.2 m.
    assert rise.buoyancy_flux == pytest.approx(44.478, rel=1e-4)
    assert rise.dominated_by == "buoyancy"
    assert rise.final_rise_m == pytest.approx(73.80, rel=1e-3)
    assert rise.final_distance_m == pytest.approx(525.2, rel=1e-3)
    # v = 15 ≥ 1.5 u = 7.5: no stack-tip downwash.
    assert rise.release_height_m == 50.0
    # Gradual rise at 200 m: 1.6 F_b^(1/3) 200^(2/3) / 5 = 1.6·3.543·34.20/5 = 38.78 m.
    assert rise.effective_height([200.0], 5.0)[0] == pytest.approx(50 + 38.78, rel=1e-3)
    assert rise.effective_height([2000.0], 5.0)[0] == pytest.approx(50 + 73.80, rel=1e-3)


def test_momentum_stable_and_downwash() -> None:
    cold = plume.Stack(30.0, 1.0, 10.0, 295.0)
    rise = plume.briggs_rise(cold, wind_ms=8.0, ambient_temp_k=293.0, stability="D")
    # ΔT = 2 K < ΔTc: momentum rise 3 d v / u = 3·1·10/8 = 3.75 m; downwash since 10 < 12:
    # h' = 30 + 2·1·(10/8 − 1.5) = 29.5 m.
    assert (rise.dominated_by, rise.final_rise_m) == ("momentum", pytest.approx(3.75))
    assert rise.release_height_m == pytest.approx(29.5)
    stable = plume.briggs_rise(STACK, wind_ms=3.0, ambient_temp_k=293.0, stability="F")
    s = 9.80616 * 0.035 / 293.0
    assert stable.final_rise_m == pytest.approx(2.6 * (stable.buoyancy_flux / (3.0 * s)) ** (1 / 3))


def test_centreline_concentration_by_hand() -> None:
    # Q 100 g/s, u 5 m/s, H 50 m, rural D, 1 km: C = Q/(π u σy σz) · exp(−H²/2σz²)
    # = 100/(π·5·76.277·37.947) · exp(−2500/2879.9) = 2.1994e-3 · 0.41976 g/m³ = 923.2 µg/m³.
    c = plume.concentration(100.0, 5.0, [1000.0], [0.0], [50.0], "D")
    assert c[0] == pytest.approx(923.2, rel=0.01)
    assert plume.concentration(100.0, 5.0, [-10.0], [0.0], [50.0], "D")[0] == 0.0


def test_ground_source_conserves_mass() -> None:
    # Crosswind flux through a plane at x: ∫∫ u C dy dz over z ≥ 0 equals Q (with reflection).
    q, u, x = 10.0, 4.0, 800.0
    sy, sz = plume.sigmas([x], "C")
    ys = np.linspace(-6 * sy[0], 6 * sy[0], 801)
    zs = np.linspace(0.0, 6 * sz[0], 601)
    plane = np.array(
        [
            plume.concentration(
                q, u, np.full(ys.shape, x), ys, np.zeros(ys.shape), "C", receptor_height_m=z
            )
            for z in zs
        ]
    )
    flux = u * np.trapezoid(np.trapezoid(plane, ys, axis=1), zs) * 1e-6
    assert flux == pytest.approx(q, rel=0.01)


def test_grid_symmetry_rotation_and_speed() -> None:
    grid = plume.ReceptorGrid.around(500_000.0, 4_000_000.0, 5000.0, 201, "EPSG:4547")
    kwargs = dict(
        source_east_m=500_000.0,
        source_north_m=4_000_000.0,
        emission_gs=100.0,
        stack=STACK,
        wind_ms=5.0,
        ambient_temp_k=293.0,
        stability="D",
    )
    # How fast is the bench's figure (plume_ms); here, the shape of the answer.
    west = plume.ground_concentration_grid(grid, wind_from_deg=270.0, **kwargs)  # type: ignore[arg-type]
    # Wind from the west: the plume goes east; mirror-symmetric north/south of its axis.
    assert west[:, :100].max() == 0.0 and west[:, 101:].max() > 0
    assert np.allclose(west, west[::-1, :])
    # Wind from the south: the same field rotated, the plume going north.
    south = plume.ground_concentration_grid(grid, wind_from_deg=180.0, **kwargs)  # type: ignore[arg-type]
    # Rows are north, columns east, and the grid's offsets are the same both ways.
    assert np.allclose(south, west.T)


def test_finite_release_and_dose() -> None:
    x, u, duration = np.array([1000.0]), 5.0, 600.0
    # Long after the start of a long release the plume is steady.
    assert plume.finite_release_factor(x, u, "D", elapsed_s=1e5, duration_s=1e6)[0] == (
        pytest.approx(1.0)
    )
    # Before the front can arrive there is nothing; long after the end nothing either.
    assert plume.finite_release_factor(x, u, "D", elapsed_s=10.0, duration_s=duration)[0] < 1e-6
    assert plume.finite_release_factor(x, u, "D", elapsed_s=5000.0, duration_s=duration)[0] < 1e-6
    # The dose ∫ factor dt is the duration (the continuous concentration × T).
    times = np.linspace(0.0, 3000.0, 3001)
    factors = np.array(
        [plume.finite_release_factor(x, u, "D", elapsed_s=t, duration_s=duration)[0] for t in times]
    )
    assert np.trapezoid(factors, times) == pytest.approx(duration, rel=0.01)


def test_contours_are_polygons_in_grid_crs() -> None:
    grid = plume.ReceptorGrid.around(0.0, 0.0, 5000.0, 200, "EPSG:4547")
    field = plume.ground_concentration_grid(
        grid,
        source_east_m=0.0,
        source_north_m=0.0,
        emission_gs=100.0,
        stack=STACK,
        wind_ms=5.0,
        wind_from_deg=270.0,
        ambient_temp_k=293.0,
        stability="D",
    )
    areas = plume.contours(grid, field, [10.0, 50.0, 100.0])
    peak_row, peak_col = np.unravel_index(np.argmax(field), field.shape)
    peak = Point(grid.east_m[peak_col], grid.north_m[peak_row])
    assert all(area.is_valid and area.buffer(1.0).contains(peak) for area in areas.values())
    assert areas[10.0].area > areas[50.0].area > areas[100.0].area > 0
    assert areas[10.0].bounds[0] >= -1.0  # nothing upwind of the source
    with pytest.raises(plume.PlumeInputError, match="shape"):
        plume.contours(grid, field[:10], [1.0])


def test_calm_and_bad_input() -> None:
    with pytest.raises(plume.CalmWindError, match="calm"):
        plume.concentration(1.0, 0.5, [100.0], [0.0], [10.0], "D")
    with pytest.raises(plume.CalmWindError):
        plume.briggs_rise(STACK, wind_ms=0.0, ambient_temp_k=293.0, stability="D")
    with pytest.raises(plume.PlumeInputError, match="stability"):
        plume.sigmas([100.0], "G")
    with pytest.raises(plume.PlumeInputError, match="diameter"):
        plume.Stack(10.0, 0.0, 5.0, 400.0)
    assert plume.wind_at_height(5.0, 50.0, "D") == pytest.approx(5.0 * 5.0**0.15)
