"""The equalization controller's rules, each on its own, and the loop closed on the physics.

The closed-loop tests drive bacs_core.sim.physics.StringPhysics directly: the controller sees
its voltages every 10 s and its commands become the string's shunt currents.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bacs_core.manager.equalization import (
    BlockInput,
    EqualizationController,
    EqualizationSettings,
    StringInputs,
    TargetMode,
)
from bacs_core.manager.equalization_reach import choose_held_set, pin_far_blocks, steered_level
from bacs_core.sim.physics import PlantOptions, StringPhysics, make_string
from bacs_core.sim.sensing import ModuleCalibration, SensingOptions, measure
from bacs_core.snapshot import BalancingState, ChargeState

C20_MAX = 0.15


def block(voltage: float | None, **kw: object) -> BlockInput:
    base = {"temperature": 25.0, "module_temperature": 30.0, "cells": 6, "shunt_max": C20_MAX}
    return BlockInput(voltage=voltage, **(base | kw))  # type: ignore[arg-type]


def inputs(blocks: list[BlockInput], **kw: object) -> StringInputs:
    base = {"charge_state": ChargeState.FLOAT, "string_current": 0.04, "capacity_ah": 40.0}
    return StringInputs(blocks=blocks, **(base | kw))  # type: ignore[arg-type]


SPREAD = [13.90, 13.50, 13.62, 13.55, 13.70, 13.40, 13.66, 13.52]


def run(controller: EqualizationController, string: StringInputs, cycles: int) -> list[float]:
    shunt: list[float] = []
    for k in range(cycles):
        shunt = list(controller.update(10.0 * k, string).shunt)
    return shunt


def test_high_blocks_shunt_and_the_lowest_does_not() -> None:
    ctrl = EqualizationController()
    shunt = run(ctrl, inputs([block(v) for v in SPREAD]), 90)
    assert shunt[0] == max(shunt) > 0.02  # the highest block shunts most (of 0.04 A)
    assert shunt[5] == 0.0  # the lowest needs every mA the string carries


@pytest.mark.parametrize("cycles", [62, 65, 120])
def test_no_common_mode_current_is_wasted(cycles: int) -> None:
    """A fixed target below every block: lowering them all at once is the charger's job;
    shunt current that every block would carry alike is pure heat."""
    settings = EqualizationSettings(target=TargetMode.FIXED, float_voltage_per_cell=2.2)
    ctrl = EqualizationController(settings)
    shunt = run(ctrl, inputs([block(v) for v in SPREAD]), cycles)
    assert min(shunt) == 0.0
    assert shunt[0] == max(shunt) > 0.0


def test_commands_never_exceed_the_module_maximum() -> None:
    ctrl = EqualizationController()
    wild = [block(v) for v in [16.0, 12.2, 15.5, 12.4, 13.6, 13.6, 13.6, 13.6]]
    for k in range(200):
        commands = ctrl.update(10.0 * k, inputs(wild, string_current=2.0))
        assert all(0.0 <= a <= C20_MAX for a in commands.shunt)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"pause": True}, "thermal pre-alert"),
        ({"charge_state": ChargeState.DISCHARGE}, "string not on float (discharge)"),
        ({"charge_state": ChargeState.CHARGE}, "string not on float (charge)"),
        ({"string_current": -0.5}, "string discharging"),
    ],
)
def test_pauses_stop_every_shunt_and_forget_the_commands(
    change: dict[str, object], reason: str
) -> None:
    ctrl = EqualizationController()
    blocks = [block(v) for v in SPREAD]
    assert max(run(ctrl, inputs(blocks), 90)) > 0.02
    paused = ctrl.update(400.0, inputs(blocks, **change))
    assert paused.paused_reason == reason
    assert paused.shunt == (0.0,) * 8
    assert set(paused.state) == {BalancingState.PAUSED}
    resumed = ctrl.update(410.0, inputs(blocks))  # back on float: starts again from zero
    assert max(resumed.shunt) < 0.05


def test_disabled_reports_disabled() -> None:
    ctrl = EqualizationController(EqualizationSettings(enabled=False))
    commands = ctrl.update(0.0, inputs([block(v) for v in SPREAD]))
    assert commands.paused_reason == "disabled"
    assert set(commands.state) == {BalancingState.DISABLED}
    assert commands.shunt == (0.0,) * 8


@pytest.mark.parametrize(
    "hot", [{"temperature": 41.0}, {"module_temperature": 71.0}], ids=["block", "module"]
)
def test_a_hot_block_or_module_stops_only_its_own_shunt(hot: dict[str, float]) -> None:
    ctrl = EqualizationController()
    blocks = [block(v) for v in SPREAD]
    blocks[0] = block(SPREAD[0], **hot)
    shunt = run(ctrl, inputs(blocks), 90)
    assert shunt[0] == 0.0
    assert shunt[4] > 0.0  # string 1's next-highest block still balances


def test_lost_communication_stops_that_shunt_and_leaves_the_target() -> None:
    ctrl = EqualizationController()
    blocks = [block(v) for v in SPREAD]
    blocks[0] = block(None, comms_ok=False)
    commands = ctrl.update(0.0, inputs(blocks))
    assert commands.shunt[0] == 0.0
    assert commands.state[0] is BalancingState.PAUSED
    active = SPREAD[1:]
    assert commands.target[1] == pytest.approx(sum(active) / len(active))


def test_fixed_target_is_temperature_compensated() -> None:
    settings = EqualizationSettings(target=TargetMode.FIXED, float_voltage_per_cell=2.27)
    ctrl = EqualizationController(settings)
    commands = ctrl.update(0.0, inputs([block(13.6, temperature=35.0), block(13.6)]))
    assert commands.target[1] == pytest.approx(6 * 2.27)
    assert commands.target[0] == pytest.approx(6 * (2.27 - 0.003 * 10))  # −3 mV/°C/cell
    override = EqualizationController(float_voltage_override=13.5)
    assert override.update(0.0, inputs([block(13.6)])).target[0] == pytest.approx(13.5)


# -- the held set and the string current it is steered to -------------------------------------


def held_set(needs: list[float], **kw: object) -> list[int]:
    ctrl = EqualizationController()
    ctrl.update(0.0, inputs([block(13.6)] * len(needs)))
    for i, need in enumerate(needs):
        ctrl._blocks[i].need = need
        for key, value in kw.get(str(i), {}).items():  # type: ignore[attr-defined]
            setattr(ctrl._blocks[i], key, value)
    s = ctrl.settings
    choose_held_set(
        ctrl._blocks,
        inputs([block(13.6)] * len(needs)),
        list(range(len(needs))),
        s.extrapolation_doubt,
    )
    return [b.side for b in ctrl._blocks]


def test_the_held_set_is_the_largest_within_one_shunt_maximum() -> None:
    # 0.15 A of authority: 0.01…0.14 fit together, 0.5 needs more than any shunt can make up.
    assert held_set([0.05, 0.5, 0.01, 0.14, 0.1]) == [0, -1, 0, 0, 0]
    # A block that needs far less than the rest is outside below (shunted down, not chased).
    assert held_set([0.001, 0.2, 0.25, 0.3, 0.31]) == [1, 0, 0, 0, 0]
    # Exactly one maximum apart still fits.
    assert held_set([0.05, 0.20, 0.1]) == [0, 0, 0]


def test_of_two_sets_as_large_the_one_keeping_the_present_members_wins() -> None:
    needs = [0.0, 0.1, 0.2, 0.3]  # {0, 1} or {1, 2} or {2, 3}: two each
    assert held_set(needs, **{"0": {"member": False}, "1": {"member": False}}) == [1, 1, 0, 0]
    assert held_set(needs, **{"2": {"member": False}, "3": {"member": False}}) == [0, 0, -1, -1]


def test_a_block_far_from_target_is_judged_on_the_undoubted_part_of_its_extrapolation() -> None:
    # Needs 0.17 A against a ceiling of 0.16 (0.01 + 0.15): outside if its need is measured
    # on target; extrapolated over an e-fold from below, half of it is doubt:
    # 0.17·e^−0.5 = 0.10 fits.
    assert held_set([0.01, 0.05, 0.17]) == [0, 0, -1]
    assert held_set([0.01, 0.05, 0.17], **{"2": {"reach_efolds": -1.0}}) == [0, 0, 0]
    assert held_set([0.01, 0.05, 0.5], **{"2": {"reach_efolds": -1.0}}) == [0, 0, -1]
    # From above target the extrapolation is too small: 0.04 A, an e-fold above target,
    # is judged at 0.04·e^0.5 = 0.066, within 0.15 of 0.21.
    assert held_set([0.04, 0.16, 0.2, 0.21]) == [1, 0, 0, 0]
    assert held_set([0.04, 0.16, 0.2, 0.21], **{"0": {"reach_efolds": 1.0}}) == [0, 0, 0, 0]
    settings = EqualizationSettings(extrapolation_doubt=0.0)
    ctrl = EqualizationController(settings)
    ctrl.update(0.0, inputs([block(13.6)] * 3))
    for b, need in zip(ctrl._blocks, [0.01, 0.05, 0.17], strict=True):
        b.need, b.reach_efolds = need, -1.0
    choose_held_set(
        ctrl._blocks, inputs([block(13.6)] * 3), [0, 1, 2], settings.extrapolation_doubt
    )
    assert [b.side for b in ctrl._blocks] == [0, 0, -1]


def spare(
    levels: list[float], sides: list[int], top: float, deviation: float = -0.02
) -> tuple[float, bool]:
    """The steered level after blocks below the set (side −1) ask for what it can spare.
    Side +1 blocks here are pinned above target and still fit the set."""
    ctrl = EqualizationController()
    string = inputs([block(13.6)] * len(levels))
    ctrl.update(0.0, string)
    deviations: list[float | None] = []
    for b, level, side in zip(ctrl._blocks, levels, sides, strict=True):
        b.level, b.side, b.member, b.fits = level, side, side == 0, side >= 0
        deviations.append(deviation if side < 0 else 0.0)
    return ctrl._spare_for_low(string, deviations, list(range(len(levels))), top, C20_MAX)


def test_a_block_below_the_set_gets_all_the_string_current_the_set_can_spare() -> None:
    """Its need is extrapolated from below target (too large on a plant that is not quite
    Tafel), so before any evidence counts it gets the most the set allows: up to where the
    member that asks least shunts the whole module maximum."""
    assert spare([0.02, 0.1, 0.5], [0, 0, -1], top=0.1) == (pytest.approx(0.17), True)
    # It asks for less than that: it gets what it asks; the set's authority is not spent.
    assert spare([0.02, 0.1, 0.15], [0, 0, -1], top=0.1) == (0.15, False)
    # Nobody below: the level is the set's own.
    assert spare([0.02, 0.1, 0.12], [0, 0, 0], top=0.12) == (0.12, False)


def test_a_block_out_of_range_below_target_is_still_given_what_the_set_can_spare() -> None:
    """Undercharged is the risk: the report says the most the string can give it is not
    enough, not that it should get less. Hot or silent, it gets nothing extra."""
    ctrl = EqualizationController()
    string = inputs([block(13.6)] * 3)
    ctrl.update(0.0, string)
    for b, level in zip(ctrl._blocks, [0.02, 0.1, None], strict=True):
        b.level, b.side, b.member, b.fits = level, 0, True, True
    ctrl._blocks[2].out_of_range = True
    assert ctrl._spare_for_low(string, [0.0, 0.0, -0.05], [0, 1], 0.1, C20_MAX) == (
        pytest.approx(0.17),
        True,
    )
    assert ctrl._spare_for_low(string, [0.0, 0.0, 0.05], [0, 1], 0.1, C20_MAX) == (0.1, False)
    hot = inputs([block(13.6), block(13.6), block(13.6, temperature=45.0)])
    assert ctrl._spare_for_low(hot, [0.0, 0.0, -0.05], [0, 1], 0.1, C20_MAX) == (0.1, False)


def test_a_block_below_the_set_but_above_target_is_not_served() -> None:
    assert spare([0.02, 0.1, 0.5], [0, 0, -1], top=0.1, deviation=0.005) == (0.1, False)


def test_a_pinned_block_that_fits_keeps_the_spare_current_from_trapping_it() -> None:
    """A block held above target at its maximum asks for less than its need (it is being
    discharged): serving a low block past it would keep it up for good."""
    assert spare([-0.05, 0.02, 0.1, 0.5], [1, 0, 0, -1], top=0.1) == (
        pytest.approx(0.1),
        True,
    )


def test_a_member_at_the_edge_of_the_set_stays_until_it_is_clearly_beyond() -> None:
    """A block held on target at the set's edge would flicker in and out with the noise of
    its estimate, moving the string current for all at every flicker."""
    needs = [0.01, 0.05, 0.165]  # 0.155 apart: 3 % beyond one maximum
    assert held_set(needs) == [0, 0, -1]  # with no hysteresis it would leave
    ctrl = EqualizationController()
    string = inputs([block(13.6)] * 3)
    ctrl.update(0.0, string)
    for b, need in zip(ctrl._blocks, needs, strict=True):
        b.need, b.reach_efolds = need, 0.0
    choose_held_set(ctrl._blocks, string, [0, 1, 2], 0.5, 0.05)
    assert [b.side for b in ctrl._blocks] == [0, 0, 0]  # a member: stays
    ctrl._blocks[2].member = False
    choose_held_set(ctrl._blocks, string, [0, 1, 2], 0.5, 0.05)
    assert [b.side for b in ctrl._blocks] == [0, 0, -1]  # not one: does not join
    ctrl._blocks[2].member, ctrl._blocks[2].need = True, 0.175  # 11 % beyond: leaves
    choose_held_set(ctrl._blocks, string, [0, 1, 2], 0.5, 0.05)
    assert [b.side for b in ctrl._blocks] == [0, 0, -1]
    ctrl._blocks[0].member, ctrl._blocks[0].need = True, 0.0  # the same on the high side
    ctrl._blocks[2].need = 0.155
    for b in ctrl._blocks:
        b.member = True
    choose_held_set(ctrl._blocks, string, [0, 1, 2], 0.5, 0.05)
    assert [b.side for b in ctrl._blocks] == [0, 0, 0]


def test_a_pinned_block_has_less_say_in_the_string_current_than_a_member() -> None:
    """Two blocks pinned above target against two members below: counted alike, the
    string current is held down for the pinned ones (which may never come in); at half
    weight the two pinned weigh as much as one member: the other is served."""
    levels = [0.04, 0.05, 0.24, 0.25]
    assert steered_level(levels, 0.15) == pytest.approx(0.2)
    assert steered_level(levels, 0.15, [0.5, 0.5, 1.0, 1.0]) == 0.24
    assert steered_level(levels, 0.15, [1.0] * 4) == steered_level(levels, 0.15)


def test_only_a_pinned_block_that_has_stalled_loses_its_say() -> None:
    ctrl = EqualizationController()
    ctrl.update(0.0, inputs([block(13.6)]))
    b = ctrl._blocks[0]
    assert ctrl._say(b) == 1.0  # a member
    b.pinned = True
    assert ctrl._say(b) == 1.0  # pinned, coming down
    b.closing = False
    assert ctrl._say(b) == ctrl.settings.pinned_weight == 0.5
    b.pinned = False
    assert ctrl._say(b) == 1.0


def test_a_pinned_block_is_outside_above_whatever_its_need() -> None:
    assert held_set([0.05, 0.06, 0.07], **{"1": {"pinned": True}}) == [0, 1, 0]


def test_the_string_current_is_steered_to_the_most_asked_in_steady_state() -> None:
    top = steered_level
    assert top([0.01, 0.05, 0.1], 0.15) == 0.1
    assert top([0.07], 0.15) == 0.07


def test_while_asks_span_more_than_a_shunt_the_shortfall_is_balanced() -> None:
    """Two blocks ask to be discharged, one to be charged hard: the string current is not
    raised for the one (which would leave the two at their maximum at a trickle) but set
    where as many are short above it as below it."""
    top = steered_level
    assert top([-0.2, -0.1, 0.02, 0.03, 0.3], 0.15) == 0.03
    assert top([-0.2, 0.02, 0.03, 0.3], 0.15) == 0.03
    assert top([-0.3, -0.25, -0.2, 0.0, 0.3], 0.15) == pytest.approx(-0.1)


def pinned_after(settings: EqualizationSettings, seconds: float, n: int = 6) -> list[bool]:
    ctrl = EqualizationController(settings)
    string = inputs([block(13.6)] * n)
    ctrl.update(0.0, string)
    for b in ctrl._blocks:
        b.command, b.filtered = C20_MAX, 13.8  # all at the maximum, far above 13.6
    pin_far_blocks(ctrl._blocks, settings, 0.0, string, [13.6] * n)
    ctrl._blocks[0].filtered = 13.9  # the farthest
    pin_far_blocks(ctrl._blocks, settings, seconds, string, [13.6] * n)
    return [b.pinned for b in ctrl._blocks]


def test_a_block_is_pinned_only_after_an_approach_time_at_its_maximum() -> None:
    s = EqualizationSettings()
    assert not any(pinned_after(s, s.approach_s - 10))
    assert pinned_after(s, s.approach_s)[0]


def test_at_most_a_third_of_the_string_is_pinned_the_farthest_first() -> None:
    s = EqualizationSettings()
    pinned = pinned_after(s, s.approach_s)
    assert pinned[0] and pinned.count(True) == 2
    assert pinned_after(s, s.approach_s, n=2) == [False, False]


def test_a_block_below_its_maximum_or_near_target_is_not_pinned() -> None:
    ctrl = EqualizationController()
    string = inputs([block(13.6)] * 3)
    ctrl.update(0.0, string)
    for b in ctrl._blocks:
        b.command, b.filtered = C20_MAX, 13.8
    ctrl._blocks[1].command = 0.97 * C20_MAX
    ctrl._blocks[2].filtered = 13.61  # 10 mV: within the promise
    pin_far_blocks(ctrl._blocks, ctrl.settings, 0.0, string, [13.6] * 3)
    pin_far_blocks(ctrl._blocks, ctrl.settings, 1e4, string, [13.6] * 3)
    assert [b.pinned for b in ctrl._blocks] == [True, False, False]
    assert ctrl._blocks[1].at_max_since is None


def test_without_any_member_the_target_is_every_block_in_range() -> None:
    ctrl = EqualizationController()
    ctrl.update(0.0, inputs([block(13.5), block(13.7)]))
    for b in ctrl._blocks:
        b.member = False
    commands = ctrl.update(10.0, inputs([block(13.5), block(13.7)]))
    assert commands.target[0] == pytest.approx(13.6)


def closed_loop(
    string: StringPhysics, hours: float, settings: EqualizationSettings | None = None
) -> tuple[EqualizationController, list[float]]:
    """Run the controller on the physics; returns it and the max |deviation| per cycle."""
    ctrl = EqualizationController(settings or EqualizationSettings())
    worst: list[float] = []
    for k in range(int(hours * 360)):
        string.step(10.0)
        blocks = [
            BlockInput(v, t, t, string.params.blocks[i].cells, C20_MAX)
            for i, (v, t) in enumerate(zip(string.voltages, string.temperatures, strict=True))
        ]
        commands = ctrl.update(
            10.0 * k,
            StringInputs(blocks, ChargeState.FLOAT, string.string_current_a, 40.0),
        )
        string.shunt_a = list(commands.shunt)
        reach = [d for i, d in enumerate(commands.deviation) if i not in commands.out_of_range]
        worst.append(max(abs(d) for d in reach if d is not None))
    return ctrl, worst


def settled_string(seed: int) -> StringPhysics:
    string = StringPhysics(make_string(16, 6, 40.0, 0.6, seed))
    for _ in range(48):  # two days of unbalanced float
        string.step(3600.0)
    return string


def test_closed_loop_converges_and_holds_without_oscillating() -> None:
    string = settled_string(seed=4)
    assert max(string.voltages) - min(string.voltages) > 0.2
    ctrl, worst = closed_loop(string, hours=4.0)
    converged = next(k for k, w in enumerate(worst) if all(x <= 0.010 for x in worst[k:]))
    assert converged <= 2 * 360  # within ±10 mV in two hours, and it stays there
    assert max(worst[converged:]) <= 0.010
    assert not ctrl.update(1e9, inputs([block(13.6)])).out_of_range


def test_closed_loop_reports_a_block_beyond_reach() -> None:
    string = settled_string(seed=4)
    string.soft_short(3, 0.4)  # more self-discharge than any shunt window can make up
    ctrl, worst = closed_loop(string, hours=5.0)
    commands = ctrl.update(5 * 3600.0 + 10, inputs([block(v) for v in string.voltages]))
    assert 3 in commands.out_of_range
    assert commands.state[3] is BalancingState.OUT_OF_RANGE
    assert worst[-1] <= 0.010  # the others are on target without it


def test_many_blocks_beyond_reach_leave_the_others_held() -> None:
    """100 Ah blocks on 0.15 A modules (authority 1.5 × the float current): a soft short,
    a dry block and the outer tails of the spread are beyond reach. The blocks the shunts
    can hold together are held to each other, not pulled after the ones that cannot follow.
    Blocks 0 and 7 need 0.97 of a module maximum less than block 8 (grey: either answer is
    right); they compete with 1 and 8 for the string current until the evidence decides,
    which takes hours on this slow plant."""
    string = StringPhysics(make_string(16, 6, 100.0, 0.6, 5))
    string.soft_short(2, 0.25)
    string.set_i0_factor(9, 20.0)
    for _ in range(48):
        string.step(3600.0)
    ctrl = EqualizationController()
    far: list[float] = []
    for k in range(9 * 360):
        string.step(10.0)
        blocks = [BlockInput(v, 25.0, 25.0, 6, C20_MAX) for v in string.voltages]
        commands = ctrl.update(
            10.0 * k, StringInputs(blocks, ChargeState.FLOAT, string.string_current_a, 100.0)
        )
        string.shunt_a = list(commands.shunt)
        held = [i for i, b in enumerate(ctrl._blocks) if b.member]
        mean = sum(string.voltages[i] for i in held) / len(held)
        far.append(max(abs(string.voltages[i] - mean) for i in held))
    assert {2, 9} <= commands.out_of_range  # the two faults, on evidence
    # The reach criterion (docs/simulator.md), from this string's parameters: these eight
    # must be held (the bench's reachable(…, 0.9 × maximum)); the controller was not told.
    assert {1, 5, 6, 8, 10, 11, 12, 14} <= set(held)
    assert max(far[-360:]) <= 0.010  # the last hour


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        EqualizationSettings().enabled = False  # type: ignore[misc]
    assert replace(EqualizationSettings(), enabled=False).enabled is False


def realistic_loop(
    seed: int, lag_min: float, tafel: float, hours: float
) -> tuple[EqualizationController, list[float], StringPhysics]:
    """16 × 12 V 40 Ah, a plant the controller is not told about, sensors with 5 mV noise,
    ±3 mV offsets, ±0.01 % gain error and 2 mV ripple. Returns the worst TRUE deviation of
    the blocks it keeps in range, per cycle."""
    string = StringPhysics(
        make_string(16, 6, 40.0, 0.6, seed, plant=PlantOptions(lag_min * 60, tafel))
    )
    for _ in range(48):
        string.step(3600.0)
    sensing = SensingOptions(0.005, 0.003, 0.0001, 0.002)
    rng = random.Random(seed)
    cal = [ModuleCalibration.draw(sensing, rng) for _ in range(16)]
    ctrl = EqualizationController()
    worst: list[float] = []
    for k in range(int(hours * 360)):
        string.step(10.0)
        read = [
            round(measure(v, cal[i], sensing.noise_v, sensing.ripple_v, rng), 3)
            for i, v in enumerate(string.voltages)
        ]
        blocks = [BlockInput(v, 25.0, 25.0, 6, C20_MAX) for v in read]
        commands = ctrl.update(
            10.0 * k, StringInputs(blocks, ChargeState.FLOAT, string.string_current_a, 40.0)
        )
        string.shunt_a = list(commands.shunt)
        keep = [i for i in range(16) if i not in commands.out_of_range]
        target = sum(string.voltages[i] for i in keep) / len(keep)
        worst.append(max(abs(string.voltages[i] - target) for i in keep))
    return ctrl, worst, string


def test_on_real_sensors_and_an_unknown_plant_the_true_voltages_hold() -> None:
    ctrl, worst, _ = realistic_loop(seed=3, lag_min=15, tafel=1.3, hours=3.0)
    assert worst[0] > 0.2
    assert max(worst[-360:]) <= 0.010  # the last hour, judged on the true voltages
    assert not ctrl.update(1e9, inputs([block(13.6)])).out_of_range


def test_identifies_the_slope_it_was_not_told() -> None:
    ctrl, _, string = realistic_loop(seed=2, lag_min=15, tafel=1.3, hours=4.0)
    plant = ctrl.plant
    assert plant is not None and plant.identified
    true_b = string.blocks[0].b_cell
    assert plant.b_per_cell == pytest.approx(true_b, rel=0.15)
    assert plant.b_per_cell != pytest.approx(0.06, rel=0.05)  # not the prior
