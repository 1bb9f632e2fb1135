"""The thermal-runaway detector at its edges: each criterion alone, just below and just above
its threshold; the rate estimator from its first five minutes to hours later; the float-current
baseline as it is learned, follows slow change and refuses a runaway's own current; the
suppression after a discharge; several strings at once.

Values are chosen so the arithmetic is exact in binary floating point (steps of 225 s, ramps of
1/8 K, currents of 1/4 A), so "exactly at the threshold" really is exact. Defaults under test:
pre-alert 5 K above ambient or 2 K/h on float or 2× the float-current baseline; trip 15 K
alone, 60 °C, or 10 K with 5 K/h or 3× the current; two consecutive cycles confirm.
"""

from __future__ import annotations

import json

import pytest

from bacs_core.manager.runaway import RunawayDetector, RunawaySettings, RunawayStatus, StringThermal
from bacs_core.snapshot import ChargeState

FLOAT = ChargeState.FLOAT
BLOCKS = 8


def string(
    temps: list[float | None] | float,
    *,
    index: int = 1,
    ambient: float | None = 25.0,
    current: float | None = None,
    state: ChargeState = FLOAT,
    balancing: bool = False,
) -> StringThermal:
    if not isinstance(temps, list):
        temps = [temps] + [25.0] * (BLOCKS - 1)
    return StringThermal(index, temps, ambient, current, state, balancing)


def steady(d: RunawayDetector, t0: float, cycles: int, step: float, **kw: object) -> RunawayStatus:
    """The same readings for ``cycles`` polls, ``step`` seconds apart; the last status."""
    status = None
    for k in range(cycles):
        status = d.update(t0 + k * step, [string(**kw)])  # type: ignore[arg-type]
    assert status is not None
    return status


def ramp(
    d: RunawayDetector, k_per_step: float, steps: int, *, start: float = 25.0, t0: float = 0.0
) -> RunawayStatus:
    """Block 1 rises ``k_per_step`` every 225 s (0.125 K per step = 2 K/h), others at 25 °C."""
    status = None
    for k in range(steps):
        status = d.update(t0 + 225.0 * k, [string(start + k_per_step * k)])
    assert status is not None
    return status


# -- nothing wrong -------------------------------------------------------------------------


def test_a_normal_string_raises_nothing_from_the_first_cycle() -> None:
    d = RunawayDetector()
    first = d.update(0.0, [string(25.0, current=0.25)])
    assert first == RunawayStatus(False, False, False, frozenset(), None)
    last = steady(d, 10.0, 400, 10.0, temps=25.0, current=0.25)  # over an hour
    assert last.pre_alert is False
    assert last.criteria is False
    assert last.confirmed is False
    assert last.strings == frozenset()
    assert last.reason is None


def test_nothing_is_judged_at_any_clock_origin() -> None:
    """The hold of a pre-alert starts from nothing, whatever the clock's origin."""
    for origin in (-5000.0, -1.5, 0.0, 3.0e9):
        d = RunawayDetector()
        assert d.update(origin, [string(25.0)]).pre_alert is False


# -- temperature above ambient -------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "pre_alert"),
    [(30.0, False), (30.125, True)],  # 5 K above ambient is the pre-alert bound
)
def test_pre_alert_above_ambient(block: float, pre_alert: bool) -> None:
    status = RunawayDetector().update(0.0, [string(block)])
    assert status.pre_alert is pre_alert
    assert status.criteria is False


@pytest.mark.parametrize(
    ("block", "criteria"),
    [(40.0, False), (40.125, True)],  # 15 K above ambient alone trips
)
def test_trip_delta_alone(block: float, criteria: bool) -> None:
    d = RunawayDetector()
    first = d.update(0.0, [string(block)])
    second = d.update(10.0, [string(block)])
    assert first.criteria is criteria
    assert second.confirmed is criteria
    assert first.pre_alert is True  # far above the 5 K pre-alert either way


@pytest.mark.parametrize(
    ("block", "criteria"),
    [(60.0, False), (60.125, True)],  # 60 °C absolute trips, here only 9–10 K above ambient
)
def test_absolute_temperature(block: float, criteria: bool) -> None:
    d = RunawayDetector()
    status = d.update(0.0, [string(block, ambient=50.5)])
    assert status.criteria is criteria
    if criteria:
        assert status.reason is not None and "block 1" in status.reason


def test_ambient_is_the_environment_sensor_else_the_string_median() -> None:
    # Every block at 41 °C in a 25 °C room: 16 K above the room, 0 K above its neighbours.
    hot_room = [41.0] * BLOCKS
    assert RunawayDetector().update(0.0, [string(hot_room, ambient=25.0)]).criteria
    assert not RunawayDetector().update(0.0, [string(hot_room, ambient=None)]).criteria
    # Without a sensor, one block 16 K above the median of the others trips.
    one_hot = [41.0] + [25.0] * (BLOCKS - 1)
    status = RunawayDetector().update(0.0, [string(one_hot, ambient=None)])
    assert status.criteria
    assert status.reason is not None and "block 1" in status.reason


def test_the_reason_names_the_hot_block_and_the_string() -> None:
    temps: list[float | None] = [25.0, 25.0, 41.0, 25.0, 25.0, 25.0, 25.0, 25.0]
    status = RunawayDetector().update(0.0, [string(temps, index=2)])
    assert status.strings == frozenset({2})
    assert status.reason is not None
    assert status.reason.startswith("string 2:")
    assert "block 3" in status.reason
    assert "16.0 K" in status.reason


# -- the rise rate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k_per_step", "pre_alert"),
    [(0.125, False), (0.15625, True)],  # 2 K/h on float is the pre-alert bound; 2.5 K/h above
)
def test_pre_alert_on_rise_rate(k_per_step: float, pre_alert: bool) -> None:
    # 225 s steps: three readings span 450 s, so the rate is known; 0.25–0.3 K above ambient.
    status = ramp(RunawayDetector(), k_per_step, 3)
    assert status.pre_alert is pre_alert
    assert status.criteria is False


def test_rise_rate_pre_alert_only_on_float() -> None:
    d = RunawayDetector()
    for k in range(3):
        status = d.update(225.0 * k, [string(25.0 + 0.25 * k, state=ChargeState.CHARGE)])
    assert status.pre_alert is False  # a recharge warms blocks on purpose


@pytest.mark.parametrize(
    ("k_per_step", "criteria"),
    [(0.3125, False), (0.34375, True)],  # 5 K/h with 10 K above ambient trips; 5.5 K/h above
)
def test_fast_rise_with_ten_kelvin_trips(k_per_step: float, criteria: bool) -> None:
    # Starts 10.5 K above a 25 °C room, so the temperature criterion is met throughout.
    status = ramp(RunawayDetector(), k_per_step, 3, start=35.5)
    assert status.criteria is criteria
    assert status.pre_alert is True
    if criteria:
        assert status.reason is not None and "K/h" in status.reason


def test_fast_rise_needs_ten_kelvin_above_ambient() -> None:
    # 6 K/h (well above the 5 K/h alarm rate) ending exactly 10 K above ambient: no trip.
    status = ramp(RunawayDetector(), 0.375, 3, start=34.25)
    assert status.pre_alert is True
    assert status.criteria is False


def test_a_steady_warm_block_is_not_a_fast_rise() -> None:
    """11 K above ambient and steady for an hour: a pre-alert, never a trip."""
    d = RunawayDetector()
    status = steady(d, 0.0, 360, 10.0, temps=36.0)
    assert status.pre_alert is True
    assert status.criteria is False


def test_the_rate_needs_three_readings_over_five_minutes() -> None:
    # Two readings 400 s apart (rising 1 K: 9 K/h) are not a rate yet.
    d = RunawayDetector()
    d.update(0.0, [string(25.0)])
    assert d.update(400.0, [string(26.0)]).pre_alert is False
    # Three readings spanning 299 s are not either; a fourth at 300 s is.
    d = RunawayDetector()
    for t, temp in ((1000.0, 25.0), (1100.0, 25.5), (1299.0, 26.0)):
        status = d.update(t, [string(temp)])
    assert status.pre_alert is False
    d = RunawayDetector()
    for t, temp in ((1000.0, 25.0), (1150.0, 25.5), (1300.0, 26.0)):
        status = d.update(t, [string(temp)])
    assert status.pre_alert is True  # 12 K/h, exactly three readings spanning 300 s


def test_the_rate_still_works_hours_later() -> None:
    """Three hours steady, then a rise of 3 K/h: the pre-alert comes within twenty minutes,
    and a rise of 6 K/h from 10.5 K above ambient trips."""
    d = RunawayDetector()
    steady(d, 0.0, 180, 60.0, temps=25.0)
    t0 = 10800.0
    came = None
    for k in range(1, 121):
        status = d.update(t0 + 10.0 * k, [string(25.0 + 3.0 * 10.0 * k / 3600.0)])
        if status.pre_alert:
            came = 10.0 * k
            break
    assert came is not None and came <= 1200.0
    d = RunawayDetector()
    steady(d, 0.0, 180, 60.0, temps=35.5)
    tripped = None
    for k in range(1, 181):
        status = d.update(t0 + 10.0 * k, [string(35.5 + 6.0 * 10.0 * k / 3600.0)])
        if status.criteria:
            tripped = 10.0 * k
            break
    assert tripped is not None and tripped <= 1800.0


def test_the_rate_forgets_readings_older_than_its_window() -> None:
    # A warm block that cooled 2 K and has been steady since: at 1800 s the reading at 0 s
    # still counts (a rise of 4 K/h over the window); ten seconds later it does not, and the
    # two readings left are no rate at all.
    d = RunawayDetector()
    d.update(0.0, [string(23.0)])
    d.update(1500.0, [string(25.0)])
    assert d.update(1800.0, [string(25.0)]).pre_alert is True
    d = RunawayDetector()
    d.update(0.0, [string(23.0)])
    d.update(1500.0, [string(25.0)])
    d.update(1810.0, [string(25.0)])
    assert d.update(1810.0 + 600.0, [string(25.0)]).pre_alert is False  # hold of 600 s over


def test_a_slow_rise_over_a_long_window_is_not_diluted() -> None:
    """After hours of steady readings the rate is the last half hour's, not the day's."""
    d = RunawayDetector()
    steady(d, 0.0, 360, 60.0, temps=25.0)  # six hours
    t0 = 21600.0
    for k in range(1, 181):  # half an hour at 2.5 K/h
        status = d.update(t0 + 10.0 * k, [string(25.0 + 2.5 * 10.0 * k / 3600.0)])
    assert status.pre_alert is True


# -- implausible readings ------------------------------------------------------------------


def test_a_jump_of_exactly_max_step_is_a_battery_and_more_is_a_sensor() -> None:
    # 14 K above ambient, then +2 K in one poll: 16 K, a real reading, so the criterion holds.
    d = RunawayDetector()
    d.update(0.0, [string(39.0)])
    assert d.update(10.0, [string(41.0)]).criteria is True
    # +2.125 K is faster than a battery's thermal mass allows: set aside.
    d = RunawayDetector()
    d.update(0.0, [string(39.0)])
    assert d.update(10.0, [string(41.125)]).criteria is False


def test_a_set_aside_sensor_counts_again_after_its_hold() -> None:
    d = RunawayDetector()
    d.update(0.0, [string(25.0)])
    d.update(10.0, [string(41.0)])  # a 16 K jump: held until 610 s
    assert d.update(300.0, [string(41.0)]).criteria is False
    assert d.update(609.0, [string(41.0)]).criteria is False
    assert d.update(610.0, [string(41.0)]).criteria is True


def test_unusable_blocks_are_skipped_not_the_ones_after_them() -> None:
    temps: list[float | None] = [None, 41.0] + [25.0] * (BLOCKS - 2)
    status = RunawayDetector().update(0.0, [string(temps)])
    assert status.criteria is True
    assert status.reason is not None and "block 2" in status.reason


def test_the_blocks_it_cannot_watch_are_named_by_string_and_position() -> None:
    d = RunawayDetector()
    first: list[float | None] = [None, 25.0, 25.0, None] + [25.0] * (BLOCKS - 4)
    status = d.update(0.0, [string(first), string(25.0, index=2)])
    assert status.unwatched == frozenset({(1, 1), (1, 4)})
    # Block 3 of string 2 jumps 16 K (set aside as implausible): unwatched while held.
    hot: list[float | None] = [25.0, 25.0, 41.0] + [25.0] * (BLOCKS - 3)
    status = d.update(10.0, [string(25.0), string(hot, index=2)])
    assert status.unwatched == frozenset({(2, 3)})
    assert d.update(20.0, [string(25.0), string(25.0, index=2)]).unwatched == frozenset({(2, 3)})


# -- the float current ---------------------------------------------------------------------


def learned(current: float = 0.25, temperature: float = 25.0) -> RunawayDetector:
    d = RunawayDetector()
    status = d.update(0.0, [string([temperature] * BLOCKS, ambient=temperature, current=current)])
    assert status.pre_alert is False
    return d


def at(d: RunawayDetector, now: float, current: float, temperature: float = 25.0, **kw: object):
    return d.update(
        now,
        [string([temperature] * BLOCKS, ambient=temperature, current=current, **kw)],  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("current", "pre_alert"), [(0.5, False), (0.5625, True)])
def test_pre_alert_on_float_current_ratio(current: float, pre_alert: bool) -> None:
    # Baseline 0.25 A: 2× is 0.5 A exactly; 2.25× is above.
    assert at(learned(), 10.0, current).pre_alert is pre_alert


@pytest.mark.parametrize(("current", "criteria"), [(0.75, False), (0.8125, True)])
def test_high_current_with_ten_kelvin_trips(current: float, criteria: bool) -> None:
    # 3× the baseline is 0.75 A; one block 10.5 K above ambient on every cycle.
    d = RunawayDetector()
    hot: list[float | None] = [35.5] + [25.0] * (BLOCKS - 1)
    d.update(0.0, [string(hot, current=0.25)])
    status = d.update(10.0, [string(hot, current=current)])
    assert status.criteria is criteria
    if criteria:
        assert status.reason is not None and "current" in status.reason
        assert "block 1" in status.reason


def test_high_current_alone_is_a_pre_alert_not_a_trip() -> None:
    d = learned()
    status = steady(d, 10.0, 10, 10.0, temps=25.0, current=2.0)  # 8×, every block at ambient
    assert status.pre_alert is True
    assert status.criteria is False


def test_the_baseline_is_normalised_to_25_degrees() -> None:
    """Float current doubles per 10 K: at 35 °C twice the 25 °C baseline is normal."""
    d = RunawayDetector()
    d.restore({"1": {"baseline": 0.25}})  # A at 25 °C
    assert at(d, 0.0, 1.0, temperature=35.0).pre_alert is False  # 2× of 0.5 A expected
    assert at(d, 10.0, 1.125, temperature=35.0).pre_alert is True
    # Learned warm, judged at 25 °C: 0.5 A at 35 °C is 0.25 A at 25 °C.
    warm = learned(current=0.5, temperature=35.0)
    again = RunawayDetector()
    again.restore(json.loads(json.dumps(warm.state_dict())))
    assert at(again, 0.0, 0.5).pre_alert is False
    assert at(again, 10.0, 0.5625).pre_alert is True


def test_a_zero_current_is_no_baseline() -> None:
    """A sensor reading zero (or a little below) when float starts teaches nothing."""
    d = RunawayDetector()
    assert at(d, 0.0, 0.0).pre_alert is False
    assert at(d, 10.0, -0.01).pre_alert is False
    assert at(d, 20.0, 0.25).pre_alert is False  # learned here
    assert at(d, 30.0, 0.5625).pre_alert is True
    assert d.state_dict()["1"]["baseline"] == 0.25


def test_a_runaway_current_is_never_learned() -> None:
    """2.5× the baseline for two days: the pre-alert stands throughout."""
    d = learned()
    for k in range(1, 1729):
        status = at(d, 100.0 * k, 0.625)
        assert status.pre_alert, k
    assert d.state_dict()["1"]["baseline"] == 0.25


def test_a_current_exactly_at_the_pre_alert_ratio_is_not_learned() -> None:
    d = learned()
    for k in range(1, 3000):
        at(d, 100.0 * k, 0.5)  # exactly 2×: no pre-alert, and not a new normal either
    assert d.state_dict()["1"]["baseline"] == 0.25


def test_the_baseline_follows_slow_change_but_not_a_sudden_one() -> None:
    """A current that rises 1.75× after the baseline is learned is taken in over days, so a
    later 2.25× of the old baseline is no longer a pre-alert; the step itself is never one."""
    d = learned()
    assert at(d, 10.0, 0.4375).pre_alert is False
    # One cycle later the baseline has barely moved: 2.25× the old baseline is a pre-alert.
    assert at(d, 20.0, 0.5625).pre_alert is True
    d = learned()
    for k in range(1, 4000):
        status = at(d, 100.0 * k, 0.4375)
        assert status.pre_alert is False, k
    baseline = d.state_dict()["1"]["baseline"]
    assert 0.42 < baseline < 0.4375  # most of the way, never past it
    assert at(d, 400100.0, 0.5625).pre_alert is False
    # The same in a warm room: what is learned is the current at 25 °C.
    warm = learned(current=0.5, temperature=35.0)
    for k in range(1, 1000):
        assert at(warm, 100.0 * k, 0.875, temperature=35.0).pre_alert is False
    assert 0.3 < warm.state_dict()["1"]["baseline"] < 0.4375


def test_no_current_rule_without_a_current_sensor() -> None:
    status = steady(RunawayDetector(), 0.0, 40, 10.0, temps=25.0, current=None)
    assert status.pre_alert is False
    assert RunawayDetector().state_dict() == {}


def test_current_rule_is_off_while_balancing_and_off_float() -> None:
    d = learned()
    assert at(d, 10.0, 2.0, balancing=True).pre_alert is False
    assert at(d, 20.0, 2.0, state=ChargeState.CHARGE).pre_alert is False
    assert at(d, 30.0, 2.0, state=ChargeState.REST).pre_alert is False
    assert d.state_dict()["1"]["baseline"] == 0.25  # none of it was learned


def test_a_recharge_after_a_discharge_is_no_pre_alert_for_four_hours() -> None:
    d = learned()
    at(d, 100.0, -20.0, state=ChargeState.DISCHARGE)
    assert at(d, 110.0, 2.0).pre_alert is False  # recharging on float: high current, normal
    assert at(d, 100.0 + 14399.0, 2.0).pre_alert is False
    assert at(d, 100.0 + 14400.0, 2.0).pre_alert is True
    assert d.state_dict()["1"]["baseline"] == 0.25


def test_without_a_discharge_the_current_rule_works_from_the_start() -> None:
    d = RunawayDetector()
    at(d, 100.0, 0.25)
    assert at(d, 110.0, 0.5625).pre_alert is True


def test_baselines_survive_a_restart_and_bad_records_are_skipped() -> None:
    d = learned()
    saved = json.loads(json.dumps(d.state_dict()))
    assert saved == {"1": {"baseline": 0.25}}
    fresh = RunawayDetector()
    fresh.restore(
        {
            "x": {"baseline": 1.0},
            "3": "junk",
            "4": {"baseline": "abc"},
            "5": {"baseline": 0.0},
            "6": {"baseline": float("nan")},
            "7": {},
            **saved,
        }
    )
    assert fresh.state_dict() == {"1": {"baseline": 0.25}}
    assert at(fresh, 0.0, 0.5625).pre_alert is True  # judged against the restored baseline


# -- the pre-alert hold, confirmation and several strings ----------------------------------


def test_a_pre_alert_stands_for_ten_minutes_after_its_cause() -> None:
    d = RunawayDetector()
    assert d.update(1000.0, [string(31.0)]).pre_alert is True
    assert d.update(1010.0, [string(25.0)]).pre_alert is True  # cause gone: held
    assert d.update(1599.0, [string(25.0)]).pre_alert is True
    assert d.update(1600.0, [string(25.0)]).pre_alert is False


def test_confirmation_needs_consecutive_cycles() -> None:
    d = RunawayDetector()
    assert d.update(0.0, [string(41.0)]).confirmed is False
    assert d.update(10.0, [string(39.0)]).criteria is False  # 14 K: the run is broken
    assert d.update(20.0, [string(41.0)]).confirmed is False
    assert d.update(30.0, [string(41.0)]).confirmed is True
    custom = RunawayDetector(RunawaySettings(confirm_cycles=3))
    assert [custom.update(10.0 * k, [string(41.0)]).confirmed for k in range(3)] == [
        False,
        False,
        True,
    ]


def test_strings_are_judged_separately() -> None:
    d = RunawayDetector()
    for k in range(2):
        status = d.update(
            10.0 * k, [string(41.0, index=1), string(25.0, index=2), string(41.0, index=3)]
        )
    assert status.confirmed is True
    assert status.strings == frozenset({1, 3})
    assert status.reason is not None
    parts = status.reason.split("; ")
    assert [p.split(":")[0] for p in parts] == ["string 1", "string 3"]
    # A hot string next to a normal one is still confirmed, on its own count.
    d = RunawayDetector()
    for k in range(2):
        status = d.update(10.0 * k, [string(41.0, index=1), string(25.0, index=2)])
    assert status.confirmed is True
    assert status.strings == frozenset({1})


def test_a_string_without_readings_neither_trips_nor_hides_the_next() -> None:
    d = RunawayDetector()
    for k in range(2):
        status = d.update(10.0 * k, [string([None] * BLOCKS, index=1), string(41.0, index=2)])
    assert status.confirmed is True
    assert status.strings == frozenset({2})
    # A string that goes blind keeps its count: the next good cycle confirms.
    d = RunawayDetector()
    d.update(0.0, [string(41.0)])
    assert d.update(10.0, [string([None] * BLOCKS)]).confirmed is False
    assert d.update(20.0, [string(41.0)]).confirmed is True


def test_a_pre_alert_on_one_string_is_not_cleared_by_the_next() -> None:
    status = RunawayDetector().update(0.0, [string(31.0, index=1), string(25.0, index=2)])
    assert status.pre_alert is True
    status = RunawayDetector().update(0.0, [string(25.0, index=1), string(31.0, index=2)])
    assert status.pre_alert is True
