"""Which state a string is in: discharge, charge/boost, float or rest.

With a current sensor: the sign and size of the current relative to capacity (C10), with
hysteresis. Without one: the string voltage per cell against the float window, and its
trend. A state must hold for ``debounce`` cycles before it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..snapshot import ChargeState

DISCHARGE_C = -0.005  # below −0.5 % of C10 (−0.5 A on 100 Ah): discharging
REST_C = 0.0003  # |I| below 0.03 % of C10: no current
CHARGE_C = 0.01  # above 1 % of C10 (1 A on 100 Ah, 10× the float current): charging/boost
FLOAT_BAND_PER_CELL = (2.18, 2.31)  # V/cell on a VRLA float charger (±temperature)


@dataclass
class ChargeStateTracker:
    capacity_ah: float
    debounce: int = 2
    state: ChargeState = ChargeState.UNKNOWN
    _candidate: ChargeState = ChargeState.UNKNOWN
    _count: int = 0
    _last_cell_v: float | None = None

    def _classify_current(self, amps: float) -> ChargeState:
        c = self.capacity_ah
        prev = self.state
        # Hysteresis: leaving a state needs a clearer signal than entering it.
        if amps < DISCHARGE_C * c * (0.5 if prev is ChargeState.DISCHARGE else 1.0):
            return ChargeState.DISCHARGE
        if abs(amps) < REST_C * c:
            return ChargeState.REST
        if amps > CHARGE_C * c * (0.7 if prev is ChargeState.CHARGE else 1.0):
            return ChargeState.CHARGE
        return ChargeState.FLOAT

    def _classify_voltage(self, cell_v: float) -> ChargeState:
        trend = 0.0 if self._last_cell_v is None else cell_v - self._last_cell_v
        self._last_cell_v = cell_v
        low, high = FLOAT_BAND_PER_CELL
        if cell_v > high:
            return ChargeState.CHARGE
        if cell_v >= low:
            return ChargeState.FLOAT
        if trend < -0.0005:
            return ChargeState.DISCHARGE  # below float and falling
        return ChargeState.REST

    def update(self, current: float | None, cell_voltage: float | None) -> ChargeState:
        if current is not None:
            candidate = self._classify_current(current)
        elif cell_voltage is not None:
            candidate = self._classify_voltage(cell_voltage)
        else:
            return self.state
        if candidate is ChargeState.DISCHARGE and self.state is not ChargeState.UNKNOWN:
            self.state = candidate  # a discharge must stop the shunts at once
            self._count = 0
            return self.state
        if candidate == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = candidate, 1
        if self._count >= self.debounce or self.state is ChargeState.UNKNOWN:
            self.state = candidate
        return self.state
