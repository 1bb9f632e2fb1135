"""The equalization controller as it was before issue 10, kept only for the bench's
comparison (it carries the simulator's constants: Tafel slope, 20-min lag, 1 mA/Ah floor).

Equalization: steer each module's shunt so every block's float voltage meets its target.

Physics (battery-domain.md §3.5, docs/simulator.md): the charger holds the string voltage, so a
shunt can only lower its own block; the others rise because the string current rises. The
block that needs the most current (the lowest) must end with its shunt off, and current common
to all shunts is pure heat, so it is removed every cycle.

Control law, per block, a PI controller on the deviation from target, normalised by the
block's small-signal conductance (Tafel: dI/dV = I/b), so one set of gains fits every block
size and float current. The integral time matches the polarisation lag (10–30 min), which
gives a well-damped loop instead of the limit cycling a plain integrator shows. Anti-windup
stops integrating into a clamp. A block the shunts cannot bring in is reported
``OUT_OF_RANGE`` and excluded from the target instead of burning power forever.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bacs_core.manager.equalization import StringInputs
from bacs_core.snapshot import BalancingState, ChargeState

B_PER_CELL = 0.043  # V per e-fold of float current per cell (Tafel slope, §4.1)


class TargetMode(StrEnum):
    STRING_SHARE = "string_share"  # measured string voltage shared among the active blocks
    FIXED = "fixed"  # a configured float voltage per cell (temperature compensated)


@dataclass(frozen=True, slots=True)
class EqualizationSettings:
    enabled: bool = True
    target: TargetMode = TargetMode.STRING_SHARE
    float_voltage_per_cell: float = 2.27
    temperature_compensation: float = -3.0  # mV/°C/cell
    reference_temperature: float = 25.0
    deadband_per_cell: float = 0.0005  # V/cell: 3 mV on a 12 V block
    proportional_gain: float = 1.0  # share of the remaining step taken per time constant
    integral_time_s: float = 120.0  # s: how fast commands move to their steady state
    polarisation_time_s: float = 1200.0  # τ of the float polarisation at 1 mA/Ah (§4.3)
    slope_window_s: float = 120.0
    settle_time_s: float = 600.0  # s to move a block's double-layer charge onto target
    max_block_temperature: float = 40.0  # °C: pause (shunt heat raises float current)
    max_module_temperature: float = 70.0  # °C heatsink
    out_of_range_after_s: float = 3600.0  # s the model must call a block beyond reach
    out_of_range_deviation: float = 0.010  # V still off target then (the ±10 mV promise)


@dataclass(frozen=True, slots=True)
class StringCommands:
    shunt: tuple[float, ...]  # A per block
    target: tuple[float | None, ...]
    deviation: tuple[float | None, ...]
    state: tuple[BalancingState, ...]
    out_of_range: frozenset[int]  # 0-based block indices
    paused_reason: str | None


@dataclass
class _Block:
    command: float = 0.0  # A, the shunt commanded last cycle
    beyond_s: float = 0.0  # leaky time the model has called this block beyond reach
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (s, V)

    def slope(self, now_s: float, window_s: float, voltage: float) -> float:
        """dV/dt (V/s) by least squares over the recent window; 0 until it has data."""
        self.samples.append((now_s, voltage))
        while self.samples and self.samples[0][0] < now_s - window_s:
            self.samples.popleft()
        n = len(self.samples)
        if n < 4:
            return 0.0
        mt = sum(t for t, _ in self.samples) / n
        mv = sum(v for _, v in self.samples) / n
        den = sum((t - mt) ** 2 for t, _ in self.samples)
        if den <= 0:
            return 0.0
        return sum((t - mt) * (v - mv) for t, v in self.samples) / den

    out_of_range: bool = False


@dataclass
class EqualizationController:
    """One string's controller. ``update`` once per poll cycle."""

    settings: EqualizationSettings = field(default_factory=EqualizationSettings)
    float_voltage_override: float | None = None  # V per block, from the user
    _blocks: list[_Block] = field(default_factory=list)
    _last_s: float | None = None

    def reset(self) -> None:
        for b in self._blocks:
            b.command = 0.0
            b.beyond_s = 0.0
            b.samples.clear()

    def clear_out_of_range(self, index: int | None = None) -> None:
        """After a block was replaced or repaired, let the controller try it again."""
        for i, b in enumerate(self._blocks):
            if index is None or i == index:
                b.out_of_range = False
                b.beyond_s = 0.0

    def _targets(self, inputs: StringInputs) -> list[float | None]:
        s = self.settings
        active = [
            i
            for i, b in enumerate(inputs.blocks)
            if b.voltage is not None and b.comms_ok and not self._blocks[i].out_of_range
        ]
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
        if not active:
            return [None] * len(inputs.blocks)
        total = sum(inputs.blocks[i].voltage or 0.0 for i in active)
        cells = sum(inputs.blocks[i].cells for i in active)
        per_cell = total / cells
        return [per_cell * b.cells for b in inputs.blocks]

    def update(self, now_s: float, inputs: StringInputs) -> StringCommands:
        n = len(inputs.blocks)
        while len(self._blocks) < n:
            self._blocks.append(_Block())
        dt = 0.0 if self._last_s is None else max(0.0, min(now_s - self._last_s, 120.0))
        self._last_s = now_s
        targets = self._targets(inputs)
        deviation = [
            None if b.voltage is None or t is None else b.voltage - t
            for b, t in zip(inputs.blocks, targets, strict=True)
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
                (0.0,) * n, tuple(targets), tuple(deviation), paused, self._oor(), reason
            )

        shunt, beyond = self._solve(now_s, inputs, targets, deviation, dt)
        self._track_reach(now_s, beyond, deviation, inputs, dt)
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
            tuple(shunt), tuple(targets), tuple(deviation), tuple(states), self._oor(), None
        )

    def _solve(
        self,
        now_s: float,
        inputs: StringInputs,
        targets: Sequence[float | None],
        deviation: Sequence[float | None],
        dt: float,
    ) -> tuple[list[float], set[int]]:
        """The steady state the shunts should reach, and a damped step towards it.

        Tafel: a block's float current changes by a factor e per b volts, so the current it
        needs at its target is I·exp((V_tgt − V)/b). The string then needs the largest of
        those (that block's shunt is 0); every other shunt carries the difference. When a
        high block's shunt cannot carry it, the string current is capped there and the
        blocks that need more are beyond reach. The lag is taken out with the double layer:
        the reaction current now is I − C_dl·dV/dt, where C_dl = τ·I_float/b (§4.3), so the
        step is computed from where each block is heading, not where it was.
        """
        s = self.settings
        n = len(inputs.blocks)
        string_current = max(
            inputs.string_current if inputs.string_current is not None else 0.0,
            0.001 * inputs.capacity_ah,  # 1 mA/Ah: float-current floor (§0)
        )
        need: dict[int, float] = {}
        excess: dict[int, float] = {}
        for i, b in enumerate(inputs.blocks):
            block = self._blocks[i]
            e = deviation[i]
            hot = (b.temperature is not None and b.temperature > s.max_block_temperature) or (
                b.module_temperature is not None and b.module_temperature > s.max_module_temperature
            )
            if e is None or not b.comms_ok or block.out_of_range or hot:
                block.command = 0.0
                continue
            if abs(e) < s.deadband_per_cell * b.cells:
                e = 0.0
            b_v = B_PER_CELL * b.cells
            c_dl = s.polarisation_time_s * 0.001 * inputs.capacity_ah / b_v
            slope = block.slope(now_s, s.slope_window_s, b.voltage or 0.0)
            current = string_current - block.command - c_dl * slope
            current = max(current, 0.05 * string_current)
            need[i] = current * math.exp(-e / b_v)
            excess[i] = c_dl * e / s.settle_time_s  # A that moves the polarisation charge
        shunt = [0.0] * n
        beyond: set[int] = set()
        if not need:
            return shunt, beyond
        window = _largest_feasible_set(need, min(inputs.blocks[i].shunt_max for i in need))
        beyond = set(need) - window
        wanted = max(need[i] for i in window)
        alpha = min(1.0, dt / s.integral_time_s) if dt > 0 else 0.0
        for i, v in need.items():
            block = self._blocks[i]
            goal = min(max(wanted - v + excess[i], 0.0), inputs.blocks[i].shunt_max)
            block.command += s.proportional_gain * alpha * (goal - block.command)
            shunt[i] = block.command
        low = min(shunt[i] for i in need)  # no common-mode waste
        for i in need:
            shunt[i] -= low
            self._blocks[i].command = shunt[i]
        return shunt, beyond

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

    def _track_reach(
        self,
        now_s: float,
        beyond: set[int],
        deviation: Sequence[float | None],
        inputs: StringInputs,
        block_dt: float | None = None,
    ) -> None:
        """Out of range: the shunts' authority says "beyond reach" without a break for
        ``out_of_range_after_s`` and the block is still off target (battery-domain.md §3.6)."""
        s = self.settings
        dt = 0.0 if block_dt is None else block_dt
        for i, block in enumerate(self._blocks):
            # A leaky tally, so noise that flips a block in and out of reach cannot reset it.
            if i in beyond:
                block.beyond_s += dt
            else:
                block.beyond_s = max(0.0, block.beyond_s - dt / 4)
            if block.beyond_s >= s.out_of_range_after_s:
                e = deviation[i] if i < len(deviation) else None
                if e is not None and abs(e) > s.out_of_range_deviation:
                    block.out_of_range = True
                    block.command = 0.0

    def _oor(self) -> frozenset[int]:
        return frozenset(i for i, b in enumerate(self._blocks) if b.out_of_range)


def _largest_feasible_set(need: dict[int, float], shunt_max: float) -> set[int]:
    """The most blocks whose needed currents lie within one shunt's authority of each other.

    Every block of the set can sit on target at once: the string carries the largest need
    and each shunt carries the difference, which must not exceed its maximum. Blocks outside
    (too high or too low) are beyond reach.
    """
    order = sorted(need, key=need.__getitem__)
    best = (0, 0, 0)  # size, left, right
    left = 0
    for right, i in enumerate(order):
        while need[i] - need[order[left]] > shunt_max:
            left += 1
        size = right - left + 1
        if size >= best[0]:
            best = (size, left, right)
    return set(order[best[1] : best[2] + 1])


def reachable_limit_a(float_current_a: float, deficit_v: float, cells: int) -> float:
    """String-current rise needed to lift a block by ``deficit_v`` (Tafel: ×e per b volts)."""
    return float_current_a * (math.exp(deficit_v / (B_PER_CELL * cells)) - 1.0)
