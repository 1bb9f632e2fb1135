"""The equalization controller at its edges, through its public inputs and commands only (the
control law itself is free to change): the target each block is steered to, what pauses the
string and at exactly which current, which blocks are left alone, and the state reported for
each block. test_equalization.py closes the loop on the physics."""

from __future__ import annotations

import pytest

from bacs_core.manager.equalization import (
    BlockInput,
    EqualizationController,
    EqualizationSettings,
    StringInputs,
    TargetMode,
)
from bacs_core.snapshot import BalancingState, ChargeState

MAX = 0.15
SPREAD = [13.90, 13.50, 13.62, 13.55, 13.70, 13.40, 13.66, 13.52]


def block(voltage: float | None, **kw: object) -> BlockInput:
    base = {"temperature": 25.0, "module_temperature": 30.0, "cells": 6, "shunt_max": MAX}
    return BlockInput(voltage=voltage, **(base | kw))  # type: ignore[arg-type]


def string(blocks: list[BlockInput], **kw: object) -> StringInputs:
    base = {"charge_state": ChargeState.FLOAT, "string_current": 0.04, "capacity_ah": 40.0}
    return StringInputs(blocks=blocks, **(base | kw))  # type: ignore[arg-type]


def settle(ctrl: EqualizationController, inputs: StringInputs, cycles: int = 60):
    commands = None
    for k in range(cycles):
        commands = ctrl.update(10.0 * k, inputs)
    assert commands is not None
    return commands


# -- the target ------------------------------------------------------------------------------


def test_string_share_target_is_the_mean_per_cell_scaled_to_each_block() -> None:
    blocks = [block(13.8), block(13.5), block(2.30, cells=1), block(4.5, cells=2)]
    commands = EqualizationController().update(0.0, string(blocks))
    per_cell = (13.8 + 13.5 + 2.30 + 4.5) / 15
    assert commands.target == pytest.approx((6 * per_cell, 6 * per_cell, per_cell, 2 * per_cell))
    assert commands.deviation == pytest.approx(
        (13.8 - 6 * per_cell, 13.5 - 6 * per_cell, 2.30 - per_cell, 4.5 - 2 * per_cell)
    )


def test_missing_and_silent_blocks_leave_the_string_share() -> None:
    blocks = [block(None), block(13.5), block(14.9, comms_ok=False), block(13.7)]
    commands = EqualizationController().update(0.0, string(blocks))
    assert commands.target[1] == pytest.approx(13.6)
    assert commands.target[0] == pytest.approx(13.6)  # its target is still known
    assert commands.deviation[0] is None
    assert commands.state[0] is BalancingState.PAUSED
    assert commands.state[2] is BalancingState.PAUSED
    assert commands.shunt[0] == 0.0
    assert commands.shunt[2] == 0.0


def test_without_any_reading_there_is_no_target() -> None:
    commands = EqualizationController().update(0.0, string([block(None), block(None)]))
    assert commands.target == (None, None)
    assert commands.deviation == (None, None)
    assert commands.shunt == (0.0, 0.0)
    assert set(commands.state) == {BalancingState.PAUSED}


def test_fixed_target_with_and_without_a_temperature() -> None:
    settings = EqualizationSettings(target=TargetMode.FIXED, float_voltage_per_cell=2.25)
    ctrl = EqualizationController(settings)
    blocks = [
        block(13.5, temperature=None),
        block(13.5, temperature=15.0),  # colder: +3 mV/°C/cell
        block(2.25, cells=1, temperature=25.0),
    ]
    commands = ctrl.update(0.0, string(blocks))
    assert commands.target == pytest.approx((13.5, 6 * (2.25 + 0.03), 2.25))
    assert commands.deviation[0] == pytest.approx(0.0)


def test_fixed_target_uses_the_reference_temperature() -> None:
    settings = EqualizationSettings(
        target=TargetMode.FIXED,
        float_voltage_per_cell=2.25,
        temperature_compensation=-4.0,
        reference_temperature=20.0,
    )
    commands = EqualizationController(settings).update(0.0, string([block(13.5, temperature=30.0)]))
    assert commands.target[0] == pytest.approx(6 * (2.25 - 0.04))


def test_a_users_float_voltage_overrides_either_mode() -> None:
    ctrl = EqualizationController(float_voltage_override=13.5)
    commands = ctrl.update(0.0, string([block(13.6, temperature=None), block(13.4)]))
    assert commands.target == pytest.approx((13.5, 13.5))
    fixed = EqualizationController(
        EqualizationSettings(target=TargetMode.FIXED, float_voltage_per_cell=2.3),
        float_voltage_override=13.5,
    )
    assert fixed.update(0.0, string([block(13.6, temperature=None)])).target[0] == (
        pytest.approx(13.5)
    )


# -- pauses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "reason"),
    [(-0.2, None), (-0.21, "string discharging"), (None, None), (0.0, None)],
)
def test_a_discharge_pauses_from_half_a_percent_of_capacity(
    current: float | None, reason: str | None
) -> None:
    """40 Ah: −0.2 A is the bound (sensor offset and float ripple stay below it)."""
    commands = EqualizationController().update(
        0.0, string([block(v) for v in SPREAD], string_current=current)
    )
    assert commands.paused_reason == reason
    if reason is not None:
        assert commands.shunt == (0.0,) * 8
        assert set(commands.state) == {BalancingState.PAUSED}


@pytest.mark.parametrize("state", [ChargeState.CHARGE, ChargeState.REST, ChargeState.DISCHARGE])
def test_only_float_is_equalized(state: ChargeState) -> None:
    commands = EqualizationController().update(
        0.0, string([block(v) for v in SPREAD], charge_state=state)
    )
    assert commands.paused_reason is not None
    assert state.value in commands.paused_reason
    assert commands.shunt == (0.0,) * 8


def test_a_pause_keeps_targets_and_deviations_visible() -> None:
    commands = EqualizationController().update(0.0, string([block(13.8), block(13.4)], pause=True))
    assert commands.paused_reason == "thermal pre-alert"
    assert commands.target == pytest.approx((13.6, 13.6))
    assert commands.deviation == pytest.approx((0.2, -0.2))


def test_disabled_changes_nothing_it_had_learned() -> None:
    """Disabled is reported as such every cycle; nothing is paused or reset."""
    ctrl = EqualizationController(EqualizationSettings(enabled=False))
    for k in range(5):
        commands = ctrl.update(10.0 * k, string([block(v) for v in SPREAD]))
        assert commands.paused_reason == "disabled"
        assert set(commands.state) == {BalancingState.DISABLED}
        assert commands.shunt == (0.0,) * 8
        assert commands.out_of_range == frozenset()


# -- which blocks shunt ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hot", "stops"),
    [
        ({"temperature": 40.0}, False),
        ({"temperature": 40.5}, True),
        ({"module_temperature": 70.0}, False),
        ({"module_temperature": 70.5}, True),
        ({"temperature": None, "module_temperature": None}, False),
    ],
)
def test_temperature_limits_are_exclusive(hot: dict[str, float | None], stops: bool) -> None:
    blocks = [block(v) for v in SPREAD]
    blocks[0] = block(SPREAD[0], **hot)
    commands = settle(EqualizationController(), string(blocks))
    assert (commands.shunt[0] == 0.0) is stops
    assert commands.shunt[4] > 0.0


def test_states_follow_the_commands() -> None:
    commands = settle(EqualizationController(), string([block(v) for v in SPREAD]))
    for shunt, state in zip(commands.shunt, commands.state, strict=True):
        assert 0.0 <= shunt <= MAX
        assert state is (BalancingState.ACTIVE if shunt > 0.0005 else BalancingState.IDLE)
    assert commands.state[0] is BalancingState.ACTIVE
    assert commands.state[5] is BalancingState.IDLE
    assert commands.paused_reason is None


def test_a_balanced_string_shunts_nothing() -> None:
    commands = settle(EqualizationController(), string([block(13.62)] * 8))
    assert commands.shunt == (0.0,) * 8
    assert set(commands.state) == {BalancingState.IDLE}


def test_each_module_kind_is_held_to_its_own_maximum() -> None:
    blocks = [block(v) for v in SPREAD]
    blocks[0] = block(14.5, shunt_max=0.05)
    commands = settle(EqualizationController(), string(blocks), 120)
    assert 0.0 < commands.shunt[0] <= 0.05
    assert all(0.0 <= a <= MAX for a in commands.shunt)


def test_clearing_out_of_range_on_a_fresh_controller_is_harmless() -> None:
    ctrl = EqualizationController()
    ctrl.clear_out_of_range()
    ctrl.clear_out_of_range(3)
    commands = ctrl.update(0.0, string([block(v) for v in SPREAD]))
    assert commands.out_of_range == frozenset()


# -- a block beyond reach, in the controller ---------------------------------------------------


def judged(ctrl: EqualizationController, index: int, *, retry_at: float = 1e9) -> None:
    """Mark block ``index`` as track_reach does when it finds it beyond reach."""
    b = ctrl._blocks[index]
    b.out_of_range, b.retry_at = True, retry_at
    b.beyond_s, b.level, b.command = 500.0, 1.0, 0.0
    b.history.extend([0.1] * 5)


def test_a_block_too_high_keeps_its_maximum_shunt_or_the_string_current() -> None:
    ctrl = EqualizationController()
    inputs = string([block(v) for v in SPREAD], string_current=2.0)
    settle(ctrl, inputs)
    judged(ctrl, 0)
    commands = ctrl.update(600.0, inputs)
    assert commands.state[0] is BalancingState.OUT_OF_RANGE
    assert commands.out_of_range == frozenset({0})
    assert commands.shunt[0] == MAX
    # Less string current than the module can shunt: all of it, not more.
    low = string([block(v) for v in SPREAD], string_current=0.04)
    assert ctrl.update(610.0, low).shunt[0] == pytest.approx(0.04)


def test_a_block_out_of_range_is_never_shunted_past_its_target() -> None:
    """Above target it keeps the maximum; once its filtered voltage is on or below target
    the shunt stops, whatever side of the target it was judged on."""
    ctrl = EqualizationController()
    blocks = [block(v) for v in SPREAD]
    settle(ctrl, string(blocks, string_current=2.0))
    judged(ctrl, 0)
    target = ctrl.update(600.0, string(blocks, string_current=2.0)).target[0]
    assert target is not None
    blocks[0] = block(target - 0.01)
    for k in range(30):  # the filter follows the new reading
        commands = ctrl.update(610.0 + 10 * k, string(blocks, string_current=2.0))
    assert commands.deviation[0] is not None and commands.deviation[0] < 0
    assert commands.shunt[0] == 0.0


def test_a_block_too_low_gets_no_shunt() -> None:
    ctrl = EqualizationController()
    inputs = string([block(v) for v in SPREAD], string_current=2.0)
    settle(ctrl, inputs)
    judged(ctrl, 5)
    commands = ctrl.update(600.0, inputs)
    assert commands.state[5] is BalancingState.OUT_OF_RANGE
    assert commands.shunt[5] == 0.0


@pytest.mark.parametrize(
    "trouble",
    [{"temperature": 41.0}, {"module_temperature": 71.0}, {"comms_ok": False}, {"voltage": None}],
)
def test_a_block_too_high_stops_shunting_when_hot_silent_or_unread(
    trouble: dict[str, object],
) -> None:
    ctrl = EqualizationController()
    settle(ctrl, string([block(v) for v in SPREAD], string_current=2.0))
    judged(ctrl, 0)
    blocks = [block(v) for v in SPREAD]
    rest = {k: v for k, v in trouble.items() if k != "voltage"}
    blocks[0] = block(trouble.get("voltage", SPREAD[0]), **rest)  # type: ignore[arg-type]
    commands = ctrl.update(600.0, string(blocks, string_current=2.0))
    assert commands.shunt[0] == 0.0
    assert commands.state[0] is BalancingState.OUT_OF_RANGE


def test_a_block_beyond_reach_is_tried_again_after_its_retry_time() -> None:
    ctrl = EqualizationController()
    inputs = string([block(v) for v in SPREAD], string_current=2.0)
    settle(ctrl, inputs)
    judged(ctrl, 5, retry_at=700.0)
    assert ctrl.update(690.0, inputs).state[5] is BalancingState.OUT_OF_RANGE
    commands = ctrl.update(700.0, inputs)
    assert commands.state[5] is not BalancingState.OUT_OF_RANGE
    assert 5 not in commands.out_of_range
    b = ctrl._blocks[5]
    assert not b.out_of_range and b.beyond_s < 500.0
    assert len(b.history) <= 1  # the evidence starts again


def test_clearing_out_of_range_for_one_block_or_all() -> None:
    ctrl = EqualizationController()
    inputs = string([block(v) for v in SPREAD], string_current=2.0)
    settle(ctrl, inputs)
    judged(ctrl, 0)
    judged(ctrl, 5)
    ctrl.clear_out_of_range(5)
    assert [b.out_of_range for b in ctrl._blocks].count(True) == 1
    assert ctrl._blocks[0].out_of_range
    assert (ctrl._blocks[5].beyond_s, ctrl._blocks[5].level) == (0.0, None)
    assert (ctrl._blocks[0].beyond_s, ctrl._blocks[0].level) == (500.0, 1.0)
    assert ctrl.update(600.0, inputs).out_of_range == frozenset({0})
    ctrl.clear_out_of_range()
    assert not any(b.out_of_range for b in ctrl._blocks)
    assert ctrl.update(610.0, inputs).out_of_range == frozenset()


def test_a_pause_keeps_a_block_out_of_range_shown_and_forgets_the_commands() -> None:
    ctrl = EqualizationController()
    settle(ctrl, string([block(v) for v in SPREAD], string_current=2.0))
    judged(ctrl, 0)
    commands = ctrl.update(600.0, string([block(v) for v in SPREAD], pause=True))
    assert commands.state[0] is BalancingState.OUT_OF_RANGE
    assert set(commands.state[1:]) == {BalancingState.PAUSED}
    assert commands.shunt == (0.0,) * 8
    assert all(b.command == 0.0 and b.level is None for b in ctrl._blocks)
