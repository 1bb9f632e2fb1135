"""./scripts/bench history [--json]: the history store at 330 blocks (10 strings of 33).

write_cpu_ms_per_cycle_p99: the real Manager on the in-process simulator with the recorder
  attached; per poll cycle, the CPU the recorder's listeners took on the event loop plus the
  CPU the writer thread took to write that cycle's rows (the writer is flushed after every
  cycle, so nothing is batched across cycles: a pessimistic figure). p99 over float cycles,
  a C/10 discharge of every string (all 330 blocks written every poll) and an alarm burst,
  with a linked UPS reporting at every poll (on battery through the discharge).
bytes_per_block_per_day_float: a year of float rows (every 20 min), bulk inserted through the
  store's own API, the file's used bytes divided by 330 blocks and 365 days.
days_in_1_gib: the same year plus one discharge a month on every string (2 h discharge at
  every 10 s poll, 10 min recovery, 8 h recharge at every poll, 30 min after: 3 840 rows per
  string per month), 1 GiB divided by the bytes per day.
query_block_year_ms: one block's year of voltages (HistoryStore.block_voltages), median of 5.
report_s: ``bacs report --discharge last`` on that year's file: the last monthly discharge of
  all 10 strings (330 blocks, 2 h at every 10 s poll, one outage), its records written through
  the store (one weak block per string, the UPS's load and runtime at every poll), the page
  rendered (read, analyse, plot, HTML); median
  of 3, in-process (the CLI adds about 1 s of Python and matplotlib start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bacs_core.events import EventType
from bacs_core.history import HistoryRecorder, HistoryStore, SampleRow, UpsStatus
from bacs_core.history.codec import SampleKind, ms
from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig, Scenario
from bacs_core.snapshot import ChargeState

STRINGS, BLOCKS = 10, 33
POLL_S = 10.0
GIB = 1024**3
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def write_cpu(directory: Path, float_cycles: int, discharge_cycles: int) -> dict[str, float]:
    room = Room(RoomConfig(strings=STRINGS, blocks=BLOCKS, capacity_ah=100, settle_days=0.2))
    clock = [0.0]

    def manager_clock() -> datetime:
        return T0 + timedelta(seconds=clock[0])

    config = validate_config(
        {
            "buses": [{"id": f"bus{i + 1}", "url": "sim://x"} for i in range(len(room.buses))],
            "string_count": STRINGS,
            "poll_interval": POLL_S,
        }
    )
    manager = Manager(
        config,
        storage=MemoryStorage(),
        transports={f"bus{i + 1}": LoopbackTransport(room, i) for i in range(len(room.buses))},
        clock=lambda: clock[0],
        wall_clock=manager_clock,
    )
    recorder = HistoryRecorder(HistoryStore(directory), clock=manager_clock)
    await recorder.start()
    recorder.attach(manager)
    await manager.start(run_loop=False)
    alarms = [0]
    manager.add_event_listener(
        lambda e: alarms.__setitem__(0, alarms[0] + (e.type is EventType.ALARM_RAISED))
    )
    samples: dict[str, list[float]] = {"float": [], "discharge": [], "alarm": []}
    parts: dict[str, list[tuple[float, float]]] = {"float": [], "discharge": [], "alarm": []}

    async def cycle(phase: str, ups: UpsStatus | None = None) -> None:
        room.step(POLL_S)
        clock[0] += POLL_S
        status = recorder.status
        loop0, writer0 = status.loop_cpu_s, status.writer.cpu_s
        if ups is not None:  # a linked UPS reporting every poll (counted with the cycle)
            recorder.ups_update(ups)
        await manager.poll_once()
        recorder.writer.flush(30.0)
        status = recorder.status
        loop_ms = (status.loop_cpu_s - loop0) * 1000.0
        writer_ms = (status.writer.cpu_s - writer0) * 1000.0
        samples[phase].append(loop_ms + writer_ms)
        parts[phase].append((loop_ms, writer_ms))

    for _ in range(5):
        await cycle("float")
    samples["float"].clear()
    for _ in range(float_cycles):
        await cycle("float", UpsStatus(False, 35.0, 3600.0, 230.0))
    room.set_scenario(Scenario.DISCHARGE)
    for k in range(discharge_cycles):  # the UPS on battery: it opens the records first
        await cycle("discharge", UpsStatus(True, 35.0 + k % 5, 3600.0 - 10.0 * k, 0.0))
    room.set_scenario(Scenario.FLOAT)
    await cycle("float", UpsStatus(False, 35.0, 3000.0, 230.0))
    for _ in range(199):  # past the active window, back to float
        await cycle("float")
    room.inject(Fault(FaultKind.DEAD, 3, 5))
    for _ in range(30):
        await cycle("alarm")
    await manager.stop()
    await recorder.stop()
    every = samples["float"] + samples["discharge"] + samples["alarm"]
    return {
        "write_cpu_ms_per_cycle_p99": round(p99(every), 3),
        "write_cpu_ms_per_cycle_p99_discharge": round(p99(samples["discharge"]), 3),
        "write_cpu_ms_per_cycle_max": round(max(every), 3),
        "write_cpu_ms_per_cycle_median_float": round(statistics.median(samples["float"]), 3),
        "write_cpu_ms_per_cycle_median_discharge": round(
            statistics.median(samples["discharge"]), 3
        ),
        "loop_cpu_ms_median_discharge": round(
            statistics.median(p[0] for p in parts["discharge"]), 3
        ),
        "writer_cpu_ms_median_discharge": round(
            statistics.median(p[1] for p in parts["discharge"]), 3
        ),
        "alarm_raised": alarms[0] > 0,
        "cycles": len(every),
    }


def synthetic_row(
    rng: random.Random, t: datetime, string: int, kind: SampleKind, state: ChargeState
) -> SampleRow:
    base = 13.62 if state is not ChargeState.DISCHARGE else 12.2
    return SampleRow.from_values(
        ms(t),
        string,
        kind,
        state,
        0.1 if state is ChargeState.FLOAT else (-10.0 if kind is SampleKind.DISCHARGE else 8.0),
        [round(base + rng.gauss(0.0, 0.02), 3) for _ in range(BLOCKS)],
        [round(24.0 + rng.gauss(0.0, 0.5), 1) for _ in range(BLOCKS)],
        [round(5.0 + rng.gauss(0.0, 0.2), 3) for _ in range(BLOCKS)],
        [round(max(0.0, rng.gauss(0.05, 0.1)), 3) for _ in range(BLOCKS)],
        soc=100.0,
    )


class Pool:
    """Encoded rows drawn from a few hundred random ones (the encoding is fixed-width, so
    the values do not change the size), re-stamped with each row's time and string."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: dict[tuple[SampleKind, ChargeState], list[SampleRow]] = {}

    def row(self, t: datetime, string: int, kind: SampleKind, state: ChargeState) -> SampleRow:
        pool = self.rows.get((kind, state))
        if pool is None:
            pool = [synthetic_row(self.rng, T0, 1, kind, state) for _ in range(300)]
            self.rows[(kind, state)] = pool
        return replace(self.rng.choice(pool), t_ms=ms(t), string=string)


def fill_year(store: HistoryStore, with_discharges: bool) -> float:
    """A year of float at 20 min on every string, optionally a discharge a month. Returns s."""
    pool = Pool(random.Random(1))
    started = time.monotonic()
    float_step = timedelta(minutes=20)
    poll = timedelta(seconds=POLL_S)
    batch: list[SampleRow] = []
    t = T0
    end = T0 + timedelta(days=365)
    while t < end:
        for s in range(1, STRINGS + 1):
            batch.append(pool.row(t, s, SampleKind.FLOAT, ChargeState.FLOAT))
        t += float_step
        if len(batch) >= 20000:
            store.write_samples(batch)
            batch.clear()
    if with_discharges:
        for month in range(12):
            start = T0 + timedelta(days=30 * month + 15, seconds=5)
            phases = [
                (720, SampleKind.DISCHARGE, ChargeState.DISCHARGE),  # 2 h discharge
                (60, SampleKind.DISCHARGE, ChargeState.CHARGE),  # 10 min to the recovery
                (2880, SampleKind.ACTIVE, ChargeState.CHARGE),  # 8 h recharge
                (180, SampleKind.ACTIVE, ChargeState.FLOAT),  # 30 min after
            ]
            t = start
            for count, kind, state in phases:
                for _ in range(count):
                    for s in range(1, STRINGS + 1):
                        batch.append(pool.row(t, s, kind, state))
                    t += poll
                if len(batch) >= 20000:
                    store.write_samples(batch)
                    batch.clear()
    store.write_samples(batch)
    return time.monotonic() - started


def measure_size_and_query(directory: Path) -> dict[str, float]:
    store = HistoryStore(directory / "float")
    store.open()
    fill_s = fill_year(store, with_discharges=False)
    store.close()
    float_bytes = HistoryStore(directory / "float").used_bytes()
    per_block_day = float_bytes / (STRINGS * BLOCKS) / 365

    store = HistoryStore(directory / "mixed")
    store.open()
    fill_year(store, with_discharges=True)
    store.close()
    reader = HistoryStore(directory / "mixed")
    mixed_bytes = reader.used_bytes()
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        series = reader.block_voltages(5, 17, T0, T0 + timedelta(days=366))
        timings.append(time.perf_counter() - started)
    assert len(series.voltages) > 26000 and all(v is not None for v in series.voltages[:10])
    return {
        "bytes_per_block_per_day_float": round(per_block_day, 1),
        "days_in_1_gib": round(GIB / (mixed_bytes / 365)),
        "query_block_year_ms": round(statistics.median(timings) * 1000, 1),
        "query_block_year_points": len(series.voltages),
        "year_fill_s": round(fill_s, 1),
        "file_bytes_year_float": float_bytes,
        "file_bytes_year_with_discharges": mixed_bytes,
    }


def measure_report(directory: Path) -> dict[str, float]:
    """The discharge report for the last monthly discharge of the year's file (330 blocks)."""
    from bacs_core.history import BlockDischarge, DischargeRecord
    from bacs_core.history.batch import WriteBatch
    from bacs_core.history.reader import HistoryReader
    from bacs_core.history.ups import UpsRow
    from bacs_core.report import discharge_report

    start = T0 + timedelta(days=30 * 11 + 15, seconds=5)
    end = start + timedelta(seconds=POLL_S * 719)
    weak = 17
    records = []
    for string in range(1, STRINGS + 1):
        blocks = tuple(
            BlockDischarge(
                position=p,
                device=f"bus{string}/{p}",
                start_v=12.5,
                end_v=11.5 if p == weak else 11.9,
                recovery_v=12.5 if p == weak else 12.6,
                min_v=11.5 if p == weak else 11.9,
                shortfall_max_v=0.4 if p == weak else 0.01,
                shortfall_at=end,
                shortfall_end_v=0.4 if p == weak else 0.0,
                fell_at=start + timedelta(minutes=70) if p == weak else None,
                end_voltage_at=None,
                resistance_mohm=7.0 if p == weak else 5.0,
                resistance_ratio=1.4 if p == weak else 1.0,
                soh_discharge_pct=74.0 if p == weak else 100.0,
                soh_resistance_pct=80.0 if p == weak else 100.0,
                soh_pct=74.0 if p == weak else 100.0,
                replace_by=end.date() if p == weak else None,
            )
            for p in range(1, BLOCKS + 1)
        )
        records.append(
            DischargeRecord(
                string=string,
                start=start,
                end=end,
                duration_s=7190.0,
                ah=20.0,
                wh=20.0 * 12.2 * BLOCKS,
                mean_current_a=10.0,
                min_string_v=11.9 * BLOCKS,
                min_string_v_at=end,
                rated_ah=100.0,
                capacity_delivered_pct=20.0,
                reached_end_voltage=False,
                capacity_rate_adjusted_pct=None,
                mean_temperature_c=24.0,
                gap_s=0.0,
                recovered=True,
                early=(weak,),
                blocks=blocks,
                ups_on_battery_at=start,
                ups_on_line_at=end,
                ups_load_avg_pct=40.0,
                ups_load_max_pct=44.0,
                ups_runtime_start_s=9000.0,
                ups_runtime_end_s=1800.0,
            )
        )
    ups = [
        UpsRow(ms(start) + round(k * POLL_S * 1000), SampleKind.DISCHARGE, True,
               40.0 + k % 5, 9000.0 - 10.0 * k, 0.0)
        for k in range(720)
    ]  # fmt: skip
    store = HistoryStore(directory)
    store.open()
    store.write(WriteBatch(discharges=records, ups=ups))
    store.close()
    reader = HistoryReader(directory)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        html = discharge_report(reader, "last")
        timings.append(time.perf_counter() - started)
    assert html.count('<g id="bar-s') == STRINGS * BLOCKS and "block 17" in html
    assert html.count('<g id="ups-load"') == 1
    return {
        "report_s": round(statistics.median(timings), 2),
        "report_bytes": len(html.encode()),
        "report_blocks": STRINGS * BLOCKS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--float-cycles", type=int, default=200)
    parser.add_argument("--discharge-cycles", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bacs-bench-history-") as tmp:
        directory = Path(tmp)
        result: dict[str, object] = {}
        result.update(
            asyncio.run(write_cpu(directory / "cpu", args.float_cycles, args.discharge_cycles))
        )
        result.update(measure_size_and_query(directory))
        result.update(measure_report(directory / "mixed"))
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)  # a shared machine
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
