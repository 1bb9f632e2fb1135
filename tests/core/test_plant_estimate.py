"""What equalization identifies about the batteries (bacs_core/manager/plant_estimate.py):
the Tafel slope b from the operating points the controller moved each block through, only
from blocks it trusts, and only from points that have settled by the slowest plausible lag.
Synthetic windows of a known law V/cell = a_i + b·ln I, no simulator."""

from __future__ import annotations

import math

import pytest

from bacs_core.manager.plant_estimate import BlockWindow, PlantEstimate, PlantEstimator

B = 0.045  # V per e-fold per cell, the law's slope
CELLS = 6
PRIOR_A = 0.1  # A, the design float current


def estimator(slowest_lag_s: float = 0.0) -> PlantEstimator:
    return PlantEstimator(0.06, 1800.0, PRIOR_A, slowest_lag_s=slowest_lag_s)


def window(volts: float, amps: float, creep_v_per_s: float = 0.0) -> BlockWindow:
    """Half an hour at one current, sampled every 10 s."""
    w = BlockWindow(1800.0)
    for k in range(0, 1801, 10):
        w.push(float(k), volts + creep_v_per_s * k, amps)
    return w


def feed(
    est: PlantEstimator,
    intercepts: list[float],
    currents: list[float],
    slopes: dict[int, float] | None = None,
    creep_v_per_s: float = 0.0,
) -> None:
    """Every block at every current, each current a stretch of its own."""
    for stretch, amps in enumerate(currents):
        for i, a in enumerate(intercepts):
            b = (slopes or {}).get(i, B)
            volts = CELLS * (a + b * math.log(amps))
            est.add(
                i,
                CELLS,
                window(volts, amps, creep_v_per_s),
                30.0,
                excited=False,
                stretch=float(stretch),
            )


def test_the_slope_comes_from_the_operating_points_whatever_each_blocks_intercept() -> None:
    est = estimator()
    feed(est, [2.1, 2.12, 2.15], [0.05, 0.1, 0.2])
    est.solve()
    assert est.b_fit == pytest.approx(B, rel=1e-6)


def test_too_little_movement_identifies_nothing() -> None:
    est = estimator()
    feed(est, [2.1, 2.12, 2.15], [0.1, 0.105, 0.11])  # 10 % of current: cxx too small
    est.solve()
    assert est.b_fit is None
    assert est.current.b_per_cell == 0.06  # the prior stays


def test_a_block_with_a_soft_short_pulls_the_pooled_slope_low_unless_untrusted() -> None:
    """Much of its current is the short, so its voltage follows ln I at about half the slope."""
    slopes = {3: 0.025}
    pooled = estimator()
    feed(pooled, [2.1, 2.12, 2.15, 2.0], [0.05, 0.1, 0.2], slopes)
    pooled.solve()
    assert pooled.b_fit is not None and pooled.b_fit < 0.9 * B
    trusted = estimator()
    feed(trusted, [2.1, 2.12, 2.15, 2.0], [0.05, 0.1, 0.2], slopes)
    trusted.solve({0, 1, 2})
    assert trusted.b_fit == pytest.approx(B, rel=1e-6)


def test_a_block_still_creeping_is_no_operating_point_by_the_slowest_plausible_lag() -> None:
    """1 mV per cell in ten minutes: settled for the prior's half-hour lag, not for a
    two-hour one, which the estimator must allow for until it knows better."""
    creep = CELLS * 0.001 / 600.0  # V/s on the block
    quick = estimator(slowest_lag_s=0.0)
    feed(quick, [2.1, 2.12], [0.05, 0.1], creep_v_per_s=creep)
    assert all(len(points) == 2 for points in quick.points)
    careful = estimator(slowest_lag_s=7200.0)
    feed(careful, [2.1, 2.12], [0.05, 0.1], creep_v_per_s=creep)
    assert all(len(points) == 0 for points in careful.points)
    settled = estimator(slowest_lag_s=7200.0)
    feed(settled, [2.1, 2.12], [0.05, 0.1], creep_v_per_s=creep / 10)
    assert all(len(points) == 2 for points in settled.points)


def test_an_undisturbed_first_look_counts_however_it_creeps() -> None:
    """Before the controller moves anything the string has floated for hours: its slope
    over a minute is noise."""
    est = estimator(slowest_lag_s=7200.0)
    est.add(0, CELLS, window(13.6, 0.1, 1e-4), 60.0, excited=False, stretch=0.0, undisturbed=True)
    assert len(est.points[0]) == 1


# -- the window, the belief and the double layer ------------------------------------------------


def test_a_window_gives_its_means_and_least_squares_slope_and_forgets_the_old() -> None:
    w = BlockWindow(600.0)
    assert not w.full() and w.spans() == 0.0
    for k in range(0, 1201, 10):
        w.push(1000.0 + k, 13.0 + 0.001 * k, 0.05 if k < 900 else 0.15)
    assert w.spans() == pytest.approx(600.0, abs=10.0)  # the first 600 s are gone
    assert w.samples[0][0] >= 600.0 - 1e-9
    volts, amps, slope = w.means_and_slope()
    assert slope == pytest.approx(0.001, rel=1e-9)
    assert volts == pytest.approx(13.0 + 0.001 * 900, rel=1e-9)  # at the window's mean time
    assert amps == pytest.approx((30 * 0.05 + 31 * 0.15) / 61, rel=1e-9)
    assert w.full()
    w.clear()
    assert not w.samples and w.t0 is None and not w.full()


def test_a_window_is_full_at_four_fifths_of_its_span_with_four_samples() -> None:
    w = BlockWindow(100.0)
    for t in (0.0, 30.0, 60.0):
        w.push(t, 13.0, 0.1)
    assert not w.full()  # 60 s < 80 s
    w.push(80.0, 13.0, 0.1)
    assert w.full()
    few = BlockWindow(100.0)
    for t in (0.0, 90.0, 95.0):
        few.push(t, 13.0, 0.1)
    assert not few.full()  # three samples: no slope to trust


@pytest.mark.parametrize(
    ("theta", "amps", "lag"),
    [(120.0, 0.1, 1200.0), (1.0, 0.1, 60.0), (1e6, 0.1, 12 * 3600.0), (120.0, 0.0, 12 * 3600.0)],
)
def test_the_lag_is_theta_over_the_current_within_plausible_bounds(
    theta: float, amps: float, lag: float
) -> None:
    assert PlantEstimate(0.05, theta, True).lag_s(amps) == pytest.approx(lag)


def relaxing_blocks(
    est: PlantEstimator, kappa: float, b: float, offsets: list[float], hours: float = 12.0
) -> None:
    """Blocks behind a double layer κ (A·s/V per cell), their current stepped between
    0.06 and 0.15 A every two hours; a window of 30 min handed over every 30 s."""
    windows = [BlockWindow(1800.0) for _ in offsets]
    volts = [2.27 + off for off in offsets]
    i0 = [0.1 * math.exp(-(2.27 + off) / b) for off in offsets]  # 0.1 A at the start
    dt = 10.0
    for k in range(round(hours * 3600 / dt)):
        amps = 0.06 if (k * dt // 7200) % 2 else 0.15
        for i, w in enumerate(windows):
            volts[i] += dt * (amps - i0[i] * math.exp(volts[i] / b)) / kappa
            w.push(k * dt, CELLS * volts[i], amps)
            if k % 3 == 0 and w.full():
                est.add(i, CELLS, w, 3 * dt, excited=True, stretch=None)
        if k % 3 == 0:
            est.solve()


def test_the_double_layer_is_identified_from_the_moves_to_a_grid_step() -> None:
    """A 20-minute lag at 0.1 A: κ = τ·I/b. The grid is log-spaced (×1.47 a step)."""
    b = 0.045
    kappa = 1200.0 * 0.1 / b
    est = PlantEstimator(b, 1800.0, PRIOR_A)  # b known: only κ is asked of the windows
    assert not est.current.lag_identified
    relaxing_blocks(est, kappa, b, [0.0, 0.01, -0.01])
    assert est.kappa_fit is not None
    assert kappa / 1.5 <= est.kappa_fit <= kappa * 1.5
    assert est.current.lag_identified
    assert est.current.theta_as == pytest.approx(est.kappa_fit * b)
    assert est.kappa == est.kappa_fit
    assert 1200.0 / 1.5 <= est.current.lag_s(0.1) <= 1200.0 * 1.5


def test_one_block_alone_identifies_no_lag() -> None:
    b = 0.045
    est = PlantEstimator(b, 1800.0, PRIOR_A)
    relaxing_blocks(est, 1200.0 * 0.1 / b, b, [0.0], hours=6.0)
    assert est.kappa_fit is None and not est.current.lag_identified
    assert est.kappa == pytest.approx(1800.0 * PRIOR_A / b)  # the prior's θ / b
