"""Discharge analysis: one record per discharge of each string, built sample by sample.

Fed every snapshot (not only the stored ones), so the figures use every poll. Ah and Wh are
integrated from the string current and voltage at the manager's timestamps (trapezoid, the
discharging part of each interval only). Each block is judged against its own string: its
drop since the start of the discharge beyond the string's mean drop (battery-domain.md §5.1),
so a block that merely sits low on float is not "weak". SOH per block: ``health.py``.

A linked UPS (``ups.py``) opens the record the moment it says it is on battery, keeps it open
while it stays there, and lends its load and runtime to the record.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..model import MODULE_SPECS
from ..snapshot import ChargeState, ModuleSnapshot, StringSnapshot
from .config import HistoryConfig
from .energy import split_trapezoid
from .health import (
    REPLACE_SOH_PCT,
    clamp_pct,
    combined,
    end_slope_v_per_ah,
    rated_capacity_at_rate,
    relative_capacity,
    soh_from_resistance,
)
from .records import BlockDischarge, DischargeRecord
from .ups import UpsStatus

PROGRESS_EVERY_S = 300.0  # a running discharge is saved this often (a crash keeps most of it)


def _cells(m: ModuleSnapshot) -> int:
    spec = MODULE_SPECS.get(m.info.kind)
    return spec.cells if spec else 6


@dataclass
class _Block:
    cells: int
    start_v: float | None = None
    end_v: float | None = None
    min_v: float | None = None
    shortfall: float | None = None
    shortfall_max: float | None = None
    shortfall_at: datetime | None = None
    fell_at: datetime | None = None
    end_voltage_at: datetime | None = None
    ah_at_end_voltage: float | None = None


@dataclass
class _Run:
    string: int
    start: datetime
    start_s: float
    rated_ah: float | None
    blocks: list[_Block]
    end: datetime
    end_s: float
    ah: float = 0.0
    wh: float = 0.0
    gap_s: float = 0.0
    min_v: float | None = None
    min_v_at: datetime | None = None
    current_sum: float = 0.0
    current_n: int = 0
    temp_sum: float = 0.0
    temp_n: int = 0
    reached_end: bool = False
    curve: list[tuple[float, float]] = field(default_factory=list)  # (Ah, mean block V)
    modules: tuple[ModuleSnapshot, ...] = ()
    saved_s: float = 0.0
    ups_on_battery_at: datetime | None = None
    ups_on_line_at: datetime | None = None
    load_sum: float = 0.0
    load_n: int = 0
    load_max: float | None = None
    runtime_start: float | None = None
    runtime_end: float | None = None


@dataclass
class _Recovery:
    record: DischargeRecord
    due_s: float


class DischargeAnalyzer:
    """Pure: snapshots in, discharge records out (to be stored by the caller)."""

    def __init__(self, config: HistoryConfig | None = None) -> None:
        self.config = config or HistoryConfig()
        self.last: dict[int, DischargeRecord] = {}  # per string: the present or last discharge
        self._runs: dict[int, _Run] = {}
        self._prev: dict[int, tuple[float, float | None, float | None]] = {}
        self._recovering: dict[int, _Recovery] = {}
        self._progress_at = float("-inf")
        self._ups_since: datetime | None = None  # the linked UPS on battery since

    def running(self, string: int) -> bool:
        return string in self._runs

    def running_records(self) -> list[DischargeRecord]:
        """The figures so far of every discharge still running (saved when the recorder stops)."""
        return [self._remember(self._record(run, in_progress=True)) for run in self._runs.values()]

    def ups_on_battery(
        self, when: datetime, strings: list[tuple[StringSnapshot, float | None]]
    ) -> list[DischargeRecord]:
        """The linked UPS went on battery: every string's record opens now (a running one
        notes the time), before the string current shows the discharge. ``strings``: the
        last snapshot of each string with its rating."""
        t_s = when.timestamp()
        self._ups_since = when
        out: list[DischargeRecord] = []
        for s, rated_ah in strings:
            run = self._runs.get(s.index)
            if run is None:
                self._recovering.pop(s.index, None)  # cut short: that record has no recovery
                run = self._start(when, t_s, s, rated_ah)
                run.saved_s = t_s
                run.ups_on_battery_at = when
                out.append(self._remember(self._record(run, in_progress=True)))
            else:
                run.ups_on_battery_at = run.ups_on_battery_at or when
                run.ups_on_line_at = None
        return out

    def ups_on_line(self, when: datetime | None) -> None:
        """The mains are back (``when``), or the UPS's state is no longer known (None): the
        records end once their strings stop discharging too."""
        self._ups_since = None
        if when is None:
            return
        for run in self._runs.values():
            if run.ups_on_battery_at is not None and run.ups_on_line_at is None:
                run.ups_on_line_at = when

    def update(
        self,
        when: datetime,
        s: StringSnapshot,
        rated_ah: float | None,
        ups: UpsStatus | None = None,
    ) -> list[DischargeRecord]:
        """One string's snapshot (and the linked UPS's status, if any); returns the records
        that changed (to upsert by start)."""
        t_s = when.timestamp()
        idx = s.index
        out: list[DischargeRecord] = []
        ups_on_battery = ups is not None and ups.on_battery is True
        discharging = s.charge_state is ChargeState.DISCHARGE or ups_on_battery
        prev = self._prev.get(idx)
        self._prev[idx] = (t_s, s.current, s.voltage)
        pending = self._recovering.get(idx)
        if not discharging and idx not in self._runs and pending is None:
            return out  # float, charge or rest with nothing to finish: the common case
        volts = [m.voltage.value if m.voltage.usable else None for m in s.modules]

        if pending is not None and (discharging or t_s >= pending.due_s):
            # Time for the recovery reading, unless a new discharge came first (then the
            # record stays without one).
            del self._recovering[idx]
            if not discharging:
                out.append(self._remember(_with_recovery(pending.record, volts)))

        run = self._runs.get(idx)
        if run is None and discharging:
            run = self._start(when, t_s, s, rated_ah)
            if ups_on_battery:
                run.ups_on_battery_at = self._ups_since or when
        if run is None:
            return out

        if prev is not None:
            self._integrate(run, prev, t_s, s.current, s.voltage)
        if discharging and ups is not None and not (ups.on_battery is False and run.ups_on_line_at):
            _ups_sample(run, ups)  # not once the UPS is back on mains: its estimate jumps
        if discharging and (s.current is None or s.current < 0):
            self._observe(run, when, t_s, s, volts)
            # At most one string's progress per cycle: ten strings in one discharge do not
            # all build their records in the same cycle.
            if t_s - run.saved_s >= PROGRESS_EVERY_S and t_s > self._progress_at:
                run.saved_s = self._progress_at = t_s
                out.append(self._remember(self._record(run, in_progress=True)))
        elif not discharging:
            if run.ups_on_line_at is not None and run.ups_on_line_at > run.end:
                run.end, run.end_s = run.ups_on_line_at, run.ups_on_line_at.timestamp()
            del self._runs[idx]
            record = self._remember(self._record(run, in_progress=False))
            out.append(record)
            self._recovering[idx] = _Recovery(record, run.end_s + self.config.recovery_s)
        return out

    # -- steps ----------------------------------------------------------------------------
    def _start(self, when: datetime, t_s: float, s: StringSnapshot, rated_ah: float | None) -> _Run:
        blocks = [_Block(_cells(m)) for m in s.modules]
        # saved_s in the past: the first sample already saves a record ("discharge running").
        run = _Run(s.index, when, t_s, rated_ah, blocks, when, t_s, saved_s=float("-inf"))
        self._runs[s.index] = run
        return run

    def _integrate(
        self,
        run: _Run,
        prev: tuple[float, float | None, float | None],
        t_s: float,
        current: float | None,
        voltage: float | None,
    ) -> None:
        dt = t_s - prev[0]
        if dt <= 0:
            return
        if dt > self.config.max_gap_s or prev[1] is None or current is None:
            run.gap_s += dt
            return
        run.ah += split_trapezoid(prev[1], current, dt / 3600.0)[1]
        if prev[2] is not None and voltage is not None:
            run.wh += split_trapezoid(prev[1] * prev[2], current * voltage, dt / 3600.0)[1]

    def _observe(
        self, run: _Run, when: datetime, t_s: float, s: StringSnapshot, volts: list[float | None]
    ) -> None:
        cfg = self.config
        run.end, run.end_s, run.modules = when, t_s, s.modules
        if s.current is not None:
            run.current_sum += -s.current
            run.current_n += 1
        if s.voltage is not None and (run.min_v is None or s.voltage < run.min_v):
            run.min_v, run.min_v_at = s.voltage, when
        t_sum, t_n = 0.0, 0
        for m in s.modules:
            temp = m.temperature
            if temp.value is not None and temp.usable:
                t_sum += temp.value
                t_n += 1
        if t_n:
            run.temp_sum += t_sum / t_n
            run.temp_n += 1
        # One pass over the blocks: extremes, the end voltage, and each block's drop.
        end_v = cfg.end_v_per_cell
        drops: list[tuple[_Block, float]] = []
        v_sum = 0.0
        cells = 0
        for b, v in zip(run.blocks, volts, strict=False):
            if v is None:
                continue
            if b.start_v is None:
                b.start_v = v
            b.end_v = v
            if b.min_v is None or v < b.min_v:
                b.min_v = v
            if b.end_voltage_at is None and v <= end_v * b.cells:
                b.end_voltage_at, b.ah_at_end_voltage = when, run.ah
            drops.append((b, b.start_v - v))
            v_sum += v
            cells += b.cells
        if not drops:
            return
        n = len(drops)
        mean_v = v_sum / n
        run.curve.append((run.ah, mean_v))
        if v_sum / cells <= end_v:
            run.reached_end = True
        mean_drop = sum(d for _, d in drops) / n
        shorts = [d - mean_drop for _, d in drops]
        centre = statistics.median(shorts)
        sigma = 1.4826 * statistics.median([abs(x - centre) for x in shorts])
        spread_limit = cfg.early_sigma * sigma
        fixed, floor = cfg.early_fall_v_per_cell, cfg.early_floor_v_per_cell
        for (b, _), short in zip(drops, shorts, strict=True):
            b.shortfall = short
            if b.shortfall_max is None or short > b.shortfall_max:
                b.shortfall_max, b.shortfall_at = short, when
            if b.fell_at is None and short >= min(
                fixed * b.cells, max(spread_limit, floor * b.cells)
            ):
                b.fell_at = when

    # -- the record -----------------------------------------------------------------------
    def _remember(self, record: DischargeRecord) -> DischargeRecord:
        self.last[record.string] = record
        return record

    def _record(self, run: _Run, *, in_progress: bool) -> DischargeRecord:
        cfg = self.config
        mean_i = run.current_sum / run.current_n if run.current_n else None
        mean_t = run.temp_sum / run.temp_n if run.temp_n else None
        rated = run.rated_ah
        delivered_pct = round(100.0 * run.ah / rated, 1) if rated else None
        c_rate = rated_capacity_at_rate(rated, mean_i, mean_t) if rated and mean_i else None
        rate_pct = round(100.0 * run.ah / c_rate, 1) if c_rate and run.reached_end else None
        deep_enough = bool(rated) and run.ah >= cfg.min_depth_for_soh * (rated or 0.0)
        slope = end_slope_v_per_ah(run.curve) if deep_enough else None
        string_factor = (rate_pct / 100.0) if rate_pct is not None else 1.0
        blocks: list[BlockDischarge] = []
        for pos, b in enumerate(run.blocks, 1):
            m = run.modules[pos - 1] if pos <= len(run.modules) else None
            soh_d: float | None = None
            if b.ah_at_end_voltage is not None and c_rate and deep_enough:
                soh_d = clamp_pct(100.0 * b.ah_at_end_voltage / c_rate)
            elif slope is not None and b.shortfall is not None and run.ah > 0:
                rel = relative_capacity(b.shortfall, slope, run.ah)
                soh_d = clamp_pct(100.0 * rel * string_factor)
            r_now = m.resistance.value if m is not None and m.resistance.usable else None
            baseline = m.resistance_baseline if m is not None else None
            ratio = round(r_now / baseline, 3) if r_now is not None and baseline else None
            soh_r = soh_from_resistance(ratio)
            soh = combined(soh_d, soh_r)
            replace_by = m.replace_by if m is not None else None
            if soh is not None and soh < REPLACE_SOH_PCT:
                replace_by = run.end.date()
            blocks.append(
                BlockDischarge(
                    position=pos,
                    device=str(m.info.ref) if m is not None else None,
                    start_v=_r3(b.start_v),
                    end_v=_r3(b.end_v),
                    recovery_v=None,
                    min_v=_r3(b.min_v),
                    shortfall_max_v=_r3(b.shortfall_max),
                    shortfall_at=b.shortfall_at,
                    shortfall_end_v=_r3(b.shortfall),
                    fell_at=b.fell_at,
                    end_voltage_at=b.end_voltage_at,
                    resistance_mohm=r_now,
                    resistance_ratio=ratio,
                    soh_discharge_pct=soh_d,
                    soh_resistance_pct=soh_r,
                    soh_pct=soh,
                    replace_by=replace_by,
                )
            )
        early = sorted(
            (b for b in blocks if b.fell_at is not None),
            key=lambda b: -(b.shortfall_max_v or 0.0),
        )
        return DischargeRecord(
            string=run.string,
            start=run.start,
            end=run.end,
            duration_s=round(run.end_s - run.start_s, 1),
            ah=round(run.ah, 4),
            wh=round(run.wh, 2),
            mean_current_a=_r3(mean_i),
            min_string_v=_r3(run.min_v),
            min_string_v_at=run.min_v_at,
            rated_ah=rated,
            capacity_delivered_pct=delivered_pct,
            reached_end_voltage=run.reached_end,
            capacity_rate_adjusted_pct=rate_pct,
            mean_temperature_c=round(mean_t, 2) if mean_t is not None else None,
            gap_s=round(run.gap_s, 1),
            recovered=False,
            early=tuple(b.position for b in early),
            blocks=tuple(blocks),
            in_progress=in_progress,
            ups_on_battery_at=run.ups_on_battery_at,
            ups_on_line_at=run.ups_on_line_at,
            ups_load_avg_pct=round(run.load_sum / run.load_n, 1) if run.load_n else None,
            ups_load_max_pct=run.load_max,
            ups_runtime_start_s=run.runtime_start,
            ups_runtime_end_s=run.runtime_end,
        )


def _ups_sample(run: _Run, ups: UpsStatus) -> None:
    """The UPS's load and runtime at one snapshot of the discharge."""
    if ups.load_pct is not None:
        run.load_sum += ups.load_pct
        run.load_n += 1
        run.load_max = max(run.load_max or 0.0, ups.load_pct)
    if ups.runtime_s is not None:
        if run.runtime_start is None:
            run.runtime_start = ups.runtime_s
        run.runtime_end = ups.runtime_s


def _with_recovery(record: DischargeRecord, volts: list[float | None]) -> DischargeRecord:
    blocks = tuple(
        replace(b, recovery_v=_r3(volts[b.position - 1]) if b.position <= len(volts) else None)
        for b in record.blocks
    )
    return replace(record, blocks=blocks, recovered=True)


def _r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
