"""Alarm thresholds: defaults from accepted practice (battery-domain.md §1.8), all overridable.

Voltage rules are per cell and scale with the block's cells, so one table fits 2 V cells and
16 V blocks alike. Every value here is a starting point; the schema lets a user change any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import voluptuous as vol

from ..model import Chemistry


@dataclass(frozen=True, slots=True)
class Limit:
    """Warning and alarm bounds with hysteresis and delays. None = no bound on that side."""

    warning_low: float | None = None
    alarm_low: float | None = None
    warning_high: float | None = None
    alarm_high: float | None = None
    hysteresis: float = 0.0
    on_delay: float = 0.0  # s the condition must hold before it is raised
    off_delay: float = 0.0  # s it must be gone before it clears
    latch: bool = False  # stays until acknowledged (alarms; warnings never latch)


@dataclass(frozen=True, slots=True)
class Thresholds:
    cell_voltage: Limit  # V/cell on float
    cell_deviation: Limit  # V/cell from the string mean, on float
    temperature: Limit  # °C, block
    above_ambient: Limit  # K, block − ambient
    resistance_vs_baseline: Limit  # ratio to the block's learned baseline
    resistance_vs_median: Limit  # ratio to the string median
    cell_spread: Limit  # V/cell, string max − min on float
    hydrogen: Limit  # ppm
    humidity: Limit  # %
    acid_level: Limit  # %
    room_temperature: Limit  # °C
    comm_lost_cycles: int = 3  # failed polls before a device counts as lost
    # s a deviation (or spread) the equalizer is still correcting waits before it is raised;
    # a block the equalizer reports beyond its reach is judged at once.
    deviation_grace: float = 6 * 3600.0


_VRLA = Thresholds(
    cell_voltage=Limit(
        2.20, 2.15, 2.35, 2.40, hysteresis=0.005, on_delay=60, off_delay=30, latch=True
    ),
    cell_deviation=Limit(
        -0.034, -0.040, 0.050, 0.082, hysteresis=0.003, on_delay=300, off_delay=60
    ),
    temperature=Limit(10.0, 0.0, 35.0, 45.0, hysteresis=1.0, on_delay=60, off_delay=60, latch=True),
    above_ambient=Limit(None, None, 3.0, 5.0, hysteresis=0.5, on_delay=900, off_delay=300),
    resistance_vs_baseline=Limit(None, None, 1.25, 1.50, hysteresis=0.02, latch=True),
    resistance_vs_median=Limit(None, None, 1.30, 1.60, hysteresis=0.02),
    # Highest − lowest: the sum of the deviation bounds (0.30 + 0.20 V and 0.49 + 0.24 V per
    # 12 V block), so a string whose every block is within tolerance does not alarm.
    cell_spread=Limit(None, None, 0.083, 0.122, hysteresis=0.005, on_delay=600, off_delay=60),
    hydrogen=Limit(
        None, None, 4000.0, 10000.0, hysteresis=200.0, on_delay=30, off_delay=60, latch=True
    ),
    humidity=Limit(None, None, 80.0, 90.0, hysteresis=2.0, on_delay=600, off_delay=300),
    acid_level=Limit(90.0, 80.0, None, None, hysteresis=1.0, on_delay=600, off_delay=300),
    room_temperature=Limit(10.0, 0.0, 30.0, 40.0, hysteresis=1.0, on_delay=300, off_delay=300),
)

DEFAULTS: dict[Chemistry, Thresholds] = {
    Chemistry.VRLA: _VRLA,
    # Flooded lead-acid floats at 2.20–2.25 V/cell and tolerates more (IEEE 450 practice).
    Chemistry.FLOODED: replace(
        _VRLA, cell_voltage=Limit(2.17, 2.13, 2.33, 2.38, 0.005, 60, 30, True)
    ),
    # Vented NiCd: float 1.40–1.45 V/cell, boost 1.55 V (battery-domain.md §3.6, [S30]).
    Chemistry.NICD: replace(
        _VRLA,
        cell_voltage=Limit(1.36, 1.30, 1.50, 1.58, 0.005, 60, 30, True),
        cell_deviation=Limit(-0.03, -0.05, 0.03, 0.05, 0.003, 300, 60),
        cell_spread=Limit(None, None, 0.05, 0.08, 0.005, 600, 60),
    ),
    # Li-ion (NMC/LFP cells on 4 V modules): hold 3.0–4.15 V/cell; never float-overcharge.
    Chemistry.LI_ION: replace(
        _VRLA,
        cell_voltage=Limit(3.00, 2.80, 4.15, 4.20, 0.01, 10, 30, True),
        cell_deviation=Limit(-0.03, -0.05, 0.03, 0.05, 0.003, 60, 60),
        cell_spread=Limit(None, None, 0.05, 0.10, 0.005, 60, 60),
        temperature=Limit(5.0, 0.0, 40.0, 50.0, 1.0, 30, 60, True),
    ),
}

LIMIT_SCHEMA = vol.Schema(
    {
        vol.Optional(f.name): vol.Any(None, vol.Coerce(float))
        if f.name in ("warning_low", "alarm_low", "warning_high", "alarm_high")
        else (bool if f.name == "latch" else vol.All(vol.Coerce(float), vol.Range(min=0)))
        for f in fields(Limit)
    }
)

THRESHOLD_SCHEMA = vol.Schema(
    {
        **{vol.Optional(f.name): LIMIT_SCHEMA for f in fields(Thresholds) if f.type == "Limit"},
        vol.Optional("comm_lost_cycles"): vol.All(int, vol.Range(min=1, max=100)),
        vol.Optional("deviation_grace"): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=7 * 86400.0)
        ),
    }
)


def _check_order(name: str, limit: Limit) -> Limit:
    lows = [v for v in (limit.alarm_low, limit.warning_low) if v is not None]
    highs = [v for v in (limit.warning_high, limit.alarm_high) if v is not None]
    if lows != sorted(lows) or highs != sorted(highs):
        raise vol.Invalid(f"{name}: alarm bounds must lie outside warning bounds")
    if lows and highs and max(lows) >= min(highs):
        raise vol.Invalid(f"{name}: low bounds must be below high bounds")
    return limit


def thresholds_for(chemistry: Chemistry, overrides: Mapping[str, Any] | None = None) -> Thresholds:
    """Defaults for the chemistry with the user's overrides merged in (already validated)."""
    base = DEFAULTS[chemistry]
    if not overrides:
        return base
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(getattr(base, key), Limit):  # a plain setting, e.g. a count
            changes[key] = value
            continue
        limit = replace(getattr(base, key), **value)
        changes[key] = _check_order(key, limit)
    return replace(base, **changes)
