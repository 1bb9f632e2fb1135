"""The battery model against the figures of battery-domain.md §4."""

from __future__ import annotations

import pytest

from bacs_core.sim.physics import ChargerMode, StringPhysics, block_preset, make_string


def run(s: StringPhysics, seconds: float, dt: float = 60.0) -> None:
    for _ in range(round(seconds / dt)):
        s.step(dt)


def test_float_current_is_about_one_milliamp_per_ampere_hour() -> None:
    s = StringPhysics(make_string(24, 6, 100.0, spread_sigma=0.0, seed=1))
    run(s, 3600 * 6, 300)
    assert s.string_current_a == pytest.approx(0.1, rel=0.25)
    assert sum(s.voltages) / s.n == pytest.approx(6 * 2.27, abs=0.02)


def test_float_voltages_drift_apart_without_balancing() -> None:
    s = StringPhysics(make_string(64, 6, 100.0, spread_sigma=0.6, seed=1))
    run(s, 2 * 86400, 300)
    mean = sum(s.voltages) / s.n
    assert max(s.voltages) - mean > 0.2  # §4.7: +0.78/−0.34 V class with outliers
    assert mean - min(s.voltages) > 0.15
    assert sum(s.voltages) == pytest.approx(64 * 6 * 2.27, rel=1e-3)  # the charger holds the string


def test_float_voltage_falls_about_3_mv_per_kelvin_per_cell_at_constant_current() -> None:
    s = StringPhysics(make_string(1, 6, 100.0, spread_sigma=0.0, seed=1))
    run(s, 3600 * 4)
    current = s.string_current_a
    s.mode = ChargerMode.FLOAT
    cold = s.voltages[0]
    s.temperatures[0] = 35.0
    eta = s._eta_for_current(0, current)  # polarisation that carries the same current at 35 °C
    s.eta[0] = eta
    s._update_voltages()
    assert (s.voltages[0] - cold) / 10.0 / 6 == pytest.approx(-0.003, abs=0.0007)


def test_discharge_at_the_ten_hour_rate_ends_near_1_8_v_per_cell() -> None:
    s = StringPhysics(make_string(4, 6, 100.0, spread_sigma=0.2, seed=2))
    s.mode, s.load_a = ChargerMode.DISCHARGE, 10.0
    s.step(60)
    start = s.voltages[0] / 6
    run(s, 9.5 * 3600)
    end = s.voltages[0] / 6
    assert start == pytest.approx(2.11, abs=0.03)
    assert end == pytest.approx(1.85, abs=0.08)
    assert s.string_current_a == -10.0


def test_open_breaker_stops_all_current() -> None:
    s = StringPhysics(make_string(8, 6, 100.0, seed=3))
    s.breaker_closed = False
    run(s, 600)
    assert s.string_current_a == 0.0
    s.mode, s.load_a = ChargerMode.DISCHARGE, 20.0
    run(s, 600)
    assert s.string_current_a == 0.0


def test_shunting_a_block_lowers_it_and_raises_the_others() -> None:
    s = StringPhysics(make_string(16, 6, 40.0, spread_sigma=0.0, seed=4))
    run(s, 3600, 60)
    before = list(s.voltages)
    s.shunt_a[0] = 0.15
    run(s, 4 * 3600, 60)
    assert s.voltages[0] < before[0] - 0.1
    assert s.voltages[1] > before[1]
    assert s.string_current_a > 0.04


def test_thermal_runaway_heats_the_block_ever_faster() -> None:
    s = StringPhysics(make_string(32, 6, 100.0, seed=5))
    run(s, 3600, 60)
    s.thermal_runaway(11, 3.0)
    run(s, 3 * 3600, 60)
    after_3h = s.temperatures[11]
    run(s, 3 * 3600, 60)
    assert s.temperatures[11] - s.ambient_c > 15.0
    assert s.temperatures[11] - after_3h > after_3h - s.ambient_c  # accelerating
    assert max(t for i, t in enumerate(s.temperatures) if i != 11) < 27.0


def test_a_hot_room_without_compensation_doubles_the_float_current_per_10_kelvin() -> None:
    s = StringPhysics(make_string(24, 6, 100.0, seed=7))
    s.temp_comp_enabled = False
    run(s, 6 * 3600, 300)
    cool = s.string_current_a
    s.set_ambient(35.0)
    run(s, 3 * 86400, 300)
    assert s.string_current_a / cool == pytest.approx(2.0, rel=0.35)


def test_soft_short_drains_a_block() -> None:
    s = StringPhysics(make_string(16, 6, 100.0, seed=6))
    s.soft_short(3, 0.25)
    run(s, 5 * 86400, 300)
    assert s.soc[3] < 0.9
    assert s.voltages[3] < min(v for i, v in enumerate(s.voltages) if i != 3)


def test_presets_follow_the_parameter_table() -> None:
    block = block_preset(6, 100.0)
    assert 4.0 < block.r_mohm < 6.0  # §4.3: 4–6 mΩ
    assert block.i0_25_a == pytest.approx(0.0063, rel=0.3)
    cell = block_preset(1, 1000.0)
    assert 0.2 < cell.r_mohm < 0.5
