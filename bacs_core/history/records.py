"""What one discharge left behind: the figures a technician reads, typed and serialisable.

Stored as JSON (with a format version) beside a few indexed columns; ``from_dict`` reads
every version this code has written. Fields added with a None default (the UPS figures) keep
the version: an older reader ignores them, a newer one reads their absence as None.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class BlockDischarge:
    """One block in one discharge (voltages V, resistance mΩ, SOH %)."""

    position: int  # 1-based in its string
    device: str | None  # "bus/unit" at the time of the discharge
    start_v: float | None  # first reading in the discharge (after the IR step)
    end_v: float | None  # last reading in the discharge
    recovery_v: float | None  # ``recovery_s`` after the end (None until read, or if cut short)
    min_v: float | None
    # The drop beyond the string's mean drop since the start (offset-corrected shortfall):
    shortfall_max_v: float | None
    shortfall_at: datetime | None  # when it was worst
    shortfall_end_v: float | None  # at the end of the discharge
    fell_at: datetime | None  # first time the shortfall passed the early-fall threshold
    end_voltage_at: datetime | None  # when it reached the end voltage per cell (if it did)
    resistance_mohm: float | None  # the module's last measurement
    resistance_ratio: float | None  # against its own learned baseline
    soh_discharge_pct: float | None  # capacity estimate from this discharge, % of rating
    soh_resistance_pct: float | None  # capacity proxy from the resistance ratio
    soh_pct: float | None  # the lower of the two (the weaker evidence governs)
    replace_by: date | None  # the Ri trend's projection, or the discharge end if SOH < 80 %


@dataclass(frozen=True, slots=True)
class DischargeRecord:
    """One discharge of one string. Ah and Wh are delivered (positive numbers)."""

    string: int
    start: datetime
    end: datetime  # the last sample in discharge (so far)
    duration_s: float
    ah: float
    wh: float
    mean_current_a: float | None  # delivered, positive
    min_string_v: float | None
    min_string_v_at: datetime | None
    rated_ah: float | None
    capacity_delivered_pct: float | None  # ah / rated_ah
    reached_end_voltage: bool  # the string mean reached end_v_per_cell: a capacity test
    capacity_rate_adjusted_pct: float | None  # against the rating at this rate (Peukert, f_T)
    mean_temperature_c: float | None
    gap_s: float  # time without usable samples (not integrated)
    recovered: bool  # the recovery reading was taken (the record is final)
    early: tuple[int, ...]  # positions that fell early, worst first
    blocks: tuple[BlockDischarge, ...] = field(default=())
    in_progress: bool = False  # still discharging: the figures so far
    interrupted: bool = False  # the recorder stopped during it: figures up to its last save
    # A linked UPS (docs/history.md, UPS link); None without one or without that value.
    ups_on_battery_at: datetime | None = None  # when it said it went on battery
    ups_on_line_at: datetime | None = None  # when it said the mains were back
    ups_load_avg_pct: float | None = None  # its output load over the discharge, % of rating
    ups_load_max_pct: float | None = None
    ups_runtime_start_s: float | None = None  # its runtime estimate at the start, and the end
    ups_runtime_end_s: float | None = None
    id: int | None = None  # the store's number, once stored

    @property
    def weakest(self) -> BlockDischarge | None:
        ranked = [b for b in self.blocks if b.shortfall_max_v is not None]
        return max(ranked, key=lambda b: b.shortfall_max_v or 0.0) if ranked else None

    def block(self, position: int) -> BlockDischarge:
        return self.blocks[position - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (dates as ISO text); ``id`` is left out (the store assigns it)."""
        data = {name: _plain(getattr(self, name)) for name in _RECORD_FIELDS}
        data["early"] = list(self.early)
        data["blocks"] = [
            {name: _plain(getattr(b, name)) for name in _BLOCK_FIELDS} for b in self.blocks
        ]
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], record_id: int | None = None) -> DischargeRecord:
        if int(data.get("version", 1)) > RECORD_VERSION:
            raise ValueError(f"discharge record version {data.get('version')} is newer than this")
        blocks = tuple(_block_from(b) for b in data.get("blocks", ()))
        kw: dict[str, Any] = {
            f.name: data.get(f.name) for f in fields(cls) if f.name not in ("blocks", "id")
        }
        kw["in_progress"] = bool(kw["in_progress"])
        kw["interrupted"] = bool(kw["interrupted"])
        for name in ("start", "end", "min_string_v_at", "ups_on_battery_at", "ups_on_line_at"):
            kw[name] = _dt(kw[name])
        kw["early"] = tuple(kw["early"] or ())
        return cls(**kw, blocks=blocks, id=record_id)


def _block_from(data: dict[str, Any]) -> BlockDischarge:
    kw: dict[str, Any] = {f.name: data.get(f.name) for f in fields(BlockDischarge)}
    for name in ("shortfall_at", "fell_at", "end_voltage_at"):
        kw[name] = _dt(kw[name])
    kw["replace_by"] = date.fromisoformat(kw["replace_by"]) if kw["replace_by"] else None
    return BlockDischarge(**kw)


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


_BLOCK_FIELDS = tuple(f.name for f in fields(BlockDischarge))
_RECORD_FIELDS = tuple(
    f.name for f in fields(DischargeRecord) if f.name not in ("blocks", "early", "id")
)
