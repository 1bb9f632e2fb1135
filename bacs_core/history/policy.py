"""Adaptive logging: which snapshots become stored rows, and of which kind.

Every poll in a discharge (and until its recovery reading), every poll in a charge and for
``active_after_s`` after either, every poll for ``burst_after_s`` after an alarm, and one row
per ``float_interval_s`` otherwise (float or rest). While a linked UPS says it is on battery,
every poll too (before the string current shows the discharge): ``DISCHARGE`` rows where the
string discharges, ``ACTIVE`` (thinnable) where it does not, so an "on battery" sensor stuck
on cannot fill the file with rows that are never thinned. Pure: the caller supplies the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..snapshot import ChargeState
from .codec import SampleKind
from .config import HistoryConfig

NEVER = float("-inf")


@dataclass
class LoggingPolicy:
    config: HistoryConfig = field(default_factory=HistoryConfig)
    _last_row: dict[int, float] = field(default_factory=dict)
    _discharge_until: dict[int, float] = field(default_factory=dict)
    _active_until: dict[int, float] = field(default_factory=dict)
    _burst_until: float = NEVER
    ups_on_battery: bool = False  # set by the recorder from the linked UPS

    def alarm(self, t_s: float) -> None:
        """An alarm at t_s: every poll until t_s + burst_after_s."""
        self._burst_until = max(self._burst_until, t_s + self.config.burst_after_s)

    def decide(self, string: int, t_s: float, state: ChargeState) -> SampleKind | None:
        cfg = self.config
        kind: SampleKind | None = None
        if state is ChargeState.DISCHARGE:
            self._discharge_until[string] = t_s + cfg.recovery_s
            self._active_until[string] = t_s + cfg.active_after_s
            kind = SampleKind.DISCHARGE
        elif t_s <= self._discharge_until.get(string, NEVER):
            kind = SampleKind.DISCHARGE  # the recovery window belongs to the discharge
        elif self.ups_on_battery or state is ChargeState.CHARGE:
            self._active_until[string] = t_s + cfg.active_after_s
            kind = SampleKind.ACTIVE
        elif t_s <= self._active_until.get(string, NEVER):
            kind = SampleKind.ACTIVE
        elif t_s <= self._burst_until:
            kind = SampleKind.BURST
        elif t_s - self._last_row.get(string, NEVER) >= cfg.float_interval_s:
            kind = SampleKind.FLOAT
        if kind is not None:
            self._last_row[string] = t_s
        return kind
