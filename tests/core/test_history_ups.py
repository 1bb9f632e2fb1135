"""A linked UPS in the history: its on-battery state starts fast logging and opens the
discharge record before the string current shows the discharge; its load and runtime are
stored with the rows, summarised in the record and drawn in the report; a version 2 file
migrates to the UPS table with its data."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from bacs_core.history import HistoryConfig, HistoryReader, HistoryStore, StoreState, UpsStatus
from bacs_core.history.batch import WriteBatch
from bacs_core.history.codec import SampleKind, ms
from bacs_core.history.export import export_discharge
from bacs_core.history.schema import MIGRATIONS, VERSION
from bacs_core.history.ups import UpsRow
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import ChargeState
from tests.core.history_site import EPOCH, POLL_S, HistorySite

LOAD_A = 8.0


class Outage:
    """What the scenario saw, for the tests to compare with what was stored."""

    def __init__(self, site: HistorySite) -> None:
        self.site = site
        self.on_battery_at = site.now()
        self.first_poll_t = self.on_battery_at
        self.first_poll_states: list[ChargeState] = []
        self.loads: list[float] = []
        self.runtimes: list[float] = []
        self.on_line_at = site.now()
        self.opened_before_a_poll = False


async def _outage(directory: Path) -> Outage:
    room = Room(RoomConfig(strings=2, blocks=8, capacity_ah=40, settle_days=0.5, seed=7))
    site = HistorySite(room, directory, HistoryConfig(recovery_s=300.0, active_after_s=300.0))
    await site.start()
    site.recorder.add_discharge_listener(site.announced.append)
    await site.cycles(30)  # float: one row (the first), the rest in the ring
    out = Outage(site)
    # The UPS says "on battery" between two polls; the strings are still on float.
    out.on_battery_at = site.now() + timedelta(seconds=3)
    site.recorder.ups_update(UpsStatus(True, 41.0, 1800.0, 0.0), out.on_battery_at)
    out.opened_before_a_poll = [r.in_progress for r in site.announced] == [True, True]
    snap = await site.cycles(1)  # the first poll after: the current does not show it yet
    out.first_poll_t = snap.timestamp
    out.first_poll_states = [s.charge_state for s in snap.strings]
    for s in (1, 2):
        room.set_mode(s, ChargerMode.DISCHARGE, LOAD_A)
    for k in range(60):  # ten minutes on battery, the UPS reporting every poll
        load, runtime = 40.0 + (k % 7), 1800.0 - 20.0 * k
        site.recorder.ups_update(UpsStatus(True, load, runtime, 0.0))
        out.loads.append(load)
        out.runtimes.append(runtime)
        await site.cycles(1)
    out.on_line_at = site.now() + timedelta(seconds=4)
    site.recorder.ups_update(UpsStatus(False, 38.0, 2400.0, 230.0), out.on_line_at)
    for s in (1, 2):
        room.set_mode(s, ChargerMode.FLOAT)
    await site.cycles(60)  # past the recovery reading
    site.flush()
    await site.stop()
    return out


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Outage:
    return asyncio.run(_outage(tmp_path_factory.mktemp("ups")))


def test_on_battery_opens_the_record_at_once(outage: Outage) -> None:
    assert outage.opened_before_a_poll  # both strings' records, before any poll
    # The first poll after the UPS report: the strings did not yet discharge...
    assert ChargeState.DISCHARGE not in outage.first_poll_states
    site = outage.site
    for string in (1, 2):
        record = site.store.discharge("last", string)
        assert record is not None and record.recovered
        # ...yet the record starts when the UPS said so, and the poll was stored.
        assert record.start == outage.on_battery_at == record.ups_on_battery_at
        assert record.ups_on_line_at == outage.on_line_at
        rows = list(site.store.samples(outage.first_poll_t, outage.first_poll_t, string))
        assert [r.kind for r in rows] == [SampleKind.ACTIVE]
        assert record.ah > 0.9 * LOAD_A * 600 / 3600
        assert record.end >= outage.on_line_at


def test_fast_logging_from_the_ups_report(outage: Outage) -> None:
    """Every poll from the on-battery report on, and the minutes before it from the ring."""
    site = outage.site
    rows = list(site.store.samples(EPOCH, EPOCH + timedelta(days=1), 1))
    times = [r.time for r in rows]
    before = [t for t in times if t < outage.on_battery_at]
    assert len(before) >= 5  # the ring: 5 min before (burst_before_s)
    assert all(
        r.kind is SampleKind.BURST for r in rows[1 : len(before)]
    )  # the first is the float row
    after = [t for t in times if outage.on_battery_at <= t <= outage.on_line_at]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(after)}
    assert gaps == {POLL_S}
    assert len(after) == 61
    discharging = [r for r in rows if r.state is ChargeState.DISCHARGE]
    assert discharging and all(r.kind is SampleKind.DISCHARGE for r in discharging)


def test_load_and_runtime_in_the_record_and_the_rows(outage: Outage) -> None:
    site = outage.site
    record = site.store.discharge("last", 1)
    assert record is not None
    # The samples of the discharge: the first poll (41 %), then each reported load.
    loads = [41.0, *outage.loads]
    assert record.ups_load_avg_pct == round(sum(loads) / len(loads), 1)
    assert record.ups_load_max_pct == max(loads)
    assert record.ups_runtime_start_s == 1800.0
    assert record.ups_runtime_end_s == outage.runtimes[-1]
    rows = site.store.ups(outage.on_battery_at, outage.on_line_at)
    assert rows[0] == UpsRow(ms(outage.on_battery_at), SampleKind.DISCHARGE, True, 41.0, 1800, 0)
    assert rows[-1].t_ms == ms(outage.on_line_at) and rows[-1].on_battery is False
    polled = rows[1:-1]
    assert len(polled) == 61
    assert [r.load_pct for r in polled[1:]] == outage.loads
    assert [r.runtime_s for r in polled[1:]] == outage.runtimes
    assert all(r.kind is SampleKind.DISCHARGE for r in polled[1:])
    events = site.store.events(outage.on_battery_at, outage.on_line_at)
    kinds = [e.type for e in events if e.type.startswith("ups_")]
    assert kinds == ["ups_on_battery", "ups_on_line"]
    assert json.loads(events[0].data or "{}")["runtime_s"] == 1800.0
    # JSON round trip of the record (what the store and the export keep).
    assert record.to_dict()["ups_on_battery_at"] == outage.on_battery_at.isoformat()


def test_the_jsonl_export_carries_the_ups(outage: Outage) -> None:
    site = outage.site
    record = site.store.discharge("last", 1)
    assert record is not None
    out = io.StringIO()
    samples = export_discharge(site.store, out, "jsonl", record)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["discharge"]["ups_load_max_pct"] == record.ups_load_max_pct
    ups = [x["ups"] for x in lines if "ups" in x]
    assert len(ups) >= 62 and ups[0]["on_battery"] is True
    assert next(x for x in ups if x["on_battery"] is False)["time"] == outage.on_line_at.isoformat()
    assert len([x for x in lines if "voltages_v" in x]) == samples
    times = [x.get("time") or x.get("ups", {}).get("time") for x in lines[1:]]
    assert times == sorted(times)  # one time line, samples and readings together


def test_the_report_shows_the_ups(outage: Outage) -> None:
    pytest.importorskip("matplotlib")
    from bacs_core.history import HistoryReader
    from bacs_core.report import discharge_report

    page = discharge_report(HistoryReader(outage.site.store.path.parent), "last")
    # One figure for the outage (one UPS feeds both strings), both strings' voltage in it.
    assert page.count('<g id="ups-load"') == 1 and page.count('<g id="ups-runtime"') == 1
    ups = page[page.index("<h2>UPS</h2>") : page.index('<section class="string"')]
    assert "string 1" in ups and "string 2" in ups
    assert "UPS load (mean / max)" in page
    record = outage.site.store.discharge("last", 1)
    assert record is not None
    assert f"{record.ups_load_avg_pct:.0f} % / {record.ups_load_max_pct:.0f} %" in page
    assert f"{1800 / 60:.1f} min / {outage.runtimes[-1] / 60:.1f} min" in page


async def test_a_ups_stuck_on_battery_writes_thinnable_rows(tmp_path: Path) -> None:
    """Strings on float under a UPS that says "on battery": every poll, but as rows that
    retention may thin (never DISCHARGE rows that are kept forever)."""
    room = Room(RoomConfig(strings=1, blocks=4, capacity_ah=40, settle_days=0.5, seed=3))
    site = HistorySite(room, tmp_path, manager_config={"string_count": 1})
    await site.start()
    await site.cycles(2)
    site.recorder.ups_update(UpsStatus(on_battery=True))
    await site.cycles(12)
    site.flush()
    rows = list(site.store.samples(EPOCH, EPOCH + timedelta(days=1), 1))
    assert [r.kind for r in rows][-12:] == [SampleKind.ACTIVE] * 12
    assert site.store.ups(EPOCH, site.now())[-1].kind is SampleKind.ACTIVE
    record = site.recorder.last_discharge(1)
    assert record is not None and record.in_progress and record.ups_on_battery_at is not None
    await site.stop()


def test_bad_ups_values_are_refused() -> None:
    with pytest.raises(ValueError, match="load_pct"):
        UpsStatus(on_battery=True, load_pct=-3.0)
    with pytest.raises(ValueError, match="runtime_s"):
        UpsStatus(runtime_s=float("nan"))
    with pytest.raises(TypeError, match="input_voltage"):
        UpsStatus(input_voltage="230")  # type: ignore[arg-type]
    assert not UpsStatus().known and UpsStatus(on_battery=False).known


def test_a_version_2_file_migrates_to_the_ups_table(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    for step in MIGRATIONS[:2]:
        step(conn)
    conn.execute("PRAGMA user_version = 2")
    start = EPOCH
    old_record = {
        "string": 1, "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
        "duration_s": 3600.0, "ah": 8.0, "wh": 100.0, "mean_current_a": 8.0,
        "min_string_v": 48.0, "min_string_v_at": None, "rated_ah": 40.0,
        "capacity_delivered_pct": 20.0, "reached_end_voltage": False,
        "capacity_rate_adjusted_pct": None, "mean_temperature_c": 25.0, "gap_s": 0.0,
        "recovered": True, "early": [], "blocks": [], "in_progress": False,
        "interrupted": False, "version": 1,
    }  # fmt: skip
    conn.execute(
        'INSERT INTO discharges (string, start, "end", record) VALUES (1, ?, ?, ?)',
        (ms(start), ms(start) + 3_600_000, json.dumps(old_record)),
    )
    conn.execute("INSERT INTO energy VALUES (1, 1000.0, 500.0, ?)", (ms(start),))
    conn.close()
    # A reader never migrates: a version 2 file simply has no UPS readings.
    assert HistoryReader(tmp_path).ups(start, start + timedelta(days=1)) == []
    store = HistoryStore(tmp_path)
    status = store.open()
    assert status.state is StoreState.OK and status.migrated_from == 2
    check = sqlite3.connect(store.path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == VERSION == 3
    check.close()
    record = store.discharge("last")
    assert record is not None and record.ah == 8.0
    assert record.ups_on_battery_at is None and record.ups_load_avg_pct is None
    assert store.energy_totals()[1].charged_wh == 1000.0
    assert store.ups(start, start + timedelta(days=1)) == []
    row = UpsRow(ms(start) + 1000, SampleKind.FLOAT, False, 12.5, 3600.0, 231.0)
    store.write(WriteBatch(ups=[row]))
    assert store.ups(start, start + timedelta(days=1)) == [row]
    store.close()


def test_retention_keeps_a_discharges_ups_rows(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, HistoryConfig(max_age_days=30))
    assert store.open().state is StoreState.OK
    old = ms(EPOCH)
    rows = [
        UpsRow(old, SampleKind.FLOAT, False, 10.0, 3600.0, 230.0),
        UpsRow(old + 10_000, SampleKind.DISCHARGE, True, 12.0, 3000.0, 0.0),
        UpsRow(old + 40 * 86_400_000, SampleKind.FLOAT, False, 11.0, 3600.0, 230.0),
    ]
    store.write(WriteBatch(ups=rows))
    result = store.apply_retention(EPOCH + timedelta(days=40))
    assert result.deleted_by_age >= 1
    assert store.ups(EPOCH, EPOCH + timedelta(days=41)) == rows[1:]
    store.close()
