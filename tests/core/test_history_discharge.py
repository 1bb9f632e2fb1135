"""Every figure of the discharge analysis against a simulated discharge with a known weak
block (capacity ×0.75, Ri ×1.4 at position 7 of string 1), in the real manager's hands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, Room, RoomConfig
from bacs_core.snapshot import SystemSnapshot
from tests.core.history_site import LOAD_A, POLL_S, WEAK, HistorySite


def test_the_discharge_record(discharged: tuple[HistorySite, SystemSnapshot]) -> None:
    site, before = discharged
    record = site.recorder.last_discharge(1)
    assert record is not None
    assert site.recorder.last_discharge(2) is None  # string 2 stayed on float
    assert not record.in_progress
    assert record.recovered
    # Start, end, duration: the first and last sample in discharge.
    assert (record.start - before.timestamp).total_seconds() == POLL_S
    assert abs(record.duration_s - 7200) <= 2 * POLL_S
    # Ah and Wh against the simulator's truth.
    truth = site.delivered_ah[1]
    assert truth == pytest.approx(16.0, rel=0.01)
    assert record.ah == pytest.approx(truth, rel=0.02)
    mean_v = record.wh / record.ah
    assert 16 * 11.5 < mean_v < 16 * 13.0
    assert record.mean_current_a == pytest.approx(LOAD_A, rel=0.02)
    # Minimum string voltage: the sum of the block voltages at its worst, near the end.
    assert record.min_string_v is not None
    assert record.min_string_v == pytest.approx(sum(b.end_v for b in record.blocks), abs=0.2)
    assert record.min_string_v_at is not None and record.min_string_v_at > record.start
    # Capacity against the rating (40 Ah): 16 Ah delivered, not a capacity test.
    assert record.rated_ah == 40
    assert record.capacity_delivered_pct == pytest.approx(100 * truth / 40, abs=1.0)
    assert not record.reached_end_voltage
    assert record.capacity_rate_adjusted_pct is None
    assert record.gap_s == 0
    assert record.mean_temperature_c == pytest.approx(25.0, abs=3.0)  # the room's ambient


def test_consumers_hear_of_the_discharge(
    discharged: tuple[HistorySite, SystemSnapshot],
) -> None:
    site, _ = discharged
    heard = site.announced
    assert heard[0].in_progress and heard[0].ah < 0.1  # from its first sample
    assert [r.in_progress for r in heard].count(False) == 2  # the end, then the recovery
    assert not heard[-2].recovered and heard[-1].recovered
    assert heard[-1] == site.recorder.last_discharge(1)
    # The first sample, a save every 5 minutes, the end, the recovery reading.
    assert len(heard) == 1 + int(heard[-1].duration_s // 300) + 2


def test_the_weak_block_is_ranked_first(discharged: tuple[HistorySite, SystemSnapshot]) -> None:
    site, _ = discharged
    record = site.recorder.last_discharge(1)
    assert record.early[0] == WEAK
    weak = record.block(WEAK)
    healthy = [b for b in record.blocks if b.position != WEAK]
    assert weak.shortfall_max_v > 0.1
    assert all(weak.shortfall_max_v > 2 * (b.shortfall_max_v or 0) for b in healthy)
    assert weak.fell_at is not None and record.start < weak.fell_at <= record.end
    assert weak.shortfall_at is not None
    assert record.weakest is weak
    # End and recovery voltages: every block recovers above where the discharge left it.
    for b in record.blocks:
        assert b.end_v is not None and b.recovery_v is not None
        assert b.recovery_v > b.end_v + 0.2
        assert b.start_v > b.end_v
    assert weak.end_v < min(b.end_v for b in healthy)


def test_state_of_health_per_block(discharged: tuple[HistorySite, SystemSnapshot]) -> None:
    site, _ = discharged
    record = site.recorder.last_discharge(1)
    weak = record.block(WEAK)
    # The weak block holds 75 % of the rating (less at this rate): the estimate sees it.
    assert weak.soh_discharge_pct is not None
    assert 60 <= weak.soh_discharge_pct <= 85
    assert weak.soh_pct == min(weak.soh_discharge_pct, weak.soh_resistance_pct or 100)
    assert weak.replace_by == record.end.date()  # below 80 %: replace now
    for b in record.blocks:
        if b.position != WEAK:
            assert b.soh_discharge_pct >= 90, b
            assert b.replace_by is None  # two hours hold no resistance trend to project


def test_the_record_is_stored_and_found(discharged: tuple[HistorySite, SystemSnapshot]) -> None:
    site, _ = discharged
    memory = site.recorder.last_discharge(1)
    stored = site.store.discharge("last")
    assert stored is not None and stored.id is not None
    assert stored.string == 1
    assert stored.to_dict() | {"id": None} == memory.to_dict() | {"id": None}
    assert site.store.discharge(str(stored.id)) == stored
    assert site.store.discharge(stored.start.astimezone().date().isoformat()) == stored
    assert site.store.discharge("2020-01-01") is None
    with pytest.raises(ValueError, match="last"):
        site.store.discharge("yesterday")


async def test_a_capacity_test_to_the_end_voltage(tmp_path: Path) -> None:
    """A C/2 discharge run until the string's mean reaches 1.75 V/cell: the capacity against
    the rating at this rate, and the weak block's own capacity from when it got there."""
    room = Room(
        RoomConfig(
            strings=1,
            blocks=8,
            capacity_ah=40,
            settle_days=0.5,
            seed=2,
            faults=(Fault.parse("weak:1:3"),),
        )
    )
    site = HistorySite(room, tmp_path, manager_config={"string_count": 1})
    await site.start()
    await site.cycles(3)
    room.set_mode(1, ChargerMode.DISCHARGE, 20.0)
    weak_ah = None  # the simulator's Ah when the weak block first read ≤ 1.75 V/cell
    for _ in range(2000):
        snap = await site.cycles(1)
        volts = [m.voltage.value for m in snap.strings[0].modules]
        if weak_ah is None and volts[2] <= 1.75 * 6:
            weak_ah = site.delivered_ah[1]
        if sum(volts) / len(volts) <= 1.75 * 6:
            break
    room.set_mode(1, ChargerMode.FLOAT)
    await site.cycles(3)
    await site.stop()
    record = site.recorder.last_discharge(1)
    assert record is not None
    assert record.reached_end_voltage
    assert record.ah == pytest.approx(site.delivered_ah[1], rel=0.02)
    # The simulator's rated capacity at C/2 is 40 × (4 / 20) ** 0.2 = 29.0 Ah (Peukert 1.2);
    # the healthy blocks hold it, the weak one (×0.75) drags the string's end a little early.
    assert 85 <= record.capacity_rate_adjusted_pct <= 100
    weak = record.block(3)
    assert weak.end_voltage_at is not None and weak.end_voltage_at < record.end
    assert record.early[0] == 3
    # The weak block's own capacity to 1.75 V/cell at this current, against the rating at
    # this rate (about 64 %: capacity ×0.75 and, at its higher relative rate, a larger drop).
    assert weak_ah is not None
    assert weak.soh_discharge_pct == pytest.approx(100 * weak_ah / (40 * 0.2**0.2), abs=2)
    assert weak.soh_discharge_pct < 80
    assert all(b.soh_discharge_pct >= 85 for b in record.blocks if b.position != 3)


def test_bacs_export_lists_and_exports_the_discharge(
    discharged: tuple[HistorySite, SystemSnapshot], tmp_path: Path
) -> None:
    site, _ = discharged
    directory = str(site.store.path.parent)
    bacs = [sys.executable, "-m", "bacs_core", "export", directory]
    listing = subprocess.run(
        [*bacs, "--list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    record = site.store.discharge("last")
    assert record is not None
    assert f"{record.id:>5}  string 1" in listing and f"block {WEAK}" in listing
    lines = subprocess.run(
        [*bacs, "--discharge", "last", "--format", "jsonl"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    head = json.loads(lines[0])["discharge"]
    assert head["id"] == record.id and head["early"][0] == WEAK
    rows = [json.loads(line) for line in lines[1:]]
    assert rows[0]["time"] == record.start.isoformat()
    assert len(rows) >= 720 and all(r["string"] == 1 for r in rows)
    out = tmp_path / "d.csv"
    subprocess.run(
        [*bacs, "--discharge", str(record.id), "--out", str(out)], check=True, timeout=60
    )
    table = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert len(table) == 16 * len(rows)
    bad = subprocess.run(
        [*bacs, "--discharge", "999"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and "no discharge '999'" in bad.stderr
