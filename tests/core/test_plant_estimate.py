"""What equalization identifies about the batteries (bacs_core/manager/plant_estimate.py):
the Tafel slope b from the operating points the controller moved each block through, only
from blocks it trusts, and only from points that have settled by the slowest plausible lag.
Synthetic windows of a known law V/cell = a_i + b·ln I, no simulator."""

from __future__ import annotations

import math

import pytest

from bacs_core.manager.plant_estimate import BlockWindow, PlantEstimator

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
