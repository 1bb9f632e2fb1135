"""Block voltages over time, and the blocks that fall fastest in a discharge.

Sampled every 20 minutes on float (a slow picture of the string) and every cycle in a
discharge, where the ranking of the blocks that fall beyond the string's mean drop names
the blocks that will collapse early (battery-domain.md §5.1).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..bus import AnyReading
from ..snapshot import ChargeState, DeviceRef, WeakBlock
from .observation import module_reading, string_current
from .topology import StringRuntime

SAMPLE_FLOAT_S = 20 * 60.0  # every 20 min on float
HISTORY_SAMPLES = 2000
WEAK_BLOCKS_TOP = 5


@dataclass(frozen=True, slots=True)
class HistorySample:
    at: datetime
    string: int
    voltages: tuple[float | None, ...]
    current: float | None


@dataclass
class History:
    samples: list[HistorySample] = field(default_factory=list)
    last_float_sample: dict[int, float] = field(default_factory=dict)
    discharge_start: dict[int, tuple[float | None, ...]] = field(default_factory=dict)
    discharging: set[int] = field(default_factory=set)
    weak_blocks: dict[int, tuple[WeakBlock, ...]] = field(default_factory=dict)

    def record_cycle(
        self,
        now: datetime,
        now_s: float,
        strings: Sequence[StringRuntime],
        readings: Mapping[DeviceRef, AnyReading],
    ) -> None:
        for s in strings:
            volts = tuple(
                m.voltage.value if (m := module_reading(ref, readings)) else None
                for ref in s.modules
            )
            self.record(now, now_s, s.index, s.charge.state, volts, string_current(s, readings))

    def record(
        self,
        now: datetime,
        now_s: float,
        string: int,
        state: ChargeState,
        volts: tuple[float | None, ...],
        current: float | None,
    ) -> None:
        if state is ChargeState.DISCHARGE:
            if string not in self.discharging:  # a new discharge: the ranking starts over
                self.discharging.add(string)
                self.discharge_start[string] = volts
            if current is None or current < 0:  # not the charger's first cycle back
                self.weak_blocks[string] = rank_drops(self.discharge_start[string], volts)
            self.samples.append(HistorySample(now, string, volts, current))
        else:
            self.discharging.discard(string)
            if now_s - self.last_float_sample.get(string, -1e12) >= SAMPLE_FLOAT_S:
                self.last_float_sample[string] = now_s
                self.samples.append(HistorySample(now, string, volts, current))
        del self.samples[:-HISTORY_SAMPLES]


def rank_drops(
    start: tuple[float | None, ...], latest: tuple[float | None, ...]
) -> tuple[WeakBlock, ...]:
    """(position, drop beyond the string's mean drop), worst first."""
    drops = [
        (i + 1, a - b)
        for i, (a, b) in enumerate(zip(start, latest, strict=False))
        if a is not None and b is not None
    ]
    if not drops:
        return ()
    mean = statistics.mean(d for _, d in drops)
    ranked = sorted(((p, round(d - mean, 3)) for p, d in drops), key=lambda x: -x[1])
    return tuple(WeakBlock(p, d) for p, d in ranked[:WEAK_BLOCKS_TOP])
