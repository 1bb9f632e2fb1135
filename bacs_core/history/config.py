"""What the history keeps and for how long: one typed settings object, SI units."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """Defaults follow the WEB-MANAGER practice (20 min on float, every poll otherwise) and
    battery-domain.md §5 (end voltage, early-fall threshold)."""

    # Adaptive logging
    float_interval_s: float = 20 * 60.0  # one sample per string on float (or rest)
    active_after_s: float = 30 * 60.0  # every poll for this long after a discharge or charge
    burst_before_s: float = 5 * 60.0  # samples kept in memory, written when an alarm comes
    burst_after_s: float = 5 * 60.0  # every poll for this long after an alarm
    ring_max_samples: int = 120  # bound on the in-memory window before an alarm (per string)
    # Retention
    max_age_days: float | None = 10 * 365.0  # float data and events older than this go
    max_bytes: int | None = GIB  # used pages; float data is thinned, then dropped, to fit
    retention_every_s: float = 3600.0
    # Writer
    queue_max: int = 2000  # items waiting for the disk; beyond it samples are dropped, counted
    energy_save_s: float = 60.0  # how often the energy totals reach the disk (and at stop)
    # Integration and discharge analysis
    max_gap_s: float = 300.0  # an interval longer than this (a restart, a lost bus) is skipped
    recovery_s: float = 10 * 60.0  # the "after recovery" voltage is read this long after the end
    end_v_per_cell: float = 1.75  # a discharge test's end voltage (UPS default, §5.1)
    # A block "fell early" when its drop beyond the string's mean drop passes the fixed limit
    # (0.3 V on a 12 V block), or ``early_sigma`` robust σ of its string and the floor
    # (above measurement noise), battery-domain.md §5.1.
    early_fall_v_per_cell: float = 0.05
    early_sigma: float = 3.0
    early_floor_v_per_cell: float = 0.01
    min_depth_for_soh: float = 0.1  # a discharge shallower than 10 % of the rating says nothing

    def __post_init__(self) -> None:
        for name in ("float_interval_s", "recovery_s", "max_gap_s", "energy_save_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("active_after_s", "burst_before_s", "burst_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_bytes is not None and self.max_bytes < 1024 * 1024:
            raise ValueError("max_bytes must be at least 1 MiB")
        if self.max_age_days is not None and self.max_age_days <= 0:
            raise ValueError("max_age_days must be positive")
        if self.queue_max < 10 or self.ring_max_samples < 1:
            raise ValueError("queue_max must be ≥ 10 and ring_max_samples ≥ 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryConfig:
        """From plain settings (a JSON file, an options flow); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown history setting(s): {', '.join(unknown)}")
        return cls(**data)
