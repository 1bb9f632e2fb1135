"""The recorder on the simulator: adaptive intervals, the burst around an alarm, energy
totals across a restart, and a slow disk that never blocks the poll cycle."""

from __future__ import annotations

import itertools
import sqlite3
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bacs_core.events import EventType
from bacs_core.history import HistoryConfig, HistoryStore, SampleRow, StoreState
from bacs_core.history.batch import WriteBatch
from bacs_core.history.codec import SampleKind, ms
from bacs_core.history.writer import HistoryWriter
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import ChargeState
from tests.core.history_site import EPOCH, POLL_S, HistorySite


def _room() -> Room:
    return Room(RoomConfig(strings=2, blocks=8, capacity_ah=40, settle_days=0.5, seed=5))


def _rows(site: HistorySite, string: int) -> list[SampleRow]:
    return list(site.store.samples(EPOCH, EPOCH + timedelta(days=30), string))


async def test_float_every_interval_then_every_poll_in_and_after_a_discharge(
    tmp_path: Path,
) -> None:
    config = HistoryConfig(float_interval_s=120.0, recovery_s=60.0, active_after_s=120.0)
    site = HistorySite(_room(), tmp_path, config)
    await site.start()
    await site.cycles(60)  # 10 min of float
    site.flush()
    rows = _rows(site, 1)
    assert [r.kind for r in rows] == [SampleKind.FLOAT] * 5
    gaps = {(b.t_ms - a.t_ms) / 1000 for a, b in itertools.pairwise(rows)}
    assert gaps == {120.0}
    assert len(_rows(site, 2)) == 5

    site.room.set_mode(1, ChargerMode.DISCHARGE, 8.0)
    await site.cycles(6)  # 1 min in discharge
    site.room.set_mode(1, ChargerMode.FLOAT)
    await site.cycles(60)
    site.room.set_mode(1, ChargerMode.BOOST)  # a boost charge
    snaps = [await site.cycles(1) for _ in range(6)]
    site.room.set_mode(1, ChargerMode.REST)  # charger off (floating down from boost would
    # make the simulated charger sink current for a moment)
    snaps += [await site.cycles(1) for _ in range(60)]
    site.flush()
    rows = _rows(site, 1)[5:]
    boost = snaps[0].timestamp
    in_discharge = [r for r in rows if r.state is ChargeState.DISCHARGE and r.time < boost]
    assert len(in_discharge) >= 6
    assert all(r.kind is SampleKind.DISCHARGE for r in in_discharge)
    end = in_discharge[-1].time

    def offsets(kind: SampleKind, since: object) -> list[float]:
        return [
            (r.time - since).total_seconds()  # type: ignore[operator]
            for r in rows
            if r.kind is kind
        ]

    # Every poll until the recovery reading (kept with the discharge), then every poll until
    # active_after_s, then one row per float interval.
    assert [x for x in offsets(SampleKind.DISCHARGE, end) if 0 < x < 600] == [
        10.0 * k for k in range(1, 7)
    ]
    after = [x for x in offsets(SampleKind.ACTIVE, end) if 0 < x < 600]
    assert after == [10.0 * k for k in range(7, 13)]
    assert [x for x in offsets(SampleKind.FLOAT, end) if 0 < x < 600] == [240.0, 360.0, 480.0]
    # A charge: every poll while charging and active_after_s after it.
    charging = [s.timestamp for s in snaps if s.strings[0].charge_state is ChargeState.CHARGE]
    assert charging
    charge_end = max(charging)
    tail = [x for x in offsets(SampleKind.ACTIVE, charge_end) if x > -60]
    assert tail[-1] == 120.0
    assert tail == [tail[0] + 10.0 * k for k in range(len(tail))]
    assert [x for x in offsets(SampleKind.FLOAT, charge_end) if x > 0] == [240.0, 360.0, 480.0]
    # String 2 stayed on float throughout: one row per interval.
    assert all(r.kind is SampleKind.FLOAT for r in _rows(site, 2))
    await site.stop()


async def test_a_burst_around_an_alarm(tmp_path: Path) -> None:
    config = HistoryConfig(burst_before_s=60.0, burst_after_s=60.0)
    site = HistorySite(_room(), tmp_path, config)
    await site.start()
    await site.cycles(40)
    site.room.inject(Fault(FaultKind.DEAD, 2, 3))
    await site.cycles(20)
    raised = [e for e in site.events if e.type is EventType.ALARM_RAISED]
    assert raised
    alarm_t = raised[0].timestamp
    # A dead block raises more than one alarm (it does not answer; the runaway detector cannot
    # watch it): the burst runs from before the first to after the last.
    last_s = int((raised[-1].timestamp - alarm_t).total_seconds())
    assert last_s <= 20
    site.flush()
    for string in (1, 2):
        rows = _rows(site, string)
        assert rows[0].kind is SampleKind.FLOAT  # the first sample, 20 min interval after
        burst = [r for r in rows if r.kind is SampleKind.BURST]
        offsets = [(r.time - alarm_t).total_seconds() for r in burst]
        assert offsets == [float(x) for x in range(-60, last_s + 61, 10)]
    # The dead block is stored as "no value", the others as read.
    at_alarm = next(r for r in _rows(site, 2) if r.time == alarm_t)
    volts = at_alarm.voltages()
    assert volts[2] is None and all(v is not None and v > 12 for i, v in enumerate(volts) if i != 2)
    stored = site.store.events(EPOCH, EPOCH + timedelta(days=1))
    [lost] = [e for e in raised if e.device is not None]
    assert any(e.type == "alarm_raised" and e.device == str(lost.device) for e in stored)
    await site.stop()


async def test_energy_totals_survive_a_restart_without_double_counting(tmp_path: Path) -> None:
    room = _room()
    truth = {"charged": 0.0, "discharged": 0.0}

    async def run(site: HistorySite, n: int) -> None:
        for _ in range(n):
            await site.cycles(1)
            p = room.string(1).physics
            watts = sum(p.voltages) * p.string_current_a
            truth["charged" if watts > 0 else "discharged"] += abs(watts) * POLL_S / 3600

    site = HistorySite(room, tmp_path)
    await site.start()
    room.set_mode(1, ChargerMode.DISCHARGE, 8.0)
    await run(site, 90)
    before = site.recorder.energy_totals(1)
    await site.stop()
    assert before.discharged_wh == pytest.approx(truth["discharged"], rel=0.02)

    again = HistorySite(room, tmp_path, start_s=site.clock[0])
    await again.start()
    restored = again.recorder.energy_totals(1)
    assert restored.discharged_wh == pytest.approx(before.discharged_wh, abs=1e-6)
    assert restored.charged_wh == pytest.approx(before.charged_wh, abs=1e-6)
    await run(again, 90)  # the discharge goes on; the interval across the restart is skipped
    mid = again.recorder.energy_totals(1)
    room.set_mode(1, ChargerMode.BOOST)
    await run(again, 180)  # recharge at the charger's current limit
    after = again.recorder.energy_totals(1)
    await again.stop()
    assert mid.discharged_wh > before.discharged_wh
    skipped = 8.0 * sum(room.string(1).physics.voltages) * POLL_S / 3600  # one interval
    assert mid.discharged_wh == pytest.approx(truth["discharged"] - skipped, rel=0.02)
    assert after.discharged_wh >= mid.discharged_wh
    assert after.charged_wh > 150
    assert after.charged_wh == pytest.approx(truth["charged"], rel=0.03)
    assert HistoryStore(tmp_path).energy_totals()[1].discharged_wh == pytest.approx(
        after.discharged_wh
    )
    # The discharge the restart cut in two: the first part is kept, marked interrupted, with
    # its figures up to the stop; the second is a discharge of its own.
    second, first = HistoryStore(tmp_path).discharges(string=1)
    assert first.interrupted and not first.in_progress
    assert first.ah == pytest.approx(8.0 * 90 * POLL_S / 3600, rel=0.02)
    assert not second.interrupted and second.start > first.end
    assert second.ah == pytest.approx(8.0 * 90 * POLL_S / 3600, rel=0.03)


async def test_a_file_from_a_newer_version_costs_the_history_not_the_manager(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "history.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    site = HistorySite(_room(), tmp_path)
    await site.start()
    snap = await site.cycles(3)
    site.flush()
    status = site.recorder.status
    assert snap.cycle == 3
    assert status.store.state is StoreState.ERROR
    assert status.writer.dropped_samples == 2  # the first sample of each string
    await site.stop()


def test_a_slow_disk_drops_samples_counted_and_never_blocks(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path)
    store.open()
    writer = HistoryWriter(store, max_backlog=10, now=lambda: EPOCH)
    writer.start()
    row = SampleRow(0, 1, SampleKind.FLOAT, ChargeState.FLOAT, 0.1, 13.6, 100.0, b"", b"", b"", b"")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file: the disk is "slow"
    for k in range(50):  # had submit waited for the disk, nothing would be dropped
        writer.submit(WriteBatch(samples=[replace(row, t_ms=ms(EPOCH) + k)]))
    time.sleep(0.2)
    other.execute("COMMIT")
    other.close()
    assert writer.flush(10.0)
    stats = writer.stats()
    assert stats.dropped_samples > 0
    stored = list(store.samples(EPOCH, EPOCH + timedelta(seconds=1)))
    assert len(stored) + stats.dropped_samples == 50
    writer.stop()
    store.close()


async def test_attach_before_start_is_refused(tmp_path: Path) -> None:
    site = HistorySite(_room(), tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        site.recorder.attach(site.manager)
