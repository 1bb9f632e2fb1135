"""Energy charged and discharged per string: monotonically increasing totals for HA's Energy
dashboard, integrated from the string's voltage and current at the manager's timestamps.

Each interval between two samples is integrated with the trapezoid rule, split where the
power changes sign so charge and discharge never cancel. An interval longer than
``max_gap_s`` (a restart, a lost bus) is not integrated at all: the totals may miss energy
that flowed while nobody looked, but they never guess, never go down and never count twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class EnergyTotals:
    charged_wh: float = 0.0
    discharged_wh: float = 0.0

    @property
    def charged_kwh(self) -> float:
        return self.charged_wh / 1000.0

    @property
    def discharged_kwh(self) -> float:
        return self.discharged_wh / 1000.0


def split_trapezoid(y0: float, y1: float, dt: float) -> tuple[float, float]:
    """(positive area, negative area as a positive number) of a linear segment."""
    if y0 >= 0 and y1 >= 0:
        return (y0 + y1) / 2.0 * dt, 0.0
    if y0 <= 0 and y1 <= 0:
        return 0.0, -(y0 + y1) / 2.0 * dt
    span = abs(y0) + abs(y1)
    pos, neg = (y0, -y1) if y0 > 0 else (y1, -y0)
    return pos * pos / span * dt / 2.0, neg * neg / span * dt / 2.0


@dataclass
class EnergyMeter:
    max_gap_s: float = 300.0
    totals: dict[int, EnergyTotals] = field(default_factory=dict)
    _last: dict[int, tuple[float, float]] = field(default_factory=dict)  # string: (t_s, W)

    def restore(self, totals: dict[int, EnergyTotals]) -> None:
        """Totals from the store; the first sample after a restart only starts a new interval."""
        for string, value in totals.items():
            mine = self.totals.setdefault(string, EnergyTotals())
            mine.charged_wh = max(mine.charged_wh, value.charged_wh)
            mine.discharged_wh = max(mine.discharged_wh, value.discharged_wh)

    def add(self, string: int, t_s: float, voltage: float | None, current: float | None) -> None:
        totals = self.totals.setdefault(string, EnergyTotals())
        if voltage is None or current is None:
            return  # the next good sample bridges the hole if it is shorter than max_gap_s
        power = voltage * current
        last = self._last.get(string)
        self._last[string] = (t_s, power)
        if last is None:
            return
        dt = t_s - last[0]
        if dt <= 0 or dt > self.max_gap_s:
            return
        charged, discharged = split_trapezoid(last[1], power, dt / 3600.0)
        totals.charged_wh += charged
        totals.discharged_wh += discharged
