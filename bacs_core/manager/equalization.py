"""Equalization: steer each module's shunt so every block's float voltage meets its target.

Physics (battery-domain.md §3.5, docs/equalization.md): the charger holds the string voltage,
so a shunt can only lower its own block; the others rise because the string current rises.
The block that needs the most current (the lowest) must end with its shunt off, and current
common to all shunts is pure heat.

The controller knows none of the battery's constants; b (V per e-fold) and κ (the double
layer) are identified online from its own moves (``plant_estimate.py``), from a deliberately
rough prior. Each cycle, per block: the current its reaction carries now (I − κ·dV/dt), its
steady need on target (that × exp(−deviation/b)), and what it asks for now (the need with an
overdrive, minus the charge its double layer must give up to reach target in about
``approach_s``, below zero if need be). The held set is the largest set whose needs fit one
shunt maximum; its mean is the target, blocks outside are not chased
(``equalization_reach.py``). The string current is steered to the least total shortfall of
the set's asks; the block at that level has its shunt off and every other shunt carries the
difference, so no current is common to all. A block below the set gets all the string
current the set can spare (its need is an extrapolation that may be too large). Before its
first move it looks for a minute: the undisturbed operating points are the first data of
the identification.

A block is ``OUT_OF_RANGE`` only on evidence (``equalization_reach.py``): outside the held
set, pinned at its maximum (above) or at zero with the set's authority spent (below), for
several of its own lags and at least two hours near the limit (less far from it), the
trend of its deviation not closing. It
is tried again after ``retry_after_s``.

What sensing can and cannot do: noise and ripple are filtered; a module's offset or gain
error looks exactly like a real deviation, so the controller holds the *measured* voltages
on target and each block's true voltage ends off by that module's error (docs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..snapshot import BalancingState, ChargeState
from .equalization_reach import (
    BlockState,
    choose_held_set,
    pin_far_blocks,
    steered_level,
    track_reach,
)
from .equalization_types import (
    BlockInput,
    EqualizationSettings,
    StringCommands,
    StringInputs,
    TargetMode,
)
from .plant_estimate import BlockWindow, PlantEstimate, PlantEstimator

__all__ = [
    "BlockInput",
    "EqualizationController",
    "EqualizationSettings",
    "StringCommands",
    "StringInputs",
    "TargetMode",
]


@dataclass
class EqualizationController:
    """One string's controller. ``update`` once per poll cycle."""

    settings: EqualizationSettings = field(default_factory=EqualizationSettings)
    float_voltage_override: float | None = None  # V per block, from the user
    _blocks: list[BlockState] = field(default_factory=list)
    _last_s: float | None = None
    _estimator: PlantEstimator | None = None
    _cycle: int = 0
    _observed: bool = False

    def reset(self) -> None:
        """After a pause: commands and filters start again; what was identified stays."""
        for b in self._blocks:
            b.forget()
        self._observed = False

    def clear_out_of_range(self, index: int | None = None) -> None:
        """After a block was replaced or repaired, let the controller try it again."""
        for i, b in enumerate(self._blocks):
            if index is None or i == index:
                b.out_of_range = False
                b.beyond_s = 0.0
                b.level = None

    @property
    def plant(self) -> PlantEstimate | None:
        return None if self._estimator is None else self._estimator.current

    def _targets(self, inputs: StringInputs) -> list[float | None]:
        s = self.settings
        if self.float_voltage_override is not None or s.target is TargetMode.FIXED:
            out: list[float | None] = []
            for b in inputs.blocks:
                if self.float_voltage_override is not None:
                    per_cell = self.float_voltage_override / b.cells
                else:
                    per_cell = s.float_voltage_per_cell
                if b.temperature is not None:
                    per_cell += (
                        s.temperature_compensation
                        / 1000
                        * (b.temperature - s.reference_temperature)
                    )
                out.append(per_cell * b.cells)
            return out
        total = [0.0, 0.0]  # the held set's, and every block's in range (a fallback)
        cells = [0, 0]
        for i, b in enumerate(inputs.blocks):
            block = self._blocks[i]
            if b.comms_ok and block.filtered is not None and not block.out_of_range:
                total[1] += block.filtered
                cells[1] += b.cells
                if block.member and not block.pinned:
                    total[0] += block.filtered
                    cells[0] += b.cells
        k = 0 if cells[0] else 1
        if not cells[k]:
            return [None] * len(inputs.blocks)
        return [total[k] / cells[k] * b.cells for b in inputs.blocks]

    def _filter(self, dt: float, inputs: StringInputs) -> None:
        alpha = 1.0 if dt <= 0 else 1.0 - math.exp(-dt / self.settings.filter_time_s)
        for i, b in enumerate(inputs.blocks):
            block = self._blocks[i]
            if b.voltage is None or not b.comms_ok:
                block.filtered = None
                block.window.clear()
            elif block.filtered is None:
                block.filtered = b.voltage
            else:
                block.filtered += alpha * (b.voltage - block.filtered)

    def update(self, now_s: float, inputs: StringInputs) -> StringCommands:
        n = len(inputs.blocks)
        s = self.settings
        while len(self._blocks) < n:
            self._blocks.append(BlockState(window=BlockWindow(s.slope_window_s)))
        dt = 0.0 if self._last_s is None else max(0.0, min(now_s - self._last_s, 120.0))
        self._last_s = now_s
        self._cycle += 1
        design = s.design_float_current_per_ah * inputs.capacity_ah
        if self._estimator is None:
            self._estimator = PlantEstimator(
                s.prior_slope_per_cell, s.prior_lag_s, design, slowest_lag_s=s.unidentified_lag_s
            )
        for block in self._blocks[:n]:
            if block.out_of_range and now_s >= block.retry_at:
                block.out_of_range = False  # tried again: the evidence must build anew
                block.beyond_s = 0.0
                block.level = None
                block.history.clear()
        self._filter(dt, inputs)
        targets = self._targets(inputs)
        pin_far_blocks(self._blocks, self.settings, now_s, inputs, targets)
        targets = self._targets(inputs)
        deviation = [
            None if b.voltage is None or t is None or blk.filtered is None else blk.filtered - t
            for b, t, blk in zip(inputs.blocks, targets, self._blocks, strict=False)
        ]
        reason = self._pause_reason(inputs)
        if reason is not None:
            if reason != "disabled":
                self.reset()
            state = BalancingState.DISABLED if reason == "disabled" else BalancingState.PAUSED
            paused = tuple(
                BalancingState.OUT_OF_RANGE if self._blocks[i].out_of_range else state
                for i in range(n)
            )
            return StringCommands(
                (0.0,) * n,
                tuple(targets),
                tuple(deviation),
                paused,
                self._oor(),
                reason,
                self.plant,
            )
        current = inputs.string_current
        string_current = current if current is not None and current > 0 else None
        shunt = self._solve(now_s, dt, inputs, deviation, string_current, design)
        states: list[BalancingState] = []
        for i in range(n):
            if self._blocks[i].out_of_range:
                states.append(BalancingState.OUT_OF_RANGE)
            elif deviation[i] is None or not inputs.blocks[i].comms_ok:
                states.append(BalancingState.PAUSED)
            elif shunt[i] > 0.0005:
                states.append(BalancingState.ACTIVE)
            else:
                states.append(BalancingState.IDLE)
        return StringCommands(
            tuple(shunt),
            tuple(targets),
            tuple(deviation),
            tuple(states),
            self._oor(),
            None,
            self.plant,
        )

    def _hot(self, b: BlockInput) -> bool:
        s = self.settings
        return (b.temperature is not None and b.temperature > s.max_block_temperature) or (
            b.module_temperature is not None and b.module_temperature > s.max_module_temperature
        )

    def _solve(
        self,
        now_s: float,
        dt: float,
        inputs: StringInputs,
        deviation: Sequence[float | None],
        measured_current: float | None,
        design_current: float,
    ) -> list[float]:
        """PI per block on ln(block current), relative to the block that wants the most.

        Without a current sensor the string current is taken as the design float current
        plus what the shunts add (an assumption, documented; with a sensor, measured).
        """
        s = self.settings
        assert self._estimator is not None
        n = len(inputs.blocks)
        shunt = [0.0] * n
        active: list[int] = []
        for i, b in enumerate(inputs.blocks):
            block = self._blocks[i]
            if deviation[i] is None or not b.comms_ok or block.out_of_range or self._hot(b):
                block.command = 0.0
                continue
            active.append(i)
        if not active:
            return shunt
        if measured_current is not None:
            i_str = measured_current
        else:
            i_str = design_current + sum(self._blocks[i].command for i in active) / len(active)
        i_str = max(i_str, 1e-6)
        self._identify(dt, inputs, deviation, active, i_str)
        if not self._observed:
            # Look before acting: a minute with every shunt as it is gives each block's
            # undisturbed operating point, the first point of the slope fit.
            looked = [i for i in active if self._blocks[i].window.spans() >= s.observe_s]
            self._observed = len(looked) * 2 > len(active)
            if not self._observed:
                for i in active:
                    self._blocks[i].command = 0.0
                return shunt
            for i in looked:
                block = self._blocks[i]
                self._estimator.add(
                    i,
                    inputs.blocks[i].cells,
                    block.window,
                    dt,
                    excited=False,
                    stretch=block.settled_since,
                    undisturbed=True,
                )
        plant = self._estimator.current
        b_hat = plant.b_per_cell
        kappa = self._estimator.kappa
        smooth = 1.0 - math.exp(-dt / s.smoothing_s) if dt > 0 else 1.0
        slow = 1.0 - math.exp(-dt / s.need_smoothing_s) if dt > 0 else 1.0
        for i in active:
            block = self._blocks[i]
            b = inputs.blocks[i]
            e = (deviation[i] or 0.0) / b.cells
            if abs(e) < s.deadband_per_cell:
                e = 0.0
            need = math.exp(self._steady_need(block, b, i_str, kappa, b_hat, deviation[i] or 0.0))
            block.need = need if block.need is None else block.need + slow * (need - block.need)
            block.reach_efolds = (deviation[i] or 0.0) / b.cells / b_hat
            # What it should carry now: its steady need, an overdrive on the log scale, and
            # the charge its double layer must give up (or take) to reach target in about
            # approach_s — below zero if need be (the shunt then discharges the block a
            # little), which is what makes a slow block fast.
            goal = need * math.exp(-s.proportional_gain * e / b_hat) - kappa * e / s.approach_s
            block.level = (
                goal if block.level is None else block.level + smooth * (goal - block.level)
            )
        choose_held_set(
            self._blocks, inputs, active, s.extrapolation_doubt, s.membership_hysteresis
        )
        fits = [i for i in active if self._blocks[i].fits]
        steered = [self._blocks[i].level or 0.0 for i in fits]
        weights = [self._say(self._blocks[i]) for i in fits]
        width = max(inputs.blocks[i].shunt_max for i in active)
        top = steered_level(steered, width, weights) if steered else 0.0
        top, spent = self._spare_for_low(inputs, deviation, active, top, width)
        floor = 0.01 * i_str
        for i in active:
            block = self._blocks[i]
            b = inputs.blocks[i]
            if top > floor:  # currents in proportion to what each asks
                relative = i_str * (1.0 - (block.level or 0.0) / top)
            else:  # every block asks to be discharged: lowering them all is the charger's job
                relative = top - (block.level or 0.0)
            if block.member:
                amps = relative
            elif block.side > 0:  # needs less than the held set: its maximum moves it down
                amps = b.shunt_max if (deviation[i] or 0.0) > 0 else relative
            else:  # needs more than the held set: nothing a shunt does helps it
                amps = 0.0
            block.command = shunt[i] = min(max(amps, 0.0), b.shunt_max)
        track_reach(
            self._blocks, s, now_s, dt, inputs, deviation, active, plant, i_str, spent=spent
        )
        for i in range(n):
            block = self._blocks[i]
            if block.out_of_range:
                # Above target: its maximum still moves it towards target (and lowers its
                # overcharge), but never past it; below: nothing a shunt does helps it.
                b = inputs.blocks[i]
                hot = self._hot(b) or not b.comms_ok or deviation[i] is None
                above = (deviation[i] or 0.0) > 0
                amps = min(b.shunt_max, i_str) if above else 0.0
                shunt[i] = block.command = 0.0 if hot else amps
        return shunt

    @staticmethod
    def _stalled(block: BlockState) -> bool:
        """Pinned above target and no longer coming down: it may be beyond reach."""
        return block.pinned and not block.closing

    def _say(self, block: BlockState) -> float:
        """A block's weight in the string current it is steered to.

        A pinned block coming down keeps its full say (a lower string current brings it in
        sooner); one that has stalled weighs less than the members it would keep short
        while the evidence gathers.
        """
        return self.settings.pinned_weight if self._stalled(block) else 1.0

    def _spare_for_low(
        self,
        inputs: StringInputs,
        deviation: Sequence[float | None],
        active: list[int],
        top: float,
        width: float,
    ) -> tuple[float, bool]:
        """Raise the steered level for blocks below the held set, as far as the set allows.

        A block that seems to need more current than the set can give is judged on an
        extrapolation (its need from below target), and a plant that is not quite Tafel
        makes that too large. Before any evidence counts against it, it is given all the
        string current the set can spare: up to the level at which the block of the set
        that asks least (a pinned one too while it comes down, or it would be trapped above
        target) shunts ``spare_share`` of its maximum. Its need shrinks as it rises, and it
        joins the set if it was within reach.
        A block reported out of range below target keeps being served: it is undercharged,
        and the most the string can give it without pushing the others off target is what
        it gets; the report says that this is not enough (and may be wrong: it is tried
        again). Returns the level and whether the set's authority is spent (the block that
        asks least shunts its whole maximum): only then is a low block's evidence real.
        """
        held = [
            self._blocks[i].level or 0.0
            for i in active
            if self._blocks[i].fits and not self._stalled(self._blocks[i])
        ]
        if not held:
            return top, False
        ceiling = min(held) + self.settings.spare_share * width
        lows = [
            self._blocks[i].level or 0.0
            for i in active
            if self._blocks[i].side < 0 and (deviation[i] or 0.0) < 0
        ]
        if any(  # reported below target: served up to the ceiling, whatever it asks
            block.out_of_range
            and (deviation[i] or 0.0) < 0
            and inputs.blocks[i].comms_ok
            and not self._hot(inputs.blocks[i])
            for i, block in enumerate(self._blocks[: len(inputs.blocks)])
        ):
            lows.append(ceiling)
        if lows:
            top = max(top, min(max(lows), ceiling))
        return top, top >= ceiling - 1e-9

    @staticmethod
    def _steady_need(
        block: BlockState,
        b: BlockInput,
        i_str: float,
        kappa: float,
        b_hat: float,
        deviation: float,
    ) -> float:
        """ln of the current the block would carry in steady state on target.

        Its reaction carries f = I − κ·dV/dt now (the double layer takes the rest), at its
        present voltage; on target it needs f·exp(−deviation/b). Both from the slope
        window, at its mean time, so the deviation there is the window's mean's.
        """
        i_block = max(i_str - block.command, 0.01 * i_str)
        if not block.window.full() or block.filtered is None:
            return math.log(i_block) - deviation / b.cells / b_hat
        volts, amps, slope = block.window.means_and_slope()
        # The double layer's share is bounded to an e-fold either way: beyond, a wrong κ or
        # a noisy slope would swing the command more than any real block needs.
        f = min(max(amps - kappa * slope / b.cells, amps / math.e, 1e-6), amps * math.e)
        then = deviation + volts - block.filtered  # the deviation at the window's mean time
        return math.log(f) - then / b.cells / b_hat

    def _identify(
        self,
        dt: float,
        inputs: StringInputs,
        deviation: Sequence[float | None],
        active: list[int],
        i_str: float,
    ) -> None:
        """Feed the estimator with excited samples: the block is off target or just moved."""
        assert self._estimator is not None
        s = self.settings
        fed = False
        for i in active:
            block = self._blocks[i]
            b = inputs.blocks[i]
            if b.voltage is None:
                continue
            i_block = max(i_str - block.command, 1e-6)
            now_s = self._last_s or 0.0
            if block.settled_current is None:
                block.settled_current = i_block
            elif abs(math.log(i_block / block.settled_current)) > 0.1:
                block.settled_current = i_block
                block.settled_since = now_s
            block.window.push(now_s, b.voltage, i_block)
            if dt <= 0 or not block.window.full() or self._cycle % 3:
                continue
            samples = block.window.samples
            moved = abs(math.log(samples[-1][2] / samples[0][2])) > 0.05
            off = abs((deviation[i] or 0.0) / b.cells) > 4 * s.deadband_per_cell
            lag = self._estimator.current.lag_s(i_block)
            settled = now_s - block.settled_since >= lag + s.slope_window_s
            stretch = block.settled_since if settled else None
            self._estimator.add(
                i, b.cells, block.window, 3 * dt, excited=moved or off, stretch=stretch
            )
            fed = True
        if fed:
            self._estimator.solve({i for i in active if self._blocks[i].member})

    def _pause_reason(self, inputs: StringInputs) -> str | None:
        if not self.settings.enabled:
            return "disabled"
        if inputs.pause:
            return "thermal pre-alert"
        if inputs.charge_state is not ChargeState.FLOAT:
            return f"string not on float ({inputs.charge_state.value})"
        if (
            inputs.string_current is not None
            and inputs.string_current < -0.005 * inputs.capacity_ah
        ):
            return "string discharging"
        return None

    def _oor(self) -> frozenset[int]:
        return frozenset(i for i, b in enumerate(self._blocks) if b.out_of_range)
