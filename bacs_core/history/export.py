"""Export stored rows for a period or one discharge as CSV (one line per block per sample,
for a spreadsheet) or JSON Lines (one object per string per sample, arrays of block values;
a discharge export starts with the discharge record itself; a linked UPS's readings are
``{"ups": {...}}`` lines among the samples, in time order)."""

from __future__ import annotations

import _csv
import csv
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TextIO

from .codec import SampleRow
from .reader import HistoryReader
from .records import DischargeRecord
from .ups import UpsRow

CSV_COLUMNS = (
    "time",
    "string",
    "position",
    "kind",
    "charge_state",
    "string_voltage_v",
    "string_current_a",
    "soc_pct",
    "voltage_v",
    "temperature_c",
    "resistance_mohm",
    "balance_current_a",
)


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def export_period(
    store: HistoryReader,
    out: TextIO,
    fmt: ExportFormat | str,
    start: datetime,
    end: datetime,
    string: int | None = None,
) -> int:
    """Write the rows stored between start and end; returns how many samples were written."""
    fmt = ExportFormat(fmt)
    ups = store.ups(start, end) if fmt is ExportFormat.JSONL else []
    return _write(out, fmt, store.samples(start, end, string), None, ups)


def export_discharge(
    store: HistoryReader, out: TextIO, fmt: ExportFormat | str, record: DischargeRecord
) -> int:
    """The discharge's string from its start to its recovery reading."""
    end = record.end + timedelta(seconds=store.config.recovery_s)
    rows = store.samples(record.start, end, record.string)
    fmt = ExportFormat(fmt)
    ups = store.ups(record.start, end) if fmt is ExportFormat.JSONL else []
    return _write(out, fmt, rows, record, ups)


def _write(
    out: TextIO,
    fmt: ExportFormat,
    rows: Iterable[SampleRow],
    record: DischargeRecord | None,
    ups: list[UpsRow] | None = None,
) -> int:
    count = 0
    if fmt is ExportFormat.CSV:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            count += 1
            _csv_rows(writer, row)
        return count
    if record is not None:
        out.write(json.dumps({"discharge": record.to_dict() | {"id": record.id}}) + "\n")
    readings = iter(ups or ())
    reading = next(readings, None)
    for row in rows:
        while reading is not None and reading.t_ms <= row.t_ms:
            out.write(json.dumps({"ups": _json_ups(reading)}) + "\n")
            reading = next(readings, None)
        count += 1
        out.write(json.dumps(_json_row(row)) + "\n")
    while reading is not None:
        out.write(json.dumps({"ups": _json_ups(reading)}) + "\n")
        reading = next(readings, None)
    return count


def _json_ups(u: UpsRow) -> dict[str, object]:
    return {
        "time": u.time.isoformat(),
        "on_battery": u.on_battery,
        "load_pct": u.load_pct,
        "runtime_s": u.runtime_s,
        "input_voltage_v": u.input_voltage,
    }


def _csv_rows(writer: _csv.Writer, r: SampleRow) -> None:
    when = r.time.isoformat()
    head = [when, r.string]
    tail = [r.kind.name.lower(), r.state.value, _f(r.voltage), _f(r.current), _f(r.soc)]
    for i, (v, t, ri, b) in enumerate(
        zip(r.voltages(), r.temperatures(), r.resistances(), r.balance_currents(), strict=True),
        1,
    ):
        writer.writerow([*head, i, *tail, _f(v), _f(t), _f(ri), _f(b)])


def _json_row(r: SampleRow) -> dict[str, object]:
    return {
        "time": r.time.isoformat(),
        "string": r.string,
        "kind": r.kind.name.lower(),
        "charge_state": r.state.value,
        "voltage_v": r.voltage,
        "current_a": r.current,
        "soc_pct": r.soc,
        "voltages_v": r.voltages(),
        "temperatures_c": r.temperatures(),
        "resistances_mohm": r.resistances(),
        "balance_currents_a": r.balance_currents(),
    }


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
