"""What a UPS says about itself, from whatever knows it: Home Assistant's ``nut``
integration or any "on battery" sensor, later the appliance's own reader.

The history takes it as one typed status (``HistoryRecorder.ups_update``): the on-battery
state starts fast logging and opens the discharge record before the string current shows the
discharge; the load and runtime are stored beside the strings' rows and summarised in each
discharge record. Source-independent: nothing here knows where the values came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from .codec import SampleKind, from_ms

EVENT_ON_BATTERY = "ups_on_battery"
EVENT_ON_LINE = "ups_on_line"


@dataclass(frozen=True, slots=True)
class UpsStatus:
    """One reading of the UPS; None: not known (an entity unavailable, a value not offered).

    ``load_pct`` is the output load in % of the UPS rating, ``runtime_s`` its own estimate of
    the time left on battery, ``input_voltage`` the mains voltage at its input (V)."""

    on_battery: bool | None = None
    load_pct: float | None = None
    runtime_s: float | None = None
    input_voltage: float | None = None

    def __post_init__(self) -> None:
        for name, high in (("load_pct", 1000.0), ("runtime_s", 10 * 86400.0)):
            _check(name, getattr(self, name), high)
        _check("input_voltage", self.input_voltage, 100_000.0)

    @property
    def known(self) -> bool:
        return any(
            v is not None
            for v in (self.on_battery, self.load_pct, self.runtime_s, self.input_voltage)
        )


def _check(name: str, value: float | None, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"UPS {name} must be a number or None, not {value!r}")
    if math.isnan(value) or not 0.0 <= value <= high:
        raise ValueError(f"UPS {name} {value!r} is outside 0 … {high:g}")


@dataclass(frozen=True, slots=True)
class UpsRow:
    """The UPS at one instant, as stored (at the manager's sample times, and at each change
    between battery and mains). ``kind`` follows the strings' rows of that instant, so
    retention keeps a discharge's UPS rows with it."""

    t_ms: int
    kind: SampleKind
    on_battery: bool | None
    load_pct: float | None
    runtime_s: float | None
    input_voltage: float | None

    @classmethod
    def of(cls, t_ms: int, kind: SampleKind, status: UpsStatus) -> UpsRow:
        return cls(
            t_ms, kind, status.on_battery, status.load_pct, status.runtime_s, status.input_voltage
        )

    @property
    def time(self) -> datetime:
        return from_ms(self.t_ms)
