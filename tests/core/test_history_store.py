"""The history file itself: queries, export, retention by age and size (discharges kept),
migration of a v1 file, and damaged files set aside without stopping the manager."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bacs_core.history import HistoryConfig, HistoryStore, SampleRow, StoreState
from bacs_core.history.batch import WriteBatch
from bacs_core.history.codec import SampleKind, ms
from bacs_core.history.export import export_period
from bacs_core.history.schema import VERSION
from bacs_core.history.writer import HistoryWriter
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import ChargeState
from tests.core.history_site import HistorySite

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BLOCKS = 33


def _row(
    when: datetime, string: int = 1, kind: SampleKind = SampleKind.FLOAT, base: float = 13.6
) -> SampleRow:
    volts = [round(base + 0.001 * i, 3) for i in range(BLOCKS)]
    state = ChargeState.DISCHARGE if kind is SampleKind.DISCHARGE else ChargeState.FLOAT
    return SampleRow.from_values(
        ms(when),
        string,
        kind,
        state,
        -8.0 if kind is SampleKind.DISCHARGE else 0.1,
        volts,
        [25.0 + 0.1 * i for i in range(BLOCKS)],
        [5.0] * BLOCKS,
        [0.0] * BLOCKS,
        soc=100.0,
    )


def _open(directory: Path, config: HistoryConfig | None = None) -> HistoryStore:
    store = HistoryStore(directory, config, busy_timeout_s=0.2)
    assert store.open().state is StoreState.OK
    return store


def _float_days(days: int, step_s: int = 1200, strings: int = 2) -> list[SampleRow]:
    return [
        _row(T0 + timedelta(seconds=t), s)
        for t in range(0, days * 86400, step_s)
        for s in range(1, strings + 1)
    ]


def test_one_blocks_voltages_and_missing_values(tmp_path: Path) -> None:
    store = _open(tmp_path)
    rows = [_row(T0 + timedelta(minutes=20 * k), 1, base=13.0 + 0.01 * k) for k in range(10)]
    gap = SampleRow.from_values(
        ms(T0 + timedelta(hours=5)), 1, SampleKind.FLOAT, ChargeState.FLOAT, None, [None] * BLOCKS
    )
    store.write_samples([*rows, gap, _row(T0, 2, base=12.0)])
    series = store.block_voltages(1, 5, T0, T0 + timedelta(days=1))
    assert series.times == [r.time for r in rows] + [gap.time]
    assert series.voltages == [pytest.approx(13.004 + 0.01 * k) for k in range(10)] + [None]
    assert store.block_voltages(2, 1, T0, T0).voltages == [12.0]
    assert store.block_voltages(1, BLOCKS + 1, T0, T0 + timedelta(days=1)).voltages[0] is None
    back = next(store.samples(T0, T0, 1))
    assert back.temperatures()[3] == pytest.approx(25.3)
    assert back.resistances() == [pytest.approx(5.0, rel=3e-4)] * BLOCKS
    assert back.voltage == pytest.approx(sum(13.0 + 0.001 * i for i in range(BLOCKS)))
    store.close()


def test_resistance_keeps_its_resolution_from_2_v_cells_to_loose_straps(tmp_path: Path) -> None:
    store = _open(tmp_path)
    values = [0.05, 0.21, 0.2, 5.0, 7.51, 200.0, 3000.0, None]
    row = SampleRow.from_values(
        ms(T0), 1, SampleKind.FLOAT, ChargeState.FLOAT, 0.0, [2.2] * 8, resistances=values
    )
    store.write_samples([row])
    back = next(store.samples(T0, T0)).resistances()
    for got, want in zip(back, values, strict=True):
        assert got == (None if want is None else pytest.approx(want, rel=3e-4))
    store.close()


def test_export_a_period_as_csv_and_jsonl(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.write_samples([_row(T0 + timedelta(minutes=20 * k)) for k in range(3)])
    out = io.StringIO()
    assert export_period(store, out, "csv", T0, T0 + timedelta(hours=1)) == 3
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(lines) == 3 * BLOCKS
    assert lines[4]["position"] == "5"
    assert float(lines[4]["voltage_v"]) == pytest.approx(13.604)
    assert lines[0]["charge_state"] == "float"
    out = io.StringIO()
    export_period(store, out, "jsonl", T0, T0 + timedelta(hours=1), string=1)
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(objects) == 3
    assert objects[0]["voltages_v"][4] == pytest.approx(13.604)
    with pytest.raises(ValueError, match="xml"):
        export_period(store, io.StringIO(), "xml", T0, T0)
    store.close()


def test_retention_by_age_keeps_the_discharges(tmp_path: Path) -> None:
    store = _open(tmp_path, HistoryConfig(max_age_days=30, max_bytes=None))
    rows = _float_days(100, step_s=3600)
    discharge = [
        _row(T0 + timedelta(days=10, seconds=5 + 10 * k), 1, SampleKind.DISCHARGE)
        for k in range(50)
    ]
    store.write_samples(rows + discharge)
    store.write(
        WriteBatch(
            events=[
                _event(T0 + timedelta(days=5)),
                _event(T0 + timedelta(days=95)),
            ]
        )
    )
    result = store.apply_retention(T0 + timedelta(days=100))
    kept = list(store.samples(T0, T0 + timedelta(days=200)))
    assert min(r.time for r in kept if r.kind is SampleKind.FLOAT) >= T0 + timedelta(days=70)
    assert len([r for r in kept if r.kind is SampleKind.DISCHARGE]) == 50
    assert [e.t_ms for e in store.events(T0, T0 + timedelta(days=200))] == [
        ms(T0 + timedelta(days=95))
    ]
    assert result.deleted_by_age == 2 * 70 * 24 + 1
    store.close()


def test_retention_by_size_thins_the_oldest_float_first(tmp_path: Path) -> None:
    limit = 1024 * 1024
    store = _open(tmp_path, HistoryConfig(max_bytes=limit, max_age_days=None))
    rows = _float_days(40, step_s=600)  # ~3 MiB of float rows
    discharge = [
        _row(T0 + timedelta(days=2, seconds=10 * k), 1, SampleKind.DISCHARGE) for k in range(300)
    ]
    store.write_samples(rows + discharge)
    assert store.used_bytes() > 2 * limit
    result = store.apply_retention(T0 + timedelta(days=40))
    assert store.used_bytes() <= limit
    assert not result.over_limit
    assert result.thinned > 0
    kept = list(store.samples(T0, T0 + timedelta(days=41), 1))
    assert len([r for r in kept if r.kind is SampleKind.DISCHARGE]) == 300  # never thinned
    conn = sqlite3.connect(store.path)
    counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("samples", "volts")]
    conn.close()
    assert counts[0] == counts[1]  # the voltages went with their rows

    def spacing(day: int) -> float:
        times = [r.t_ms for r in kept if r.kind is SampleKind.FLOAT and (r.time - T0).days == day]
        return (times[-1] - times[0]) / 1000 / max(1, len(times) - 1) if times else float("inf")

    # The newest data keeps its resolution; the older the data, the coarser (but still there).
    assert spacing(39) == 600
    assert float("inf") > spacing(1) > spacing(25) > spacing(35) > spacing(39)
    store.close()


def test_discharges_alone_over_the_limit_are_kept_and_reported(tmp_path: Path) -> None:
    store = _open(tmp_path, HistoryConfig(max_bytes=1024 * 1024, max_age_days=None))
    store.write_samples(
        _row(T0 + timedelta(seconds=10 * k), 1, SampleKind.DISCHARGE) for k in range(6000)
    )
    result = store.apply_retention(T0 + timedelta(days=1))
    assert result.over_limit
    assert len(list(store.samples(T0, T0 + timedelta(days=1)))) == 6000
    store.close()


V1_SCHEMA = """
CREATE TABLE samples (
    key INTEGER PRIMARY KEY, kind INTEGER NOT NULL,
    state INTEGER NOT NULL, current REAL, voltage REAL, soc REAL,
    temps BLOB NOT NULL, ris BLOB NOT NULL, balance BLOB NOT NULL);
CREATE TABLE volts (key INTEGER PRIMARY KEY, volts BLOB NOT NULL);
CREATE TRIGGER samples_delete AFTER DELETE ON samples
    BEGIN DELETE FROM volts WHERE key = old.key; END;
CREATE TABLE events (t INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL,
    device TEXT, string INTEGER, data TEXT);
CREATE INDEX events_t ON events (t);
CREATE TABLE environment (t INTEGER NOT NULL, device TEXT NOT NULL,
    temperature REAL, humidity REAL, hydrogen REAL, acid_level REAL);
CREATE INDEX environment_t ON environment (t);
CREATE TABLE discharges (id INTEGER PRIMARY KEY, string INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER, record TEXT NOT NULL, UNIQUE (string, start));
PRAGMA user_version = 1;
"""


def test_a_v1_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "history.db")
    conn.executescript(V1_SCHEMA)
    row = _row(T0)
    conn.execute(
        "INSERT INTO samples VALUES (?, 0, 2, 0.1, ?, 100.0, ?, ?, ?)",
        ((1 << 45) | row.t_ms, row.voltage, row.temps, row.ris, row.balance),
    )
    conn.execute("INSERT INTO volts VALUES (?, ?)", ((1 << 45) | row.t_ms, row.volts))
    conn.execute(
        "INSERT INTO events VALUES (?, 'alarm_raised', 'old alarm', NULL, 1, NULL)", (row.t_ms,)
    )
    conn.commit()
    conn.close()
    store = HistoryStore(tmp_path)
    status = store.open()
    assert status.state is StoreState.OK
    assert status.migrated_from == 1
    check = sqlite3.connect(store.path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == VERSION == 3
    check.close()
    assert next(store.samples(T0, T0)).voltages() == row.voltages()
    assert store.events(T0, T0)[0].message == "old alarm"
    assert store.energy_totals() == {}  # the v2 table exists and works
    store.write(WriteBatch(samples=[_row(T0 + timedelta(hours=1))]))
    assert len(list(store.samples(T0, T0 + timedelta(hours=1)))) == 2
    store.close()
    assert HistoryStore(tmp_path).open().migrated_from is None  # nothing left to migrate


def _event(when: datetime):  # type: ignore[no-untyped-def]
    from bacs_core.history.batch import EventRow

    return EventRow(ms(when), "alarm_raised", "test")


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _not_a_database(path: Path) -> None:
    path.write_text("this is a note somebody saved under the wrong name\n" * 100)


def _truncated(path: Path) -> None:
    store = HistoryStore(path.parent)
    store.open()
    store.write_samples(_float_days(20, step_s=600))
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage, _not_a_database, _truncated])
def test_a_damaged_file_is_set_aside_and_a_new_one_started(
    tmp_path: Path,
    damage,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "history.db"
    damage(path)
    original = path.read_bytes()
    store = HistoryStore(tmp_path)
    with caplog.at_level(logging.ERROR):
        status = store.open()
    assert status.state is StoreState.RECOVERED
    assert status.set_aside is not None
    assert Path(status.set_aside).read_bytes() == original  # kept for a person to look at
    assert "damaged" in caplog.text and status.set_aside in caplog.text
    store.write(WriteBatch(samples=[_row(T0)]))
    assert len(list(store.samples(T0, T0))) == 1
    store.close()


def test_damage_found_while_recording_sets_the_file_aside(tmp_path: Path) -> None:
    """Pages overwritten under a running writer: the next pass that reads them (retention)
    finds it, the file is set aside and recording goes on in a new one."""
    store = _open(tmp_path, HistoryConfig(max_bytes=1024 * 1024))
    store.write_samples(_float_days(40, step_s=600))
    store.close()
    store.open()
    with store.path.open("r+b") as f:
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096 * 100)
    writer = HistoryWriter(store, retention_every_s=0.0, now=lambda: T0 + timedelta(days=40))
    writer.start()
    writer.submit(WriteBatch(samples=[_row(T0 + timedelta(days=41))]))
    assert writer.flush(10.0)
    writer.stop()
    status = store.status
    assert status.state is StoreState.RECOVERED
    assert status.set_aside is not None and Path(status.set_aside).exists()
    assert len(status.message or "") < 300
    store.write(WriteBatch(samples=[_row(T0 + timedelta(days=42))]))
    days = [(r.time - T0).days for r in store.samples(T0, T0 + timedelta(days=50))]
    assert days[-1] == 42 and days[0] >= 41  # the new file: nothing of the damaged one
    store.close()


def test_a_file_locked_by_another_process_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE x (y)")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO x VALUES (1)")
    store = HistoryStore(tmp_path, busy_timeout_s=0.1)
    status = store.open()
    assert status.state is StoreState.RECOVERED
    assert "locked" in (status.message or "")
    store.write(WriteBatch(samples=[_row(T0)]))
    other.execute("ROLLBACK")
    other.close()
    store.close()


def test_a_file_from_a_newer_version_is_left_alone(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "history.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    store = HistoryStore(tmp_path)
    status = store.open()
    assert status.state is StoreState.ERROR
    assert "newer" in (status.message or "")
    assert not store.writable
    conn = sqlite3.connect(tmp_path / "history.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    conn.close()


async def test_the_manager_runs_on_when_the_history_file_is_damaged(tmp_path: Path) -> None:
    _garbage(tmp_path / "history.db")
    room = Room(RoomConfig(strings=2, blocks=4, capacity_ah=40, settle_days=0.1, seed=2))
    site = HistorySite(room, tmp_path)
    await site.start()
    assert site.recorder.status.store.state is StoreState.RECOVERED
    snap = await site.cycles(3)
    assert snap.cycle == 3
    site.flush()
    assert len(list(site.store.samples(snap.timestamp - timedelta(hours=1), snap.timestamp))) == 2
    await site.stop()
    assert list(tmp_path.glob("history.db.damaged-*"))


def test_settings_from_plain_data() -> None:
    config = HistoryConfig.from_dict({"float_interval_s": 600, "max_bytes": 2 * 1024**3})
    assert config.float_interval_s == 600
    with pytest.raises(ValueError, match="float_interval"):
        HistoryConfig.from_dict({"float_intervall_s": 600})
    with pytest.raises(ValueError, match="positive"):
        HistoryConfig.from_dict({"recovery_s": 0})


def test_bacs_export_without_a_history(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bacs_core", "export", str(tmp_path), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert f"no history.db in {tmp_path}" in out.stderr
    assert not (tmp_path / "history.db").exists()  # a reader never creates the file
