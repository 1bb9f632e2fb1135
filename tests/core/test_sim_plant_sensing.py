"""The simulator's plant and sensing options: what a controller must not assume (issue 10)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from bacs_core.sim.physics import PlantOptions, StringPhysics, make_string
from bacs_core.sim.room import Room, RoomConfig, room_from_url
from bacs_core.sim.sensing import ModuleCalibration, SensingOptions, measure


def step_response(plant: PlantOptions, shunt: float = 0.02) -> tuple[float, float]:
    """Block 0 of a uniform 8-block string: (final drop, time to 63 % of it) after a shunt step."""
    s = StringPhysics(make_string(8, 6, 40.0, 0.0, 1, plant=plant))
    for _ in range(24):
        s.step(3600.0)
    v0 = s.voltages[0]
    s.shunt_a = [shunt] + [0.0] * 7
    trace = []
    for _ in range(6 * 360):
        s.step(10.0)
        trace.append(v0 - s.voltages[0])
    final = trace[-1]
    t63 = next(k for k, d in enumerate(trace) if d >= 0.63 * final) * 10.0
    return final, t63


def test_lag_sets_the_polarisation_time_constant() -> None:
    _, fast = step_response(PlantOptions(lag_s=600.0))
    _, slow = step_response(PlantOptions(lag_s=3600.0))
    assert slow / fast == pytest.approx(6.0, rel=0.25)


def test_tafel_factor_scales_the_block_response() -> None:
    low, _ = step_response(PlantOptions(tafel_factor=0.7))
    high, _ = step_response(PlantOptions(tafel_factor=1.3))
    assert high / low == pytest.approx(1.3 / 0.7, rel=0.15)


def test_slow_component_keeps_drifting_for_hours() -> None:
    s = StringPhysics(make_string(8, 6, 40.0, 0.0, 1, plant=PlantOptions(slow_fraction=0.2)))
    for _ in range(24):
        s.step(3600.0)
    s.shunt_a = [0.03] + [0.0] * 7
    for _ in range(2 * 360):  # 2 h: the polarisation (20 min) has settled
        s.step(10.0)
    after_2h = s.voltages[0]
    for _ in range(6 * 360):
        s.step(10.0)
    assert s.voltages[0] < after_2h - 0.002  # the slow element is still moving


def test_rack_gradient_warms_the_far_end() -> None:
    s = StringPhysics(make_string(10, 6, 40.0, 0.0, 1, plant=PlantOptions(rack_gradient_c=4.0)))
    assert s.temperatures[-1] - s.temperatures[0] == pytest.approx(4.0, abs=0.01)
    for _ in range(48):
        s.step(3600.0)
    assert s.temperatures[-1] - s.temperatures[0] == pytest.approx(4.0, abs=0.5)


def test_a_reading_carries_offset_gain_noise_and_ripple() -> None:
    options = SensingOptions(noise_v=0.005, offset_v=0.003, gain_error=0.0002, ripple_v=0.002)
    rng = random.Random(1)
    cals = [ModuleCalibration.draw(options, rng) for _ in range(200)]
    assert all(abs(c.offset_v) <= 0.003 and abs(c.gain) <= 0.0002 for c in cals)
    assert statistics.pstdev(c.offset_v for c in cals) > 0.001
    cal = ModuleCalibration(0.002, 0.0001)
    reads = [measure(13.6, cal, 0.005, 0.002, rng) for _ in range(4000)]
    bias = 13.6 * 0.0001 + 0.002
    assert statistics.fmean(reads) - 13.6 == pytest.approx(bias, abs=0.0004)
    spread = math.sqrt(0.005**2 + 0.002**2 / 2)  # white noise plus a sine at a random phase
    assert statistics.pstdev(reads) == pytest.approx(spread, rel=0.08)


def test_room_modules_report_their_own_offsets() -> None:
    room = Room(RoomConfig(strings=1, blocks=8, noise_v=0.0, offset_v=0.003, settle_days=0))
    s = room.string(1)
    readings = [d.voltage - v for d, v in zip(s.modules, s.physics.voltages, strict=True)]
    assert len({round(r, 6) for r in readings}) == 8  # each module its own fixed error
    assert all(abs(r) <= 0.003 + 0.0002 * 14 for r in readings)
    room.step(10.0)
    again = [d.voltage - v for d, v in zip(s.modules, s.physics.voltages, strict=True)]
    assert again == pytest.approx(readings, abs=1e-9)  # fixed, not noise


def test_url_options_reach_the_plant_and_the_sensors() -> None:
    room = room_from_url("sim://x?strings=1&blocks=4&lag_min=60&tafel=1.2&offset=0.004&noise=0")
    assert room.config.plant.lag_s == 3600.0
    assert room.config.plant.tafel_factor == 1.2
    assert room.config.offset_v == 0.004
    assert room.string(1).physics.blocks[0].b_cell == pytest.approx(0.043 * 1.2)
