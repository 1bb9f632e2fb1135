"""What the equalization controller is told and what it answers (see equalization.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..snapshot import BalancingState, ChargeState
from .plant_estimate import PlantEstimate


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
    deadband_per_cell: float = 0.0003  # V/cell treated as on target: 1.8 mV on a 12 V block
    proportional_gain: float = 1.0  # overdrive beyond the steady need, per e-fold of error
    approach_s: float = 600.0  # the double layer is discharged towards target in about this
    spare_share: float = 1.0  # blocks below the set get the string current up to this share
    membership_hysteresis: float = 0.05  # share of a maximum a member may exceed the set by
    pinned_weight: float = 0.5  # a stalled pinned block's say in the string current (member: 1)
    extrapolation_doubt: float = 0.5  # share of a low block's extrapolated need in doubt
    need_smoothing_s: float = 600.0  # the steady needs that choose the held set are smoothed
    smoothing_s: float = 120.0  # commands move towards their goal with this time constant
    filter_time_s: float = 60.0  # measurement filter (noise, ripple)
    slope_window_s: float = 1800.0  # window of the identification's slope
    observe_s: float = 60.0  # look before the first move (the undisturbed operating point)
    prior_slope_per_cell: float = 0.06  # V per e-fold: a rough start, replaced when identified
    prior_lag_s: float = 1800.0  # at the design float current; replaced when identified
    unidentified_lag_s: float = 7200.0  # the lag out-of-range evidence assumes until known
    design_float_current_per_ah: float = 0.001  # A/Ah, used only without a current sensor
    max_block_temperature: float = 40.0  # °C: pause (shunt heat raises float current)
    max_module_temperature: float = 70.0  # °C heatsink
    out_of_range_lags: float = 4.0  # evidence: this many identified lags at the limit…
    out_of_range_min_s: float = 7200.0  # …and never less than this (diffusion takes hours)…
    out_of_range_far: float = 3.0  # …up to this many limits off target; farther, in proportion
    out_of_range_far_s: float = 1800.0  # …down to this
    closing_windows: float = 2.5  # …while its trend would not close it within this many
    out_of_range_deviation: float = 0.010  # V still off target then (the ±10 mV promise)
    retry_after_s: float = 12 * 3600.0  # an out-of-range block is tried again after this


@dataclass(frozen=True, slots=True)
class BlockInput:
    voltage: float | None  # None: missing
    temperature: float | None
    module_temperature: float | None
    cells: int
    shunt_max: float  # A, the module kind's maximum
    comms_ok: bool = True


@dataclass(frozen=True, slots=True)
class StringInputs:
    blocks: Sequence[BlockInput]
    charge_state: ChargeState
    string_current: float | None  # A, None without a current sensor
    capacity_ah: float
    pause: bool = False  # thermal-runaway pre-alert or alarm


@dataclass(frozen=True, slots=True)
class StringCommands:
    shunt: tuple[float, ...]  # A per block
    target: tuple[float | None, ...]
    deviation: tuple[float | None, ...]  # filtered measured deviation, V
    state: tuple[BalancingState, ...]
    out_of_range: frozenset[int]  # 0-based block indices
    paused_reason: str | None
    plant: PlantEstimate | None = None  # what the controller has identified
