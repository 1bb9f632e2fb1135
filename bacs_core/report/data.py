"""What a report shows, read from the history file into arrays (NaN = no value).

Decoding goes through numpy on the stored BLOBs directly (the codec's scales), so a 330-block
discharge of two hours at every poll reads in a fraction of a second.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from ..history.batch import EventRow
from ..history.codec import (
    I16_NONE,
    I_SCALE,
    R_LOG_MIN,
    R_LOG_STEPS,
    T_SCALE,
    U16_NONE,
    V_SCALE,
    SampleRow,
    from_ms,
    ms,
)
from ..history.reader import HistoryReader
from ..history.records import DischargeRecord
from ..history.schema import MAX_STRING, T_MASK, key_range
from ..history.ups import UpsRow
from ..snapshot import ChargeState

type Array = npt.NDArray[np.floating[Any]]

DAY_MS = 86_400_000
BEFORE_S = 5 * 60.0  # the curves start this long before the discharge
RESISTANCE_DAYS = 365  # the resistance trend looks back this far from the discharge's end
ALARM_TYPES = frozenset(
    {
        "alarm_raised",
        "alarm_escalated",
        "runaway_pre_alert",
        "runaway_detected",
        "trip_countdown",
        "tripped",
        "trip_failed",
        "device_lost",
        "bus_lost",
        "ups_on_battery",
        "ups_on_line",
    }
)


class ReportError(ValueError):
    """Nothing to report (no such discharge, no history in the period): one clear line."""


@dataclass(frozen=True, slots=True)
class Series:
    """One string's stored rows over a window: ``volts[row, block]`` and the like."""

    string: int
    t_ms: npt.NDArray[np.int64]
    state: list[ChargeState]
    current: Array
    volts: Array
    temps: Array
    balance: Array

    @property
    def blocks(self) -> int:
        return int(self.volts.shape[1]) if self.volts.ndim == 2 else 0

    def __len__(self) -> int:
        return len(self.t_ms)


@dataclass(frozen=True, slots=True)
class ResistanceTrend:
    """One reading per day (the first stored that day), ``ris[day, block]`` in mΩ."""

    string: int
    t_ms: npt.NDArray[np.int64]
    ris: Array


@dataclass(frozen=True, slots=True)
class UpsSeries:
    """The linked UPS's stored readings over a window (NaN: not known); empty without one."""

    t_ms: npt.NDArray[np.int64]
    on_battery: Array  # 1, 0 or NaN
    load_pct: Array
    runtime_s: Array
    input_voltage: Array

    def __len__(self) -> int:
        return len(self.t_ms)


def ups_series(rows: list[UpsRow]) -> UpsSeries:
    def column(values: list[float | None]) -> Array:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    return UpsSeries(
        np.array([r.t_ms for r in rows], dtype=np.int64),
        column([None if r.on_battery is None else float(r.on_battery) for r in rows]),
        column([r.load_pct for r in rows]),
        column([r.runtime_s for r in rows]),
        column([r.input_voltage for r in rows]),
    )


@dataclass(frozen=True, slots=True)
class StringDischarge:
    record: DischargeRecord
    series: Series
    trend: ResistanceTrend


@dataclass(frozen=True, slots=True)
class DischargeData:
    """One discharge: the chosen record and every other string's record of the same outage."""

    strings: list[StringDischarge]
    recovery_s: float
    end_v_per_cell: float
    ups: UpsSeries  # the linked UPS over the whole outage (one UPS feeds every string)


@dataclass(frozen=True, slots=True)
class PeriodData:
    start: datetime
    end: datetime
    series: list[Series]
    events: list[EventRow]
    discharges: list[DischargeRecord]


def _u16(blobs: list[bytes], n: int, scale: float) -> Array:
    return _matrix(blobs, n, "<u2", U16_NONE) / scale


def _matrix(blobs: list[bytes], n: int, dtype: str, none: int) -> Array:
    """Rows of fixed-width blocks into a float matrix; short rows (a block added later) and
    the "no value" code become NaN."""
    if not blobs:
        return np.empty((0, n))
    width = 2 * n
    if all(len(b) == width for b in blobs):
        raw = np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(blobs), n)
    else:
        filler = np.array([none], dtype=dtype).tobytes()
        padded = [b[:width] + filler * (n - len(b[:width]) // 2) for b in blobs]
        raw = np.frombuffer(b"".join(padded), dtype=dtype).reshape(len(blobs), n)
    out = raw.astype(np.float64)
    out[raw == np.array(none, dtype=dtype)] = np.nan
    return out


def _resistances(blobs: list[bytes], n: int) -> Array:
    codes = _matrix(blobs, n, "<u2", U16_NONE)
    return np.round(10.0 ** (codes / R_LOG_STEPS + R_LOG_MIN), 6)


def series_of(rows: list[SampleRow], string: int) -> Series:
    n = max((len(r.volts) // 2 for r in rows), default=0)
    return Series(
        string=string,
        t_ms=np.array([r.t_ms for r in rows], dtype=np.int64),
        state=[r.state for r in rows],
        current=np.array([np.nan if r.current is None else r.current for r in rows]),
        volts=_u16([r.volts for r in rows], n, V_SCALE),
        temps=_matrix([r.temps for r in rows], n, "<i2", I16_NONE) / T_SCALE,
        balance=_u16([r.balance for r in rows], n, I_SCALE),
    )


def resistance_trend(
    reader: HistoryReader, string: int, start: datetime, end: datetime
) -> ResistanceTrend:
    """The first stored row of every day: a resistance changes when a module measures (daily
    at most), so one reading a day is the whole trend at a fraction of the rows."""
    lo, hi = key_range(string, ms(start), ms(end))
    conn = sqlite3.connect(f"file:{reader.path}?mode=ro", uri=True, timeout=reader.busy_timeout_s)
    try:
        rows = conn.execute(
            f"SELECT min(key) & {T_MASK}, ris FROM samples WHERE key BETWEEN ? AND ? "
            f"GROUP BY (key & {T_MASK}) / {DAY_MS} ORDER BY 1",
            (lo, hi),
        ).fetchall()
    finally:
        conn.close()
    n = max((len(b) // 2 for _, b in rows), default=0)
    return ResistanceTrend(
        string,
        np.array([t for t, _ in rows], dtype=np.int64),
        _resistances([b for _, b in rows], n),
    )


def _same_outage(chosen: DischargeRecord, others: list[DischargeRecord]) -> list[DischargeRecord]:
    """The chosen record and, per other string, the newest record overlapping it in time."""
    picked: dict[int, DischargeRecord] = {chosen.string: chosen}
    for r in others:
        if r.string in picked or r.start > chosen.end or r.end < chosen.start:
            continue
        picked[r.string] = r
    return [picked[s] for s in sorted(picked)]


def load_discharge(
    reader: HistoryReader, which: str | int, string: int | None = None
) -> DischargeData:
    """``which``: ``"last"``, a record number or a date (as ``bacs export --list`` shows).
    Without ``string``, every string that discharged in the same outage is in the report."""
    chosen = reader.discharge(which, string)
    if chosen is None:
        raise ReportError(f"no discharge {which!r} in {reader.path} (see bacs export --list)")
    records = [chosen]
    if string is None:
        margin = timedelta(days=1)
        records = _same_outage(chosen, reader.discharges(None, chosen.start - margin, chosen.end))
    cfg = reader.config
    out: list[StringDischarge] = []
    for r in records:
        w0 = r.start - timedelta(seconds=BEFORE_S)
        w1 = r.end + timedelta(seconds=cfg.recovery_s + 120.0)
        series = series_of(list(reader.samples(w0, w1, r.string)), r.string)
        trend = resistance_trend(reader, r.string, r.end - timedelta(days=RESISTANCE_DAYS), w1)
        out.append(StringDischarge(r, series, trend))
    w0 = min(r.start for r in records) - timedelta(seconds=BEFORE_S)
    w1 = max(r.end for r in records) + timedelta(seconds=cfg.recovery_s + 120.0)
    ups = ups_series(reader.ups(w0, w1))
    return DischargeData(out, cfg.recovery_s, cfg.end_v_per_cell, ups)


def load_period(
    reader: HistoryReader, start: datetime, end: datetime, string: int | None = None
) -> PeriodData:
    if end <= start:
        raise ReportError("the period ends before it starts")
    strings = [string] if string is not None else range(1, MAX_STRING + 1)
    series = []
    for s in strings:
        rows = list(reader.samples(start, end, s))
        if rows:
            series.append(series_of(rows, s))
    if not series:
        raise ReportError(
            f"no history between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} in {reader.path}"
        )
    events = [
        e
        for e in reader.events(start, end)
        if e.type in ALARM_TYPES and (string is None or e.string in (None, string))
    ]
    discharges = sorted(reader.discharges(string, start, end), key=lambda r: (r.start, r.string))
    return PeriodData(start, end, series, events, discharges)


def times(t_ms: npt.NDArray[np.int64]) -> list[datetime]:
    return [from_ms(int(t)) for t in t_ms]
